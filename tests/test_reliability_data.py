"""Bad API data: each case ends in a stored value and a warning, or a clear error.

Never a crash (``run_sync`` returns a result), never an endless loop (every run is bounded by a
timeout), never a lost device (devices the bad data does not concern are applied; devices it
concerns keep their previous rows). SPEC "What a sync guarantees" 2 and 6.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from inventory.emulator import Emulator, generate_fleet
from inventory.store import make_engine
from inventory.sync import SyncResult
from tests.helpers.reliability import bounded, fresh_database, history_is_consistent, owned_by
from tests.syncutil import (
    Tamper,
    assert_equals_fleet,
    current_ids,
    expected_devices,
    settings_for,
    snapshot,
    sync,
)

RUN_TIMEOUT_S = 60
Device = dict[str, Any]


@pytest.fixture
def emu() -> Emulator:
    return Emulator(generate_fleet(devices=300, customers=16, seed=41, partner_id=7_000_000_041))


def _settings(emu: Emulator, db_url: str, **api: Any) -> Any:
    return settings_for(emu, db_url, api={"page_size": 25, **api})


def run(
    emu: Emulator, db_url: str, transport: httpx.BaseTransport | None = None, **api: Any
) -> SyncResult:
    """One sync, bounded in time; it must return a result, not raise."""
    settings = _settings(emu, db_url, **api)
    return bounded(lambda: sync(emu, settings, transport=transport), RUN_TIMEOUT_S)


def _is_listing(request: httpx.Request) -> bool:
    return request.url.path.endswith(":findByOwner")


def _is_customers(request: httpx.Request) -> bool:
    return request.url.path.endswith("/customers")


def each_device(fn: Callable[[Device], Device]) -> Callable[[httpx.Request, dict[str, Any]], Any]:
    """A Tamper rewrite applying ``fn`` to every device of every findByOwner page."""

    def rewrite(request: httpx.Request, body: dict[str, Any]) -> dict[str, Any]:
        if _is_listing(request) and isinstance(body.get("devices"), list):
            body["devices"] = [fn(copy.deepcopy(d)) for d in body["devices"]]
        return body

    return rewrite


def expected_after(emu: Emulator, fn: Callable[[Device], Device]) -> dict[int, Device]:
    return {i: fn(copy.deepcopy(d)) for i, d in expected_devices(emu).items()}


def _scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def _rows(engine: Engine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(sql), params).mappings()]


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _run_row(engine: Engine, run_id: int | None) -> dict[str, Any]:
    return _rows(engine, "SELECT * FROM sync_runs WHERE run_id = :r", r=run_id)[0]


def _one_line(message: str | None) -> str:
    assert message, "a failed run must say why"
    assert "\n" not in message, message
    assert "Traceback" not in message, message
    return message


# --- stored values (and warnings) -----------------------------------------------------------


def test_missing_optional_fields_are_stored_as_null(
    emu: Emulator, engine: Engine, db_url: str
) -> None:
    def strip(device: Device) -> Device:
        device.pop("name", None)
        device.pop("deviceMetadata", None)
        ident = device["deviceIdentifier"]
        for key in ("model", "manufacturer", "imei2", "meid2"):
            ident.pop(key, None)
        for claim in device.get("claims", []):
            for key in ("resellerId", "additionalService", "vacationModeStartTime"):
                claim.pop(key, None)
        return device

    def strip_customers(request: httpx.Request, body: dict[str, Any]) -> dict[str, Any]:
        if _is_customers(request):
            for company in body.get("customers", []):
                for key in ("adminEmails", "ownerEmails", "languageCode", "termsStatus", "name"):
                    company.pop(key, None)
            return body
        return each_device(strip)(request, body)

    result = run(emu, db_url, Tamper(emu.transport(), strip_customers))
    assert result.ok, result.error
    assert_equals_fleet(engine, expected_after(emu, strip))
    assert _scalar(engine, "SELECT COUNT(*) FROM devices WHERE model IS NOT NULL") == 0
    assert _scalar(engine, "SELECT COUNT(*) FROM devices WHERE name IS NOT NULL") == 0
    assert _scalar(engine, "SELECT COUNT(*) FROM device_metadata") == 0
    customers = _rows(engine, "SELECT terms_status, owner_emails, language_code FROM customers")
    assert len(customers) == len(list(emu.iter_customers()))
    assert all(c["terms_status"] is None and c["language_code"] is None for c in customers)
    assert all(_loads(c["owner_emails"]) == [] for c in customers)


def test_unknown_fields_are_kept_counted_and_warned_once(
    emu: Emulator, engine: Engine, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    sent: Counter[str] = Counter()
    lock = threading.Lock()  # pages arrive on several worker threads

    def grow(device: Device) -> Device:
        with lock:
            sent["Device.futureField"] += 1
            sent["DeviceIdentifier.futureIdentifier"] += 1
            sent["DeviceClaim.futureClaimFlag"] += len(device.get("claims", []))
        device["futureField"] = {"nested": [1, 2, 3]}
        device["deviceIdentifier"]["futureIdentifier"] = "X-1"
        for claim in device.get("claims", []):
            claim["futureClaimFlag"] = True
        return device

    def grow_all(request: httpx.Request, body: dict[str, Any]) -> dict[str, Any]:
        if _is_customers(request):
            for company in body.get("customers", []):
                company["futureCompanyField"] = "x"
                sent["Company.futureCompanyField"] += 1
            return body
        return each_device(grow)(request, body)

    caplog.set_level(logging.WARNING)
    result = run(emu, db_url, Tamper(emu.transport(), grow_all))
    assert result.ok, result.error
    # Counted as often as the API sent them (a device in two listings counts twice).
    counts = dict(sent)
    assert counts["Device.futureField"] >= len(expected_devices(emu))
    vendor_customers = sum(len(v.customers) for v in emu.fleet.vendors_of(emu.fleet.partner_id))
    # customers.list and every vendor's customers.list (Company records both)
    assert (
        counts["Company.futureCompanyField"] == len(list(emu.iter_customers())) + vendor_customers
    )
    assert_equals_fleet(engine, expected_after(emu, grow))  # raw keeps them as sent
    assert result.unknown_fields == counts
    assert _loads(_run_row(engine, result.run_id)["unknown_fields"]) == counts
    warned = [r for r in caplog.records if "does not know" in r.getMessage()]
    assert len(warned) == 1
    assert all(name in warned[0].getMessage() for name in counts)


def test_unknown_enum_values_are_stored_as_sent(emu: Emulator, engine: Engine, db_url: str) -> None:
    def future(device: Device) -> Device:
        device["deviceIdentifier"]["deviceType"] = "DEVICE_TYPE_HOLOGRAM"
        for claim in device.get("claims", []):
            claim["additionalService"] = "ADDITIONAL_SERVICE_FUTURE"
        device.setdefault("claims", []).append(
            {"sectionType": "SECTION_TYPE_FUTURE", "ownerCompanyId": "1", "resellerId": "2"}
        )
        return device

    def future_all(request: httpx.Request, body: dict[str, Any]) -> dict[str, Any]:
        if _is_customers(request):
            for company in body.get("customers", []):
                company["termsStatus"] = "TERMS_STATUS_FUTURE"
            return body
        return each_device(future)(request, body)

    result = run(emu, db_url, Tamper(emu.transport(), future_all))
    assert result.ok, result.error
    assert_equals_fleet(engine, expected_after(emu, future))
    types = _rows(engine, "SELECT DISTINCT device_type FROM devices")
    assert types == [{"device_type": "DEVICE_TYPE_HOLOGRAM"}]
    sections = {r["section_type"] for r in _rows(engine, "SELECT section_type FROM device_claims")}
    assert "SECTION_TYPE_FUTURE" in sections
    terms = {r["terms_status"] for r in _rows(engine, "SELECT terms_status FROM customers")}
    assert terms == {"TERMS_STATUS_FUTURE"}
    # The devices are still listed as the customers' own: the view shows their owners.
    owners = _scalar(engine, "SELECT COUNT(*) FROM v_devices WHERE company_id IS NOT NULL")
    assert owners == len(expected_devices(emu))


def test_int64_sent_as_numbers(emu: Emulator, engine: Engine, db_url: str) -> None:
    def numbers(device: Device) -> Device:
        device["deviceId"] = int(device["deviceId"])
        for claim in device.get("claims", []):
            for key in ("ownerCompanyId", "resellerId"):
                if key in claim:
                    claim[key] = int(claim[key])
        return device

    def numbers_all(request: httpx.Request, body: dict[str, Any]) -> dict[str, Any]:
        if _is_customers(request):
            for company in body.get("customers", []):
                company["companyId"] = int(company["companyId"])
            return body
        if "totalSize" in body:
            body["totalSize"] = str(body["totalSize"])  # and an int32 as a string
        return each_device(numbers)(request, body)

    result = run(emu, db_url, Tamper(emu.transport(), numbers_all))
    assert result.ok, result.error
    expected = expected_devices(emu)
    assert any(i > 2**53 for i in expected), "ids beyond a double's precision"
    assert current_ids(engine) == set(expected)
    assert_equals_fleet(engine, expected_after(emu, numbers))
    stored = {r["company_id"] for r in _rows(engine, "SELECT company_id FROM customers")}
    assert stored == {int(c["companyId"]) for c in emu.iter_customers()}
    # The same data as strings the next day is no change.
    again = run(emu, db_url)
    assert again.ok
    assert (again.devices_added, again.devices_changed, again.devices_removed) == (0, 0, 0)


def test_odd_values_are_stored_with_a_warning(emu: Emulator, engine: Engine, db_url: str) -> None:
    """A timestamp that is not RFC 3339, metadata that is not a map, claims that are no list."""
    ids = sorted(expected_devices(emu))
    bad_time, bad_meta, bad_claims = ids[3], ids[4], ids[5]
    claimed = {i for i, d in expected_devices(emu).items() if d.get("claims")}
    assert {bad_time, bad_meta} <= claimed

    def odd(device: Device) -> Device:
        did = int(device["deviceId"])
        if did == bad_time:
            device["claims"][0]["vacationModeStartTime"] = "last Tuesday"
        if did == bad_meta:
            device["deviceMetadata"] = {"entries": ["not", "a", "map"]}
        if did == bad_claims:
            device["claims"] = {"not": "a list"}
        return device

    result = run(emu, db_url, Tamper(emu.transport(), each_device(odd)))
    assert result.ok, result.error
    stored = {r["device_id"]: r for r in _rows(engine, "SELECT device_id, raw FROM devices")}
    assert set(stored) == set(expected_devices(emu))  # none lost
    assert _loads(stored[bad_claims]["raw"])["claims"] == {"not": "a list"}
    vacation = _scalar(
        engine,
        "SELECT vacation_mode_start_time FROM device_claims WHERE device_id = :d",
        d=bad_time,
    )
    assert vacation is None
    warnings = " | ".join(result.warnings)
    assert "last Tuesday" in warnings
    assert f"device {bad_meta}: deviceMetadata.entries is not an object" in warnings
    assert f"device {bad_claims}: claims is not a list" in warnings
    assert _loads(_run_row(engine, result.run_id)["warnings"]) == result.warnings


# --- identifiers and duplicates -----------------------------------------------------------------


class Gone(httpx.BaseTransport):
    """Answers ``devices.get`` of one device with 404, as the API does for a device it does not
    know; everything else goes to ``inner``."""

    def __init__(self, inner: httpx.BaseTransport, device_id: int) -> None:
        self.inner, self.path, self.asked = inner, f"/devices/{device_id}", 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith(self.path):
            self.asked += 1
            body = {"error": {"code": 404, "message": "Not found.", "status": "NOT_FOUND"}}
            return httpx.Response(404, json=body, request=request)
        return self.inner.handle_request(request)


def test_identifiers_that_change_between_runs(emu: Emulator, engine: Engine, db_url: str) -> None:
    assert run(emu, db_url).ok
    ids = sorted(expected_devices(emu))
    renamed, reregistered = ids[10], ids[20]
    old = expected_devices(emu)[reregistered]
    new_id = 9_100_000_000_000_000_001

    def change(device: Device) -> Device:
        if int(device["deviceId"]) == renamed:
            device["deviceIdentifier"]["imei"] = "359881234567890"
            device["deviceIdentifier"]["serialNumber"] = "NEW-SERIAL-1"
        if int(device["deviceId"]) == reregistered:
            device["deviceId"] = str(new_id)  # same phone, registered again under a new id
            device["name"] = device["name"].rsplit("/", 1)[0] + f"/{new_id}"
        return device

    # devices.get knows the re-registered phone by its new id only, as the listings do
    tampered = Gone(Tamper(emu.transport(), each_device(change)), reregistered)
    result = run(emu, db_url, tampered)
    assert result.ok, result.error
    assert (result.devices_changed, result.devices_added, result.devices_removed) == (1, 1, 1)
    assert tampered.asked == 1  # its removal was checked
    row = _rows(engine, "SELECT imei, serial_number FROM devices WHERE device_id = :d", d=renamed)
    assert row == [{"imei": "359881234567890", "serial_number": "NEW-SERIAL-1"}]
    versions = _scalar(
        engine, "SELECT COUNT(*) FROM device_versions WHERE device_id = :d", d=renamed
    )
    assert versions == 2
    assert reregistered not in current_ids(engine)
    assert new_id in current_ids(engine)
    by_imei = _rows(
        engine,
        "SELECT device_id FROM v_devices WHERE imei = :i",
        i=old["deviceIdentifier"].get("imei"),
    )
    if old["deviceIdentifier"].get("imei"):
        assert by_imei == [{"device_id": new_id}]
    assert history_is_consistent(engine) == []


def _repeat_last_device(counted: bool) -> tuple[Callable[..., Any], Counter[str]]:
    """Each later page of a listing starts with the previous page's last device again."""
    last: dict[str, Device] = {}
    repeats: Counter[str] = Counter()

    def rewrite(request: httpx.Request, body: dict[str, Any]) -> dict[str, Any]:
        if not _is_listing(request) or not body.get("devices"):
            return body
        sent = json.loads(request.content)
        key = ",".join(sent.get("customerId", []) + sent.get("googleWorkspaceCustomerId", []))
        if sent.get("pageToken") and key in last:
            body["devices"].insert(0, last[key])
            repeats[key] += 1
        last[key] = body["devices"][-1]
        if counted:  # the server's totalSize counts the repeats too
            body["totalSize"] = body.get("totalSize", 0) + repeats[key]
        return body

    return rewrite, repeats


@pytest.mark.parametrize("counted", [True, False], ids=["counted", "not-counted"])
def test_a_device_repeated_on_the_next_page_is_stored_once(
    emu: Emulator, engine: Engine, db_url: str, counted: bool
) -> None:
    assert run(emu, db_url).ok
    before = snapshot(engine)
    rewrite, repeats = _repeat_last_device(counted)
    result = run(emu, db_url, Tamper(emu.transport(), rewrite))
    assert sum(repeats.values()) > 5
    assert history_is_consistent(engine) == []
    # A totalSize that grows from page to page (the repeats counted) or that the devices
    # exceed (not counted): either way the listing moved under its page tokens, so a device
    # may be missing from it; its owners' devices are left as they were.
    assert result.status == "partial"
    broken = [x for x in result.listings if not x.complete]
    assert broken
    said = "totalSize changed from" if counted else "but totalSize said"
    assert all(said in (x.error or "") for x in broken), [x.error for x in broken]
    assert snapshot(engine) == before
    assert run(emu, db_url).ok
    assert_equals_fleet(engine, expected_devices(emu))


def test_a_repeated_device_is_reported(emu: Emulator, engine: Engine, db_url: str) -> None:
    rewrite, _ = _repeat_last_device(counted=True)
    result = run(emu, db_url, Tamper(emu.transport(), rewrite))
    assert result.status == "partial", result.error  # its totalSize grew while it paged
    assert any("more than once" in w for w in result.warnings), result.warnings


@dataclass
class Moved:
    """A device that moved between customers while the run paged: the listing of the customer
    it left returned it on its first page, the listing of the customer it moved to returns it
    again, moved (added to its last page)."""

    joined: int  # the customer it moved to
    victim: int = 0
    left: int = 0  # the customer it left
    original: Device | None = None
    moved: Device | None = None
    sent: bool = False  # the moved copy went out in a response


def _moved_mid_run(emu: Emulator, *, joined_later: bool) -> tuple[Callable[..., Any], Moved]:
    """The device is the first on the first page of the largest customer's listing. The
    customer it moves to is the last in companyId order (``joined_later``: its listing comes
    later in a first sync's plan) or the first."""
    sizes = {
        int(c["companyId"]): len(owned_by(emu, int(c["companyId"]))) for c in emu.iter_customers()
    }
    largest = max(sizes, key=lambda c: sizes[c])
    with_devices = sorted(c for c in sizes if sizes[c])
    case = Moved(joined=with_devices[-1] if joined_later else with_devices[0])

    def rewrite(request: httpx.Request, body: dict[str, Any]) -> dict[str, Any]:
        if not _is_listing(request):
            return body
        sent = json.loads(request.content or b"{}")
        owners = sent.get("customerId", [])
        if str(largest) in owners and not sent.get("pageToken") and case.original is None:
            for device in body["devices"]:
                zt = _zero_touch_claim(device)
                if zt is not None and zt.get("ownerCompanyId") in owners:
                    case.victim, case.left = int(device["deviceId"]), int(zt["ownerCompanyId"])
                    case.original = copy.deepcopy(device)
                    break
        if str(case.joined) not in owners:
            return body
        # the server counts the moved device from its first page on, and sends it last
        body["totalSize"] = body.get("totalSize", 0) + 1
        last = "nextPageToken" not in body
        if last and case.original is not None and not case.sent:
            case.moved = copy.deepcopy(case.original)
            claim = _zero_touch_claim(case.moved)
            assert claim is not None
            claim["ownerCompanyId"] = str(case.joined)
            body["devices"].append(copy.deepcopy(case.moved))
            case.sent = True
        return body

    return rewrite, case


def _zero_touch_claim(device: Device) -> dict[str, Any] | None:
    return next(
        (c for c in device.get("claims", []) if c.get("sectionType") == "SECTION_TYPE_ZERO_TOUCH"),
        None,
    )


def _stored_owners(engine: Engine, device_id: int) -> dict[str, Any]:
    """The device's zero-touch owner as each public table has it."""
    sql = {
        "devices.raw": "SELECT raw FROM devices WHERE device_id = :d",
        "device_claims": "SELECT owner_company_id FROM device_claims "
        "WHERE device_id = :d AND section_type = 'SECTION_TYPE_ZERO_TOUCH'",
        "v_devices": "SELECT company_id FROM v_devices WHERE device_id = :d",
        "device_versions": "SELECT owner_company_id FROM device_versions "
        "WHERE device_id = :d AND valid_to IS NULL",
    }
    owners = {where: _scalar(engine, query, d=device_id) for where, query in sql.items()}
    claims = _loads(owners["devices.raw"])["claims"]
    owners["devices.raw"] = next(
        int(c["ownerCompanyId"])
        for c in claims
        if c.get("sectionType") == "SECTION_TYPE_ZERO_TOUCH"
    )
    return {where: int(owner) for where, owner in owners.items()}


def _check_a_device_in_two_listings(
    emu: Emulator, engine: Engine, db_url: str, *, joined_later: bool
) -> None:
    """One request slot, so that the pages come in one order (each listing's first page in
    plan order): the original is staged before the moved copy."""
    rewrite, case = _moved_mid_run(emu, joined_later=joined_later)
    result = run(emu, db_url, Tamper(emu.transport(), rewrite), concurrency=1)
    assert result.ok, result.error
    assert case.sent, "the moved copy must have been sent"
    assert case.original is not None
    assert case.moved is not None
    listing = {c: x for x in result.listings for c in x.company_ids}
    left, joined = listing[case.left], listing[case.joined]
    assert left.listing_id != joined.listing_id, "two listings must return the device"
    # the client got it: the listing counted one device more than its customers have
    owners = set(joined.company_ids)
    assert joined.devices_seen == len(expected_devices(emu, customers=owners)) + 1
    # A first sync's listings run in companyId order, and the first complete listing's row
    # counts: the copy of the listing that comes first is stored, in every table.
    assert (joined.listing_id > left.listing_id) == joined_later
    kept, owner = (case.original, case.left) if joined_later else (case.moved, case.joined)
    assert _stored_owners(engine, case.victim) == dict.fromkeys(
        ("devices.raw", "device_claims", "v_devices", "device_versions"), owner
    )
    assert history_is_consistent(engine) == []
    assert_equals_fleet(engine, {**expected_devices(emu), case.victim: kept})
    assert run(emu, db_url).ok
    assert_equals_fleet(engine, expected_devices(emu))


@pytest.mark.parametrize(
    "joined_later",
    [
        pytest.param(True, id="moved-to-a-later-listing"),
        pytest.param(
            False,
            id="moved-to-an-earlier-listing",
        ),
    ],
)
def test_a_device_in_two_listings_is_stored_once(
    emu: Emulator, engine: Engine, db_url: str, joined_later: bool
) -> None:
    """With Workspace listings in the run (the emulator's usual fleet), staging deduplicates."""
    _check_a_device_in_two_listings(emu, engine, db_url, joined_later=joined_later)


def test_a_device_in_two_listings_without_workspace_listings(engine: Engine, db_url: str) -> None:
    emu = Emulator(
        generate_fleet(
            devices=300, customers=8, seed=42, partner_id=7_000_000_042, workspace_share=0.0
        )
    )
    _check_a_device_in_two_listings(emu, engine, db_url, joined_later=True)


# --- clear errors ---------------------------------------------------------------------------------


class Replace(httpx.BaseTransport):
    """Answers the ``nth`` request that ``match`` selects with ``response(request)`` instead."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        match: Callable[[httpx.Request], bool],
        response: Callable[[httpx.Request], httpx.Response],
        nth: int = 1,
    ) -> None:
        self.inner = inner
        self.match = match
        self.response = response
        self.nth = nth
        self.count = 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.match(request):
            with self.lock:
                self.count += 1
                mine = self.count == self.nth
            if mine:
                return self.response(request)
        return self.inner.handle_request(request)


def _json_text(body: str) -> Callable[[httpx.Request], httpx.Response]:
    headers = {"Content-Type": "application/json; charset=UTF-8"}
    return lambda request: httpx.Response(200, headers=headers, content=body, request=request)


HTML = "<!doctype html><html><head><title>Sign in to Wi-Fi</title></head><body>Hi</body></html>"

FAILING = {
    "malformed-json-page": (_is_listing, _json_text('{"devices": [{"deviceId": "1"'), 3, "JSON"),
    "json-list-page": (_is_listing, _json_text("[]"), 2, "not a JSON object"),
    "html-200-page": (
        _is_listing,
        lambda r: httpx.Response(200, headers={"Content-Type": "text/html"}, content=HTML),
        4,
        "text/html, not JSON",
    ),
    "html-200-customers": (
        _is_customers,
        lambda r: httpx.Response(200, headers={"Content-Type": "text/html"}, content=HTML),
        1,
        "text/html, not JSON",
    ),
    "empty-body-200": (_is_listing, _json_text(""), 2, "JSON"),
    "customer-without-id": (
        _is_customers,
        _json_text('{"customers": [{"companyName": "No Id Ltd"}]}'),
        1,
        "companyId",
    ),
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Emulator, Engine, str]]:
    """One database and emulator for cases that each start by catching up (fewer PG setups)."""
    with fresh_database(request.param, tmp_path_factory.mktemp("data")) as url:
        engine = make_engine(url)
        try:
            yield (
                Emulator(generate_fleet(devices=200, customers=8, seed=43, partner_id=43)),
                engine,
                url,
            )
        finally:
            engine.dispose()


@pytest.mark.parametrize("case", list(FAILING))
def test_unusable_responses_are_reported_clearly(
    shared: tuple[Emulator, Engine, str], case: str
) -> None:
    """A bad customers.list fails the run, applying nothing; a bad findByOwner page leaves its
    listing's owners as they were and makes the run partial (SPEC v0.2 "Runs")."""
    emu, engine, db_url = shared
    assert run(emu, db_url).ok
    before = snapshot(engine)
    raw_before = _raw_by_id(engine)
    device = sorted(expected_devices(emu))[0]
    emu.set_metadata(device, {"would": f"change for {case}"})
    match, response, nth, says = FAILING[case]
    transport = Replace(emu.transport(), match, response, nth)
    result = run(emu, db_url, transport)
    assert transport.count >= nth, "the bad response must have been sent"
    if match is _is_customers:
        assert result.status == "failed"
        assert says in _one_line(result.error)
        assert snapshot(engine) == before
        assert _run_row(engine, result.run_id)["error"] == result.error
        return
    assert result.status == "partial", result.error
    broken = [x for x in result.listings if not x.complete]
    assert len(broken) == 1
    assert says in _one_line(broken[0].error)
    left = {d for c in broken[0].company_ids for d in owned_by(emu, c)}
    assert left, "the broken listing's owners have devices"
    raw_after = _raw_by_id(engine)
    assert {d: raw_after.get(d) for d in left} == {d: raw_before.get(d) for d in left}
    assert (device in left) == (raw_after[device] == raw_before[device])


def _incomplete_listing_case(
    emu: Emulator, engine: Engine, db_url: str, spoil: Callable[[dict[str, Any], str], None]
) -> tuple[SyncResult, list[int]]:
    """Sync, change every customer's first device, then spoil one big listing's later page."""
    assert run(emu, db_url).ok
    owned = {int(c["companyId"]): owned_by(emu, int(c["companyId"])) for c in emu.iter_customers()}
    big = max(owned, key=lambda c: len(owned[c]))
    assert len(owned[big]) > 75  # several pages
    for devices in owned.values():
        if devices:
            emu.set_metadata(devices[0], {"round": "2"})
    mine = set(owned[big])
    before = {d: r for d, r in _raw_by_id(engine).items() if d in mine}

    def rewrite(request: httpx.Request, body: dict[str, Any]) -> dict[str, Any]:
        sent = json.loads(request.content or b"{}")
        if _is_listing(request) and str(big) in sent.get("customerId", []):
            spoil(body, sent.get("pageToken") or "")
        return body

    result = run(emu, db_url, Tamper(emu.transport(), rewrite))
    assert result.status == "partial", result.error
    incomplete = [x for x in result.listings if not x.complete]
    assert len(incomplete) == 1
    assert big in incomplete[0].company_ids
    after = _raw_by_id(engine)
    assert {d: after[d] for d in before} == before  # that listing's devices: untouched, not lost
    for company, devices in owned.items():  # every other listing was applied
        if devices and company not in incomplete[0].company_ids:
            entries = after[devices[0]].get("deviceMetadata", {}).get("entries")
            assert entries == {"round": "2"}, company
    assert history_is_consistent(engine) == []
    return result, incomplete[0].company_ids


def _raw_by_id(engine: Engine) -> dict[int, Any]:
    rows = _rows(engine, "SELECT device_id, raw FROM devices WHERE removed_at IS NULL")
    return {r["device_id"]: _loads(r["raw"]) for r in rows}


def test_an_empty_page_that_still_has_a_token(emu: Emulator, engine: Engine, db_url: str) -> None:
    def empty(body: dict[str, Any], token: str) -> None:
        if token and "nextPageToken" in body:
            body["devices"] = []

    result, _ = _incomplete_listing_case(emu, engine, db_url, empty)
    assert any("empty but carries a nextPageToken" in w for w in result.warnings)


def test_a_page_token_that_cycles(emu: Emulator, engine: Engine, db_url: str) -> None:
    first: list[str] = []

    def cycle(body: dict[str, Any], token: str) -> None:
        if not token and body.get("nextPageToken"):
            first.append(body["nextPageToken"])
        elif token and first and token != first[0] and body.get("nextPageToken"):
            body["nextPageToken"] = first[0]  # page 3 points back to page 2: forever

    result, _ = _incomplete_listing_case(emu, engine, db_url, cycle)
    assert any("repeats an earlier nextPageToken" in w for w in result.warnings)


def test_a_bad_device_record_leaves_its_listing_incomplete(
    emu: Emulator, engine: Engine, db_url: str
) -> None:
    def spoil(body: dict[str, Any], token: str) -> None:
        if token and body.get("devices"):
            body["devices"][0] = {"deviceId": "not-a-number", "deviceIdentifier": {}}
            body["devices"][1] = "a string, not a device"

    result, _ = _incomplete_listing_case(emu, engine, db_url, spoil)
    assert any("not-a-number" in w for w in result.warnings)
    assert any("not a JSON object" in w for w in result.warnings)


def test_a_customers_token_that_repeats_fails_the_run(
    emu: Emulator, engine: Engine, db_url: str
) -> None:
    assert run(emu, db_url).ok
    before = snapshot(engine)
    inner = emu.transport()

    class SameToken(httpx.BaseTransport):
        """customers.list answers every page with the same nextPageToken."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if not _is_customers(request):
                return inner.handle_request(request)
            first = httpx.Request("GET", request.url.copy_remove_param("pageToken"))
            body = json.loads(inner.handle_request(first).read())
            body["nextPageToken"] = "the-same-token"
            return httpx.Response(200, json=body, request=request)

    result = run(emu, db_url, SameToken())
    assert result.status == "failed"
    assert "repeats an earlier nextPageToken" in _one_line(result.error)
    assert snapshot(engine) == before

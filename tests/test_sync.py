"""The collector against the emulator, on SQLite and PostgreSQL: SPEC "What a sync guarantees"."""

from __future__ import annotations

import copy
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from inventory.api import CUSTOMERS_PAGE_SIZE
from inventory.emulator import Emulator, FaultConfig, generate_fleet, serve
from inventory.errors import ConfigError, LockedError
from inventory.store import WriterLock, make_engine
from inventory.sync import fetch, run_sync, staging
from tests.syncutil import (
    ZT,
    FakeSleep,
    Tamper,
    assert_equals_fleet,
    current_ids,
    expected_devices,
    settings_for,
    snapshot,
    staging_tables,
    standalone_workspaces,
    sync,
)


@pytest.fixture
def emu() -> Emulator:
    return Emulator(generate_fleet(devices=600, customers=25, seed=11, partner_id=7_000_000_001))


def _scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def _owned(emu: Emulator, company_id: int) -> list[int]:
    return sorted(
        int(d["deviceId"])
        for d in emu.iter_devices()
        for c in d.get("claims", [])
        if c.get("sectionType") == ZT and c.get("ownerCompanyId") == str(company_id)
    )


def _big_customer(emu: Emulator) -> int:
    counts = {
        int(c["companyId"]): len(_owned(emu, int(c["companyId"]))) for c in emu.iter_customers()
    }
    return max(counts, key=lambda k: counts[k])


def test_first_sync_equals_the_fleet_column_by_column(
    emu: Emulator, engine: Engine, db_url: str
) -> None:
    accounts = standalone_workspaces(emu)
    assert accounts, "the fleet must have Workspace accounts that are no zero-touch customer"
    settings = settings_for(emu, db_url, sync={"google_workspace_customer_ids": accounts})
    result = sync(emu, settings)
    assert result.status == "succeeded", result.error
    expected = expected_devices(emu, extra_workspaces=accounts)
    assert len(expected) > 400
    assert any(int(i) > 2**53 for i in expected), "the fleet must exercise ids beyond 2**53"
    assert_equals_fleet(engine, expected)
    assert result.devices_added == len(expected)
    assert _scalar(engine, "SELECT COUNT(*) FROM device_versions") == len(expected)
    assert _scalar(engine, "SELECT COUNT(*) FROM customers") == len(list(emu.iter_customers()))
    run = dict(make_row(engine, "SELECT * FROM sync_runs WHERE run_id = :r", r=result.run_id))
    assert run["status"] == "succeeded"
    assert run["devices_added"] == len(expected)
    assert run["api_requests"] == result.api_requests > 0
    listings = _scalar(engine, "SELECT COUNT(*) FROM sync_listings WHERE complete")
    assert listings == len(result.listings)
    # Chrome OS devices claimed only by a Workspace customer are found through it.
    workspace_only = [
        d for d in expected.values()
        for c in d.get("claims", [])
        if c.get("sectionType") == ZT and "ownerCompanyId" not in c
    ]  # fmt: skip
    assert workspace_only, "the fleet must have Chrome OS devices claimed by Workspace id only"
    # Packing: far fewer findByOwner calls than customers x pages.
    calls = emu.counts().get("findByOwner", 0)
    assert calls <= len(expected) // 100 + len(result.listings) + 1


def make_row(engine: Engine, sql: str, **params: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(text(sql), params).mappings().one())


def test_unchanged_resync_writes_nothing(emu: Emulator, engine: Engine, db_url: str) -> None:
    settings = settings_for(emu, db_url)
    assert sync(emu, settings).ok
    before = snapshot(engine)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            xmins = conn.execute(text("SELECT device_id, xmin::text FROM devices")).all()
    else:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE writes (t TEXT)"))
            for table in ("devices", "device_claims", "device_metadata", "device_versions"):
                for op in ("INSERT", "UPDATE", "DELETE"):
                    conn.execute(
                        text(
                            f"CREATE TRIGGER w_{table}_{op} AFTER {op} ON {table} "
                            f"BEGIN INSERT INTO writes VALUES ('{table} {op}'); END"
                        )
                    )
    again = sync(emu, settings)
    assert again.ok
    assert (again.devices_added, again.devices_changed, again.devices_removed) == (0, 0, 0)
    assert again.devices_seen == len(expected_devices(emu))
    assert snapshot(engine) == before
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            assert conn.execute(text("SELECT device_id, xmin::text FROM devices")).all() == xmins
    else:
        assert _scalar(engine, "SELECT COUNT(*) FROM writes") == 0


def test_mutations_between_syncs(emu: Emulator, engine: Engine, db_url: str) -> None:
    settings = settings_for(emu, db_url)
    assert sync(emu, settings).ok
    customers = [int(c["companyId"]) for c in emu.iter_customers()]
    big = _big_customer(emu)
    owned = _owned(emu, big)
    other = next(c for c in customers if c != big and _owned(emu, c))
    moved, unclaimed, meta, removed = owned[0], owned[1], owned[2], owned[3]
    emu.move_device(moved, other)
    emu.unclaim(unclaimed)
    emu.set_metadata(meta, {"asset": "A-1", "note": "ünïcode " + "x" * 300})
    emu.remove_device(removed)
    added = emu.add_device(company_id=other)
    second = sync(emu, settings)
    assert second.ok, second.error
    assert second.devices_added == 1
    assert second.devices_changed == 2  # moved + metadata
    assert second.devices_removed == 2  # unclaimed (no longer listed) + removed
    assert_equals_fleet(engine, expected_devices(emu))
    assert added in current_ids(engine)
    removed_at = _scalar(engine, "SELECT removed_at FROM devices WHERE device_id = :d", d=removed)
    assert removed_at is not None
    # The unclaimed device is claimed again: it reappears, reopened, not duplicated.
    emu.claim(unclaimed, big)
    third = sync(emu, settings)
    assert third.devices_reappeared == 1
    assert_equals_fleet(engine, expected_devices(emu))
    versions = _scalar(
        engine, "SELECT COUNT(*) FROM device_versions WHERE device_id = :d", d=unclaimed
    )
    assert versions == 3  # first seen, removed, reappeared
    open_versions = _scalar(
        engine,
        "SELECT COUNT(*) FROM device_versions WHERE device_id = :d AND valid_to IS NULL",
        d=unclaimed,
    )
    assert open_versions == 1


def test_removed_customer(emu: Emulator, engine: Engine, db_url: str) -> None:
    settings = settings_for(emu, db_url, sync={"max_removed_fraction": 1.0})
    assert sync(emu, settings).ok
    gone = next(
        int(c["companyId"]) for c in emu.iter_customers() if _owned(emu, int(c["companyId"]))
    )
    owned = _owned(emu, gone)
    emu.remove_customer(gone)
    result = sync(emu, settings)
    assert result.ok
    assert result.customers_removed == 1
    assert not set(owned) & current_ids(engine)
    assert_equals_fleet(engine, expected_devices(emu))
    assert _scalar(engine, "SELECT removed_at FROM customers WHERE company_id = :c", c=gone)


def test_listing_that_fails_midway_leaves_its_devices_untouched(
    emu: Emulator, engine: Engine, db_url: str
) -> None:
    settings = settings_for(emu, db_url, api={"page_size": 20})
    assert sync(emu, settings).ok
    big = _big_customer(emu)
    owned = _owned(emu, big)
    assert len(owned) > 40
    emu.remove_device(owned[-1])
    firsts = {}
    for company in (int(x["companyId"]) for x in emu.iter_customers()):
        mine = _owned(emu, company)
        if mine:
            firsts[company] = mine[0]
            emu.set_metadata(mine[0], {"changed": str(company)})
    before = {d: v for d, v in _stored_raw(engine).items() if d in owned}

    def repeat_token(request: httpx.Request, body: dict[str, Any]) -> dict[str, Any] | None:
        sent = json.loads(request.content or b"{}")
        if str(big) in sent.get("customerId", []) and sent.get("pageToken"):
            body = dict(body, nextPageToken=sent["pageToken"])  # a token that repeats
        return body

    result = sync(emu, settings, transport=Tamper(emu.transport(), repeat_token))
    assert result.status == "partial"
    incomplete = [x for x in result.listings if not x.complete]
    assert len(incomplete) == 1
    assert big in incomplete[0].company_ids
    after = _stored_raw(engine)
    assert {d: after[d] for d in owned} == before  # untouched, the removed one still there
    untouched = set(incomplete[0].company_ids)
    for company, device in firsts.items():
        entries = after[device].get("deviceMetadata", {}).get("entries", {})
        assert (entries == {"changed": str(company)}) == (company not in untouched), company
    # The next clean run catches up exactly.
    assert sync(emu, settings).ok
    assert_equals_fleet(engine, expected_devices(emu))


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _stored_raw(engine: Engine) -> dict[int, Any]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT device_id, raw FROM devices WHERE removed_at IS NULL"))
        return {r[0]: _loads(r[1]) for r in rows}


def test_total_size_mismatch_makes_a_listing_incomplete(
    emu: Emulator, engine: Engine, db_url: str
) -> None:
    settings = settings_for(emu, db_url)

    def lie(request: httpx.Request, body: dict[str, Any]) -> dict[str, Any] | None:
        if request.url.path.endswith(":findByOwner") and "totalSize" in body:
            return dict(body, totalSize=body["totalSize"] + 1)
        return body

    result = sync(emu, settings, transport=Tamper(emu.transport(), lie))
    assert result.status == "partial"
    assert all(not x.complete for x in result.listings if x.devices_seen)
    assert current_ids(engine) == set()  # nothing from an incomplete listing is applied


def test_mass_removal_guard(emu: Emulator, engine: Engine, db_url: str) -> None:
    settings = settings_for(emu, db_url)
    assert sync(emu, settings).ok
    before = snapshot(engine)
    victims = list(expected_devices(emu))[: len(expected_devices(emu)) // 3]
    for device_id in victims:
        emu.remove_device(device_id)
    stopped = sync(emu, settings)
    assert stopped.status == "failed"
    assert "--allow-mass-removal" in (stopped.error or "")
    assert snapshot(engine) == before
    forced = sync(emu, settings, allow_mass_removal=True)
    assert forced.ok
    assert forced.devices_removed == len(victims)
    assert_equals_fleet(engine, expected_devices(emu))


@pytest.mark.parametrize(
    "faults",
    [
        FaultConfig(fail_every=3, retry_after_s=2.0),
        FaultConfig(error_rate=0.2, seed=3),
        FaultConfig(drop_rate=0.15, seed=5),
        FaultConfig(script=[500, 503, "drop", 429, 502, 504]),
    ],
    ids=["429-every-3", "5xx-20pct", "drops", "scripted"],
)
def test_transient_faults_end_in_the_exact_fleet(
    emu: Emulator, engine: Engine, db_url: str, faults: FaultConfig
) -> None:
    emu.faults = copy.deepcopy(faults)  # the scripted list is consumed as it is used
    sleep = FakeSleep()
    result = sync(emu, settings_for(emu, db_url), sleep=sleep)
    assert result.ok, result.error
    assert result.retries > 0
    assert _scalar(engine, "SELECT retries FROM sync_runs WHERE run_id = :r", r=result.run_id) == (
        result.retries
    )
    assert_equals_fleet(engine, expected_devices(emu))
    if faults.fail_every:
        assert min(sleep.calls) >= faults.retry_after_s  # Retry-After honoured


def test_retries_exhausted_fail_the_run_and_apply_nothing(
    emu: Emulator, engine: Engine, db_url: str
) -> None:
    settings = settings_for(emu, db_url, api={"max_retries": 2})
    assert sync(emu, settings).ok
    before = snapshot(engine)
    emu.move_device(
        _owned(emu, _big_customer(emu))[0], int(next(emu.iter_customers())["companyId"])
    )
    emu.faults = FaultConfig(error_rate=1.0)
    result = sync(emu, settings)
    assert result.status == "failed"
    assert "gave up after 3 attempts" in (result.error or "")
    assert snapshot(engine) == before


def test_dry_run_writes_nothing(emu: Emulator, engine: Engine, db_url: str) -> None:
    settings = settings_for(emu, db_url)
    assert sync(emu, settings).ok
    changed, gone = _owned(emu, _big_customer(emu))[:2]
    emu.set_metadata(changed, {"k": "v"})
    emu.remove_device(gone)
    before = snapshot(engine)
    runs = _scalar(engine, "SELECT COUNT(*) FROM sync_runs")
    dry = sync(emu, settings, dry_run=True)
    assert dry.ok
    assert dry.dry_run
    assert (dry.devices_changed, dry.devices_removed) == (1, 1)
    assert {(p["device_id"], p["change"]) for p in dry.preview} == {
        (changed, "changed"),
        (gone, "removed"),
    }
    assert snapshot(engine) == before
    assert _scalar(engine, "SELECT COUNT(*) FROM sync_runs") == runs
    assert staging_tables(engine) == []


def test_a_concurrent_second_sync_is_refused(emu: Emulator, engine: Engine, db_url: str) -> None:
    holder = make_engine(db_url)
    try:
        with WriterLock(holder), pytest.raises(LockedError, match="another zt-inventory sync"):
            sync(emu, settings_for(emu, db_url))
        assert sync(emu, settings_for(emu, db_url)).ok  # released: the next one runs
    finally:
        holder.dispose()


def test_history_answers_what_a_customer_owned_at_a_time(
    emu: Emulator, engine: Engine, db_url: str
) -> None:
    settings = settings_for(emu, db_url)
    assert sync(emu, settings).ok
    big = _big_customer(emu)
    device = _owned(emu, big)[0]
    other = next(int(c["companyId"]) for c in emu.iter_customers() if int(c["companyId"]) != big)
    between = datetime.now(UTC)
    emu.move_device(device, other)
    assert sync(emu, settings).ok
    after = datetime.now(UTC)

    def owned_at(company: int, when: datetime) -> set[int]:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT device_id FROM device_versions WHERE owner_company_id = :c "
                    "AND NOT removed AND valid_from <= :t AND (valid_to IS NULL OR valid_to > :t)"
                ),
                {"c": company, "t": when if engine.dialect.name == "postgresql" else _naive(when)},
            )
            return set(rows.scalars())

    assert device in owned_at(big, between)
    assert device not in owned_at(other, between)
    assert device in owned_at(other, after)
    assert device not in owned_at(big, after)
    assert owned_at(big, between) - {device} == owned_at(big, after)


def _naive(when: datetime) -> str:
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def test_token_auth_with_expiring_tokens(
    emu: Emulator, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    from inventory.emulator import write_service_account_key

    clock = [0.0]
    emu_auth = Emulator(
        generate_fleet(devices=300, customers=10, seed=4, partner_id=99),
        auth="token",
        faults=FaultConfig(token_ttl_s=3600),
        clock=lambda: clock[0],
    )
    key = write_service_account_key(tmp_path / "key.json", "http://emulator.test/token")
    # One request slot: the clock is the calls' count, so with several slots a fresh token
    # could expire before the call that fetched it is retried (nine calls of the other slots).
    settings = settings_for(emu_auth, db_url, credentials=str(key), api={"concurrency": 1})
    original = emu_auth.transport()

    class Ticking(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            clock[0] += 600.0  # every call ages the token; it expires on the server mid-run
            return original.handle_request(request)

    result = sync(emu_auth, settings, transport=Ticking())
    assert result.ok, result.error
    assert emu_auth.counts().get("token", 0) >= 2
    assert_equals_fleet(engine, expected_devices(emu_auth))


def test_over_loopback(emu: Emulator, engine: Engine, db_url: str) -> None:
    with serve(emu, host="127.0.0.1", port=0) as server:
        result = run_sync(settings_for(emu, db_url, endpoint=server.url), sleep=FakeSleep())
    assert result.ok, result.error
    assert_equals_fleet(engine, expected_devices(emu))


def test_identifiers_file(emu: Emulator, engine: Engine, db_url: str, tmp_path: Path) -> None:
    devices = list(emu.iter_devices())
    unclaimed = next(d for d in devices if not d.get("claims") and "imei" in d["deviceIdentifier"])
    claimed = next(d for d in devices if d.get("claims") and "imei" in d["deviceIdentifier"])
    csv = tmp_path / "ids.csv"
    csv.write_text(
        "imei,serial_number,manufacturer\n"
        f"{unclaimed['deviceIdentifier']['imei']},,\n"
        f"{claimed['deviceIdentifier']['imei']},,\n"
        "490154203237518,,\n",
        encoding="utf-8",
    )
    result = sync(emu, settings_for(emu, db_url, sync={"identifiers_file": str(csv)}))
    assert result.ok, result.error
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT line_number, found, device_id FROM identifier_lookups ORDER BY line_number"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        (2, True, int(unclaimed["deviceId"])),
        (3, True, int(claimed["deviceId"])),
        (4, False, None),
    ]
    assert int(unclaimed["deviceId"]) in current_ids(engine)  # unclaimed devices are stored too


def test_bad_identifiers_csv_is_reported_before_any_call(
    emu: Emulator, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    csv = tmp_path / "ids.csv"
    csv.write_text("imei,colour\n123,blue\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="colour"):
        sync(emu, settings_for(emu, db_url, sync={"identifiers_file": str(csv)}))
    assert sum(emu.counts().values()) == 0


def _is_customers_list(request: httpx.Request) -> bool:
    """partners.customers.list (not a vendor's customers.list)."""
    parts = request.url.path.strip("/").split("/")
    return len(parts) == 4 and parts[1] == "partners" and parts[3] == "customers"


class _CapCustomerPages(httpx.BaseTransport):
    """A server that answers customers.list with at most ``cap`` customers a page."""

    def __init__(self, inner: httpx.BaseTransport, cap: int) -> None:
        self.inner, self.cap, self.asked = inner, cap, []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if _is_customers_list(request):
            self.asked.append(request.url.params.get("pageSize"))
            request.url = request.url.copy_set_param("pageSize", str(self.cap))
        return self.inner.handle_request(request)


def test_customer_pages_smaller_than_asked_for_are_followed(
    emu: Emulator, engine: Engine, db_url: str
) -> None:
    """The sync asks for large customers.list pages; a server that caps them just pages more."""
    capped = _CapCustomerPages(emu.transport(), cap=7)
    result = sync(emu, settings_for(emu, db_url), transport=capped)
    assert result.status == "succeeded", result.error
    customers = len(list(emu.iter_customers()))
    assert emu.counts()["customers.list"] == -(-customers // 7)
    assert set(capped.asked) == {str(CUSTOMERS_PAGE_SIZE)}
    assert _scalar(engine, "SELECT COUNT(*) FROM customers") == customers
    assert_equals_fleet(engine, expected_devices(emu))


class _RefuseLargeCustomerPages(httpx.BaseTransport):
    """A server stricter than its document: customers.list refuses pageSize above 100."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner, self.asked = inner, []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if _is_customers_list(request):
            size = int(request.url.params.get("pageSize", "0"))
            self.asked.append(size)
            if size > 100:
                error = {"code": 400, "message": "page_size too big", "status": "INVALID_ARGUMENT"}
                return httpx.Response(400, json={"error": error}, request=request)
        return self.inner.handle_request(request)


def test_a_refused_customer_page_size_is_asked_again_with_100(
    emu: Emulator, engine: Engine, db_url: str
) -> None:
    strict = _RefuseLargeCustomerPages(emu.transport())
    result = sync(emu, settings_for(emu, db_url), transport=strict)
    assert result.status == "succeeded", result.error
    assert strict.asked == [CUSTOMERS_PAGE_SIZE, 100]
    assert _scalar(engine, "SELECT COUNT(*) FROM customers") == len(list(emu.iter_customers()))
    assert_equals_fleet(engine, expected_devices(emu))


def test_other_customers_list_errors_are_not_retried_with_a_smaller_page(
    emu: Emulator, engine: Engine, db_url: str
) -> None:
    emu.faults.script = [404]
    result = sync(emu, settings_for(emu, db_url))
    assert result.status == "failed"
    assert emu.counts()["customers.list"] == 1


# --- SPEC guarantee 7: memory stays flat ---------------------------------------------------------

STAGING_BATCH_MAX = 2_000  # devices the stager may hold before it writes them


class CountingPages(httpx.BaseTransport):
    """Counts the findByOwner pages served, and lets a reader wait for the count to grow."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.pages = 0
        self.grew = threading.Condition()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith(":findByOwner") and response.status_code == 200:
            with self.grew:
                self.pages += 1
                self.grew.notify_all()
        return response


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_run_holds_a_bounded_number_of_pages_and_devices_whatever_the_fleet(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run streams: pages wait in a bounded queue, so a slow consumer stops the fetching,
    and the stager writes each batch, so it never holds more than one. Here the consumer
    stalls for a second at its third page while four request slots could fetch the whole
    fleet; afterwards, at every page, the pages served but not yet staged and the devices
    held unwritten stay under bounds that do not grow with the fleet (a third of it)."""
    workers = 4
    slot_pages = fetch.QUEUE_PAGES_PER_WORKER + 1  # its share of the queue, and the one it holds
    assert 1 <= fetch.QUEUE_PAGES_PER_WORKER <= 4, "0 would make the queue unbounded"
    pages_bound = workers * slot_pages
    emu = Emulator(generate_fleet(devices=7000, customers=16, seed=17, partner_id=7_000_000_017))
    served = CountingPages(emu.transport())
    seen: list[tuple[int, int]] = []  # after each page staged: (pages ahead, devices held)

    class WatchedStager(staging.Stager):
        def add_page(self, listing: int, page: Any) -> None:
            super().add_page(listing, page)
            staged = len(seen) + 1
            if staged == 3:  # the consumer stalls: the fetching must stop at the bound
                with served.grew:
                    served.grew.wait_for(lambda: served.pages > staged + pages_bound, timeout=1.0)
            seen.append((served.pages - staged, self.buffered))

    monkeypatch.setattr(staging, "Stager", WatchedStager)
    settings = settings_for(emu, db_url, api={"concurrency": workers, "page_size": 100})
    result = sync(emu, settings, transport=served)
    assert result.ok, result.error
    assert result.devices_added >= 3 * STAGING_BATCH_MAX, "the fleet must dwarf the bounds"
    assert len(seen) == served.pages
    ahead = max(a for a, _ in seen)
    assert ahead <= pages_bound, f"{ahead} pages fetched ahead of the consumer"
    held = max(h for _, h in seen)
    assert held <= STAGING_BATCH_MAX, f"the stager held {held} devices unwritten"

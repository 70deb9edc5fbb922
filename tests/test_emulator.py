"""The emulator's API: paging, encodings, errors, faults, mutations, lookups, loopback serving.

Every response that passes through ``checked_client`` is validated against the discovery
document's schema facts (or the google.rpc error shape).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from inventory.emulator import (
    Emulator,
    FaultConfig,
    Fleet,
    LoopbackServer,
    generate_fleet,
    run_server_forever,
    serve,
)
from inventory.emulator.routes import route
from inventory.emulator.schema import facts, validate, validate_error

PID = 1234567
ZT = "SECTION_TYPE_ZERO_TOUCH"
SL = "SECTION_TYPE_SIM_LOCK"
OWNER = f"/v1/partners/{PID}/devices:findByOwner"
IDENT = f"/v1/partners/{PID}/devices:findByIdentifier"
CUSTOMERS = f"/v1/partners/{PID}/customers"
METHOD_NAMES = {
    "partners.customers.list": "customers.list",
    "partners.devices.findByOwner": "findByOwner",
    "partners.devices.findByIdentifier": "findByIdentifier",
    "partners.devices.get": "devices.get",
    "partners.vendors.list": "vendors.list",
    "partners.vendors.customers.list": "vendors.customers.list",
}
SCHEMAS = {METHOD_NAMES[k]: m["response"] for k, m in facts()["methods"].items()}


class FakeClock:
    """A monotonic clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def checked_client(emu: Emulator) -> httpx.Client:
    """An httpx client on the in-process emulator that validates every answer's schema."""

    def handler(request: httpx.Request) -> httpx.Response:
        response = emu.handle(request)
        name = emu.request_log[-1].method
        body = json.loads(response.content)
        if name == "token":
            return response
        if response.status_code == 200:
            assert validate(body, SCHEMAS[name]) == [], body
        else:
            assert validate_error(body) == [], body
            assert body["error"]["code"] == response.status_code
        return response

    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://emulator.test")


@pytest.fixture
def emu() -> Emulator:
    return Emulator(generate_fleet(devices=400, customers=12, seed=11, partner_id=PID))


@pytest.fixture
def client(emu: Emulator) -> Iterator[httpx.Client]:
    with checked_client(emu) as c:
        yield c


def find_all(client: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Page a find method to its end; check totalSize and tokens on the way."""
    devices: list[dict[str, Any]] = []
    body = dict(body)
    token = body.pop("pageToken", None)
    resumed = token is not None
    totals = set()
    while True:
        page = client.post(path, json={**body, **({"pageToken": token} if token else {})})
        assert page.status_code == 200, page.text
        data = page.json()
        totals.add(data.get("totalSize", 0))
        devices += data.get("devices", [])
        token = data.get("nextPageToken")
        if not token:
            break
        assert data.get("devices"), "a page with a next token is never empty"
    assert len(totals) == 1
    if not resumed:
        assert totals == {len(devices)}
    return devices


def owned(
    emu: Emulator | list[dict[str, Any]],
    section: str,
    cids: set[str],
    gws: set[str] = frozenset(),
) -> list[str]:
    """Ground truth: ids of devices with a ``section`` claim by one of these owners."""
    return [
        d["deviceId"]
        for d in (emu if isinstance(emu, list) else emu.iter_devices())
        if any(
            c["sectionType"] == section
            and (c.get("ownerCompanyId") in cids or c.get("googleWorkspaceCustomerId") in gws)
            for c in d.get("claims", [])
        )
    ]


# ---------------------------------------------------------------------------------- paging
SHAPES = {
    "zipf": {"devices": 300, "customers": 12},
    "one-big-many-tiny": {"devices": 260, "customers": 41, "weights": [200.0] + [1.0] * 40},
    "with-empty": {"devices": 120, "customers": 4, "weights": [3.0, 0.0, 1.0, 0.0]},
}


@pytest.mark.parametrize("limit", [1, 7, 100])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_find_by_owner_pages_cover_every_device_once(shape: str, limit: int) -> None:
    emu = Emulator(generate_fleet(seed=5, partner_id=PID, **SHAPES[shape]))  # type: ignore[arg-type]
    ids = [c["companyId"] for c in emu.iter_customers()]
    truth = list(emu.iter_devices())
    with checked_client(emu) as client:
        per_customer = ids[:3] if limit == 1 and shape == "zipf" else ids  # page size 1: quick
        for cid in per_customer:
            got = find_all(client, OWNER, {"customerId": [cid], "sectionType": ZT, "limit": limit})
            assert [d["deviceId"] for d in got] == owned(truth, ZT, {cid})
        both = find_all(client, OWNER, {"customerId": ids, "sectionType": ZT, "limit": limit})
        assert [d["deviceId"] for d in both] == owned(truth, ZT, set(ids))
        assert [int(d["deviceId"]) for d in both] == sorted(int(d["deviceId"]) for d in both)


def test_empty_customer_answers_an_empty_message(client: httpx.Client, emu: Emulator) -> None:
    cid = emu.add_customer("Nobody Owns Anything Ltd")
    page = client.post(OWNER, json={"customerId": [str(cid)], "sectionType": ZT, "limit": 5})
    assert page.json() == {}  # proto3: no devices, no token, totalSize 0 omitted


def test_company_and_workspace_in_one_query_count_each_device_once(emu: Emulator) -> None:
    fleet = emu.fleet
    company = next(c for c in fleet.current_customers() if c.google_workspace_customer_id)
    cid, gws = str(company.company_id), company.google_workspace_customer_id
    assert gws is not None
    chrome = emu.add_device(
        company_id=company.company_id,
        identifiers={
            "serialNumber": "5CDX1",
            "chromeOsAttestedDeviceId": "ATT-1",
            "deviceType": "DEVICE_TYPE_CHROME_OS",
            "manufacturer": "HP",
            "model": "HP Chromebook 14 G7",
        },
    )
    with checked_client(emu) as client:
        body = {"customerId": [cid], "googleWorkspaceCustomerId": [gws], "sectionType": ZT}
        got = find_all(client, OWNER, {**body, "limit": 3})
        ids = [d["deviceId"] for d in got]
        assert len(ids) == len(set(ids))
        assert ids == owned(emu, ZT, {cid}, {gws})
        assert str(chrome) in ids
        body = {"googleWorkspaceCustomerId": [gws], "sectionType": ZT, "limit": 100}
        only_gws = find_all(client, OWNER, body)
        assert [d["deviceId"] for d in only_gws] == owned(emu, ZT, set(), {gws})
        assert str(chrome) in [d["deviceId"] for d in only_gws]
        for d in only_gws:
            assert any(c.get("googleWorkspaceCustomerId") == gws for c in d["claims"])


def test_workspace_only_claims_have_no_owner_company(client: httpx.Client, emu: Emulator) -> None:
    gws_only = [
        d
        for d in emu.iter_devices()
        if any(c["sectionType"] == ZT and "ownerCompanyId" not in c for c in d.get("claims", []))
    ]
    assert gws_only, "the generator makes Chrome OS devices claimed by a Workspace account alone"
    gws = gws_only[0]["claims"][-1]["googleWorkspaceCustomerId"]
    got = find_all(
        client, OWNER, {"googleWorkspaceCustomerId": [gws], "sectionType": ZT, "limit": 50}
    )
    assert gws_only[0] in got


def test_sim_lock_section_is_separate(client: httpx.Client, emu: Emulator) -> None:
    ids = [c["companyId"] for c in emu.iter_customers()]
    got = find_all(client, OWNER, {"customerId": ids, "sectionType": SL, "limit": 100})
    assert got
    assert [d["deviceId"] for d in got] == owned(emu, SL, set(ids))


def test_customers_list_pages(client: httpx.Client, emu: Emulator) -> None:
    everyone = list(emu.iter_customers())
    for params in ({}, {"pageSize": 0}):
        data = client.get(CUSTOMERS, params=params).json()
        assert data["customers"] == everyone
        assert "nextPageToken" not in data
        assert data["totalSize"] == len(everyone)
    seen, token = [], None
    while True:
        data = client.get(
            CUSTOMERS, params={"pageSize": 5, **({"pageToken": token} if token else {})}
        ).json()
        seen += data["customers"]
        token = data.get("nextPageToken")
        if not token:
            break
    assert seen == everyone
    assert all(int(c["companyId"]) > 0 and c["name"].endswith(c["companyId"]) for c in seen)


def test_input_only_owner_emails_can_be_withheld() -> None:
    fleet = generate_fleet(devices=10, customers=5, seed=2, partner_id=PID)
    assert any("ownerEmails" in c for c in Emulator(fleet).iter_customers())
    strict = Emulator(fleet, echo_input_only=False)
    with checked_client(strict) as client:
        listed = client.get(CUSTOMERS).json()["customers"]
    assert listed == list(strict.iter_customers())
    assert all("ownerEmails" not in c for c in listed)


def test_vendors_and_their_customers(client: httpx.Client) -> None:
    vendors = client.get(f"/v1/partners/{PID}/vendors").json()
    assert vendors["totalSize"] == len(vendors["vendors"]) >= 1
    vendor = vendors["vendors"][0]
    assert set(vendor) == {"companyId", "companyName", "name"}
    data = client.get(f"/v1/{vendor['name']}/customers", params={"pageSize": 1}).json()
    assert data["customers"][0]["name"].startswith(vendor["name"] + "/customers/")
    missing = client.get(f"/v1/partners/{PID}/vendors/42/customers")
    assert missing.status_code == 404


def test_devices_get(client: httpx.Client, emu: Emulator) -> None:
    device = next(emu.iter_devices())
    assert client.get(f"/v1/{device['name']}").json() == device
    assert client.get(f"/v1/partners/{PID}/devices/123").status_code == 404
    assert client.get(f"/v1/partners/{PID}/devices/abc").status_code == 400


def test_int64_values_above_2_pow_53_survive(emu: Emulator) -> None:
    big = [d for d in emu.iter_devices() if int(d["deviceId"]) > 2**53]
    assert big
    assert all(isinstance(d["deviceId"], str) for d in big)
    assert any(int(d["deviceId"]) != int(float(d["deviceId"])) for d in big)  # float64 loses them


# ---------------------------------------------------------------------------------- errors
def _find(limit: Any = 10, **extra: Any) -> dict[str, Any]:
    return {"customerId": ["1"], "sectionType": ZT, "limit": limit, **extra}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"customerId": ["1"], "sectionType": ZT}, "limit is required"),
        (_find(0), "between 1 and 100"),
        (_find(101), "between 1 and 100"),
        (_find("ten"), "TYPE_INT64"),
        (_find(True), "TYPE_INT64"),
        ({"customerId": ["1"], "limit": 5}, "section_type is required"),
        (_find(sectionType="SECTION_TYPE_UNSPECIFIED"), "must be specified"),
        (_find(sectionType="ZERO_TOUCH"), "section_type"),
        (_find(customerId=["12x"]), "customer_id[0]"),
        (_find(customerId="1"), "expected a list"),
        ({"sectionType": ZT, "limit": 5}, "customer_id or google_workspace_customer_id"),
        (_find(customerIds=["1"]), 'Unknown name "customerIds"'),
        (_find(pageToken="not-a-token"), "invalid page token"),
        (_find(pageToken=5), "TYPE_STRING"),
    ],
)
def test_find_by_owner_invalid_arguments(
    client: httpx.Client, body: dict[str, Any], fragment: str
) -> None:
    response = client.post(OWNER, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert fragment in error["message"]


def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post(
        OWNER, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "Invalid JSON payload" in response.json()["error"]["message"]
    assert client.post(OWNER, content=b"[1]").status_code == 400


def test_proto_field_names_and_numeric_int64_are_accepted(
    client: httpx.Client, emu: Emulator
) -> None:
    cid = next(emu.iter_customers())["companyId"]
    a = client.post(
        OWNER, json={"customer_id": [int(cid)], "section_type": ZT, "limit": "5"}
    ).json()
    b = client.post(OWNER, json={"customerId": [cid], "sectionType": ZT, "limit": 5}).json()
    assert a == b


def test_tampered_and_foreign_page_tokens_are_400(client: httpx.Client, emu: Emulator) -> None:
    ids = [c["companyId"] for c in emu.iter_customers()]
    first = client.post(OWNER, json={"customerId": ids, "sectionType": ZT, "limit": 2}).json()
    token = first["nextPageToken"]
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    for bad in (flipped, token[:-1], token + "A"):
        response = client.post(
            OWNER, json={"customerId": ids, "sectionType": ZT, "limit": 2, "pageToken": bad}
        )
        assert response.status_code == 400
    other_query = client.post(
        OWNER, json={"customerId": ids[:1], "sectionType": ZT, "limit": 2, "pageToken": token}
    )
    assert other_query.status_code == 400
    other_fleet = Emulator(generate_fleet(devices=400, customers=12, seed=12, partner_id=PID))
    with checked_client(other_fleet) as other:
        response = other.post(
            OWNER, json={"customerId": ids, "sectionType": ZT, "limit": 2, "pageToken": token}
        )
        assert response.status_code == 400
    # the same token is fine for the same query, with another page size
    again = client.post(
        OWNER, json={"customerId": ids, "sectionType": ZT, "limit": 3, "pageToken": token}
    )
    assert again.status_code == 200
    assert client.get(CUSTOMERS, params={"pageToken": token}).status_code == 400


@pytest.mark.parametrize(
    ("method", "path", "status", "status_name"),
    [
        ("GET", "/v1/partners/999/customers", 403, "PERMISSION_DENIED"),
        ("POST", "/v1/partners/999/devices:findByOwner", 403, "PERMISSION_DENIED"),
        ("GET", "/v1/partners/abc/customers", 400, "INVALID_ARGUMENT"),
        ("GET", "/v1/partners/1234567/nothing", 404, "NOT_FOUND"),
        ("GET", "/v2/whatever", 404, "NOT_FOUND"),
        ("DELETE", CUSTOMERS, 404, "NOT_FOUND"),
        ("POST", CUSTOMERS, 501, "UNIMPLEMENTED"),
        ("POST", "/v1/partners/1234567/devices:claim", 501, "UNIMPLEMENTED"),
    ],
)
def test_routing_errors(
    client: httpx.Client, method: str, path: str, status: int, status_name: str
) -> None:
    response = client.request(method, path, json=_find())
    assert response.status_code == status
    assert response.json()["error"]["status"] == status_name


def test_query_parameters(client: httpx.Client) -> None:
    assert client.get(CUSTOMERS, params={"alt": "json", "prettyPrint": "false"}).status_code == 200
    assert client.get(CUSTOMERS, params={"page_size": "1"}).status_code == 400
    assert client.get(CUSTOMERS, params={"pageSize": "x"}).status_code == 400
    assert client.get(CUSTOMERS, params={"pageSize": "-1"}).status_code == 400
    pretty = client.get(CUSTOMERS, params={"prettyPrint": "true"})
    assert pretty.text.startswith("{\n")


def test_routes_follow_the_discovery_paths() -> None:
    for method_id, fact in facts()["methods"].items():
        path = "/" + fact["flatPath"]
        for param in ("partnersId", "devicesId", "vendorsId"):
            path = path.replace("{" + param + "}", "77")
        assert route(fact["httpMethod"], path)[0] == METHOD_NAMES[method_id]


# ---------------------------------------------------------------------------------- faults
def test_quota_window_answers_429_with_retry_after() -> None:
    clock = FakeClock()
    emu = Emulator(
        generate_fleet(devices=50, customers=3, seed=1, partner_id=PID),
        clock=clock,
        faults=FaultConfig(quota_requests=3, quota_window_s=100.0),
    )
    with checked_client(emu) as client:
        for _ in range(3):
            assert client.get(CUSTOMERS).status_code == 200
            clock.advance(10)
        refused = client.get(CUSTOMERS)
        assert refused.status_code == 429
        assert refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert refused.headers["Retry-After"] == "70"  # the first request leaves the window at 100
        clock.advance(69)
        assert client.get(CUSTOMERS).headers["Retry-After"] == "1"
        clock.advance(1)
        assert client.get(CUSTOMERS).status_code == 200
    assert [r.fault for r in emu.request_log].count("quota") == 2


def test_fail_every_kth_request() -> None:
    emu = Emulator(
        generate_fleet(devices=50, customers=3, seed=1, partner_id=PID),
        faults=FaultConfig(fail_every=3, retry_after_s=2.5),
    )
    with checked_client(emu) as client:
        answers = [client.get(CUSTOMERS) for _ in range(7)]
    assert [a.status_code for a in answers] == [200, 200, 429, 200, 200, 429, 200]
    assert answers[2].headers["Retry-After"] == "3"


def test_error_rate_is_seeded() -> None:
    def run() -> list[int]:
        emu = Emulator(
            generate_fleet(devices=20, customers=2, seed=1, partner_id=PID),
            faults=FaultConfig(error_rate=0.5, seed=99),
        )
        with checked_client(emu) as client:
            return [client.get(CUSTOMERS).status_code for _ in range(30)]

    first = run()
    assert first == run()
    assert {500, 503} <= set(first)
    assert 200 in first


def test_dropped_connections_in_process(emu: Emulator, client: httpx.Client) -> None:
    emu.faults.drop_rate = 1.0
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(CUSTOMERS)
    assert emu.request_log[-1].status == 0
    assert emu.request_log[-1].fault == "drop_rate"
    emu.faults.drop_rate = 0.0
    assert client.get(CUSTOMERS).status_code == 200


def test_scripted_faults_are_consumed_in_order(emu: Emulator, client: httpx.Client) -> None:
    emu.faults.script = [500, 503, "drop", None, 429]
    statuses: list[int | str] = []
    for _ in range(6):
        try:
            statuses.append(client.get(CUSTOMERS).status_code)
        except httpx.RemoteProtocolError:
            statuses.append("drop")
    assert statuses == [500, 503, "drop", 200, 429, 200]
    assert emu.faults.script == []


def test_latency_uses_the_injected_sleep() -> None:
    slept: list[float] = []
    emu = Emulator(
        generate_fleet(devices=20, customers=2, seed=1, partner_id=PID),
        faults=FaultConfig(latency_s=0.25),
        sleep=slept.append,
        clock=lambda: 100.0,
    )
    with checked_client(emu) as client:
        client.get(CUSTOMERS)
        client.get(CUSTOMERS)
    assert slept == [0.25, 0.25]


def test_latency_counts_the_emulators_own_work() -> None:
    """A call takes latency_s in all: the time spent answering is not added on top of it."""
    now = [100.0]
    slept: list[float] = []
    emu = Emulator(
        generate_fleet(devices=20, customers=2, seed=1, partner_id=PID),
        faults=FaultConfig(latency_s=0.25),
        sleep=slept.append,
        clock=lambda: now[0],
    )
    answer = emu.api.handlers["customers.list"]
    cost = [0.1]

    def slow(*args: Any) -> Any:
        now[0] += cost[0]  # the time this answer took
        return answer(*args)

    emu.api.handlers["customers.list"] = slow
    with checked_client(emu) as client:
        assert client.get(CUSTOMERS).status_code == 200
        cost[0] = 0.4  # longer than latency_s: nothing more to sleep
        assert client.get(CUSTOMERS).status_code == 200
    assert slept == [pytest.approx(0.15), 0.0]


def test_request_log_and_counts(emu: Emulator, client: httpx.Client) -> None:
    cid = next(emu.iter_customers())["companyId"]
    client.get(CUSTOMERS)
    client.post(OWNER, json={"customerId": [cid], "sectionType": ZT, "limit": 1})
    client.post(IDENT, json={"deviceIdentifier": {"imei": "1"}, "limit": 1})
    client.get("/nowhere")
    assert emu.counts() == {
        "customers.list": 1,
        "findByOwner": 1,
        "findByIdentifier": 1,
        "unknown": 1,
    }
    record = emu.request_log[1]
    assert record.method == "findByOwner"
    assert record.status == 200
    assert record.path == OWNER
    assert record.body == {"customerId": [cid], "sectionType": ZT, "limit": 1}
    assert record.headers["content-type"] == "application/json"
    emu.clear_log()
    assert emu.counts() == {}
    assert emu.request_log == []


# ------------------------------------------------------------------------------- mutations
def _ids(client: httpx.Client, cid: str, section: str = ZT) -> list[str]:
    return [
        d["deviceId"]
        for d in find_all(
            client, OWNER, {"customerId": [cid], "sectionType": section, "limit": 100}
        )
    ]


def _busy_customers(emu: Emulator) -> tuple[str, str]:
    counts = sorted(
        (len(owned(emu, ZT, {c["companyId"]})), c["companyId"]) for c in emu.iter_customers()
    )
    return counts[-1][1], counts[-2][1]


def test_move_unclaim_claim_show_up_in_the_next_listing(
    emu: Emulator, client: httpx.Client
) -> None:
    a, b = _busy_customers(emu)
    device = _ids(client, a)[0]
    emu.move_device(int(device), int(b))
    assert device not in _ids(client, a)
    assert device in _ids(client, b)
    emu.unclaim(int(device))
    assert device not in _ids(client, b)
    found = client.get(f"/v1/partners/{PID}/devices/{device}").json()
    assert all(c["sectionType"] != ZT for c in found.get("claims", []))
    emu.claim(int(device), int(a))
    assert device in _ids(client, a)
    with pytest.raises(ValueError, match="already has"):
        emu.claim(int(device), int(b))
    with pytest.raises(KeyError):
        emu.move_device(int(device), 42)


def test_metadata_add_and_remove(emu: Emulator, client: httpx.Client) -> None:
    a, _ = _busy_customers(emu)
    device = _ids(client, a)[0]
    emu.set_metadata(int(device), {"ünï": "ç" * 600, "site": "Lyon"})
    got = client.get(f"/v1/partners/{PID}/devices/{device}").json()
    assert got["deviceMetadata"] == {"entries": {"ünï": "ç" * 600, "site": "Lyon"}}
    emu.set_metadata(int(device), {})
    assert "deviceMetadata" not in client.get(f"/v1/partners/{PID}/devices/{device}").json()
    new = emu.add_device(company_id=int(a), metadata={"k": "v"})
    assert str(new) == _ids(client, a)[-1]
    assert new > int(device)
    assert new == max(int(d["deviceId"]) for d in emu.iter_devices())
    emu.remove_device(new)
    assert str(new) not in _ids(client, a)
    assert client.get(f"/v1/partners/{PID}/devices/{new}").status_code == 404
    with pytest.raises(KeyError):
        emu.remove_device(new)


def test_remove_customer(emu: Emulator, client: httpx.Client) -> None:
    a, _ = _busy_customers(emu)
    devices = _ids(client, a)
    emu.remove_customer(int(a))
    assert a not in [c["companyId"] for c in client.get(CUSTOMERS).json()["customers"]]
    assert _ids(client, a) == []
    for did in devices:
        claims = client.get(f"/v1/partners/{PID}/devices/{did}").json().get("claims", [])
        assert all(c.get("ownerCompanyId") != a for c in claims)


def test_paging_survives_mutations_between_pages(emu: Emulator, client: httpx.Client) -> None:
    a, b = _busy_customers(emu)
    before = _ids(client, a)
    first = client.post(OWNER, json={"customerId": [a], "sectionType": ZT, "limit": 3}).json()
    emu.remove_device(int(before[1]))  # already returned
    emu.move_device(int(before[5]), int(b))  # not yet returned
    rest = find_all(
        client,
        OWNER,
        {"customerId": [a], "sectionType": ZT, "limit": 3, "pageToken": first["nextPageToken"]},
    )
    seen = [d["deviceId"] for d in first["devices"]] + [d["deviceId"] for d in rest]
    assert len(rest) == len(before) - 2 - 2  # 3 returned before, one removed, one moved away
    assert len(seen) == len(set(seen))
    assert seen == before[:3] + [d for d in before[3:] if d != before[5]]


# ------------------------------------------------------------------------ findByIdentifier
def _identify(client: httpx.Client, ident: dict[str, str], limit: int = 10) -> list[dict[str, Any]]:
    return find_all(client, IDENT, {"deviceIdentifier": ident, "limit": limit})


def _device_with(emu: Emulator, *fields: str, claimed: bool | None = None) -> dict[str, Any]:
    for d in emu.iter_devices():
        if all(f in d["deviceIdentifier"] for f in fields) and (
            claimed is None or bool(d.get("claims")) == claimed
        ):
            return d
    raise AssertionError(f"no device with {fields}")


def test_find_by_imei_matches_either_slot(emu: Emulator, client: httpx.Client) -> None:
    d = _device_with(emu, "imei", "imei2")
    assert _identify(client, {"imei": d["deviceIdentifier"]["imei2"]}) == [d]
    assert _identify(client, {"imei2": d["deviceIdentifier"]["imei"]}) == [d]
    assert (
        _identify(client, {"imei": d["deviceIdentifier"]["imei"], "manufacturer": "nobody"}) == []
    )
    assert _identify(client, {"imei": "490154203237518"}) == []


def test_find_by_meid_serial_and_attested_id(emu: Emulator, client: httpx.Client) -> None:
    meid = _device_with(emu, "meid")
    assert _identify(client, {"meid": meid["deviceIdentifier"]["meid"].lower()}) == [meid]
    d = _device_with(emu, "serialNumber")
    ident = d["deviceIdentifier"]
    query = {
        "serialNumber": ident["serialNumber"].lower(),
        "manufacturer": ident["manufacturer"].upper(),
    }
    assert _identify(client, query) == [d]
    assert _identify(client, {**query, "model": ident["model"]}) == [d]
    assert _identify(client, {**query, "model": "Other"}) == []
    assert _identify(client, {**query, "manufacturer": "Other"}) == []
    chrome = _device_with(emu, "chromeOsAttestedDeviceId")
    assert _identify(
        client, {"chromeOsAttestedDeviceId": chrome["deviceIdentifier"]["chromeOsAttestedDeviceId"]}
    ) == [chrome]
    assert _identify(client, {**query, "deviceType": "DEVICE_TYPE_CHROME_OS"}) == (
        [d] if ident.get("deviceType") == "DEVICE_TYPE_CHROME_OS" else []
    )


def test_find_by_identifier_sees_unclaimed_devices(emu: Emulator, client: httpx.Client) -> None:
    loose = _device_with(emu, "imei", claimed=False)
    assert "claims" not in loose
    assert _identify(client, {"imei": loose["deviceIdentifier"]["imei"]}) == [loose]


def test_find_by_identifier_pages_duplicate_serials(emu: Emulator, client: httpx.Client) -> None:
    same = {"serialNumber": "SN-DUP-1", "manufacturer": "Zebra Technologies"}
    first = emu.add_device(identifiers={**same, "model": "TC52"})
    second = emu.add_device(identifiers={**same, "model": "ET40"})
    got = _identify(
        client, {"serialNumber": "sn-dup-1", "manufacturer": "zebra technologies"}, limit=1
    )
    assert [d["deviceId"] for d in got] == [str(first), str(second)]
    assert [d["deviceId"] for d in _identify(client, {**same, "model": "ET40"})] == [str(second)]


@pytest.mark.parametrize(
    ("ident", "fragment"),
    [
        ({"serialNumber": "X"}, "needs a manufacturer"),
        ({"manufacturer": "Google"}, "needs an imei"),
        ({"imei": 5}, "TYPE_STRING"),
        ({"imei3": "1"}, "Unknown name"),
        ({"imei": "1", "deviceType": "PHONE"}, "device_type"),
    ],
)
def test_find_by_identifier_invalid(
    client: httpx.Client, ident: dict[str, Any], fragment: str
) -> None:
    response = client.post(IDENT, json={"deviceIdentifier": ident, "limit": 5})
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]
    assert client.post(IDENT, json={"limit": 5}).status_code == 400
    assert client.post(IDENT, json={"deviceIdentifier": {"imei": "1"}}).status_code == 400


# --------------------------------------------------------------------------------- loopback
def test_loopback_server_serves_pages_and_drops_connections() -> None:
    fleet: Fleet = generate_fleet(devices=300, customers=5, seed=2, partner_id=PID)
    emu = Emulator(fleet)
    cid = next(emu.iter_customers())["companyId"]
    with serve(emu) as server, httpx.Client(base_url=server.url) as client:
        assert server.url.startswith("http://127.0.0.1:")
        assert emu.base_url == server.url
        assert server.token_uri == server.url + "/token"
        got = find_all(client, OWNER, {"customerId": [cid], "sectionType": ZT, "limit": 100})
        assert [d["deviceId"] for d in got] == owned(emu, ZT, {cid})
        emu.faults.script = ["drop", 503]
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(CUSTOMERS)
        busy = client.get(CUSTOMERS)
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == "1"
        assert client.get(CUSTOMERS).json()["customers"] == list(emu.iter_customers())
    server.close()  # idempotent


def test_serve_refuses_non_loopback_hosts(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="loopback"):
        serve(emu, host="0.0.0.0")


def test_loopback_server_handles_concurrent_clients_and_closes_open_connections() -> None:
    emu = Emulator(generate_fleet(devices=500, customers=6, seed=8, partner_id=PID))
    ids = [c["companyId"] for c in emu.iter_customers()]
    truth = list(emu.iter_devices())
    server = serve(emu)
    lingering = httpx.Client(base_url=server.url)
    try:
        assert lingering.get(CUSTOMERS).status_code == 200  # keeps a keep-alive connection open

        def page_one(cid: str) -> list[str]:
            with httpx.Client(base_url=server.url) as client:
                body = {"customerId": [cid], "sectionType": ZT, "limit": 9}
                return [d["deviceId"] for d in find_all(client, OWNER, body)]

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(page_one, ids))
        assert results == [owned(truth, ZT, {cid}) for cid in ids]
    finally:
        server.close()  # must not hang on the lingering connection
        lingering.close()


def test_run_server_forever_until_stopped(tmp_path: Path) -> None:
    stop = threading.Event()
    seen: list[str] = []
    key = tmp_path / "sa.json"

    def ready(server: LoopbackServer) -> None:
        seen.append(server.url)
        with httpx.Client(base_url=server.url) as client:
            seen.append(str(client.get(CUSTOMERS).status_code))
        stop.set()

    worker = threading.Thread(
        target=run_server_forever,
        kwargs={
            "devices": 50,
            "customers": 3,
            "seed": 1,
            "port": 0,
            "faults": FaultConfig(),
            "partner_id": PID,
            "service_account_key": key,
            "ready": ready,
            "stop": stop,
        },
    )
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert seen[0].startswith("http://127.0.0.1:")
    assert seen[1] == "200"
    assert json.loads(key.read_text())["token_uri"] == seen[0] + "/token"

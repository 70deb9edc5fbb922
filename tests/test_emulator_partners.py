"""One emulator serving several reseller partners: their own fleets, shared customers, devices
two partners know, a device handed from one partner to another, keys linked to some partners,
and vendors per partner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.oauth2 import service_account

from inventory import db
from inventory.auth import HttpxRequest
from inventory.config import settings_from
from inventory.emulator import SCOPE, Emulator, coverage, generate_fleet
from inventory.store import make_engine
from inventory.sync import run_sync

A, B, C = 1234567, 1234568, 1234569
ZT = "SECTION_TYPE_ZERO_TOUCH"
SL = "SECTION_TYPE_SIM_LOCK"


@pytest.fixture(scope="module")
def fleet_args() -> dict[str, Any]:
    return {"devices": 400, "customers": 10, "seed": 5, "partner_id": A, "partners": 3}


@pytest.fixture
def emu(fleet_args: dict[str, Any]) -> Emulator:
    return Emulator(generate_fleet(**fleet_args))


@pytest.fixture
def client(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(transport=emu.transport(), base_url="http://emulator.test") as c:
        yield c


def customers(client: httpx.Client, pid: int) -> list[dict[str, Any]]:
    data = client.get(f"/v1/partners/{pid}/customers").json()
    assert data["totalSize"] == len(data["customers"])
    return list(data["customers"])


def listing(client: httpx.Client, pid: int, section: str, cids: list[str]) -> list[str]:
    ids: list[str] = []
    token = None
    while True:
        body = {"customerId": cids, "sectionType": section, "limit": 100}
        page = client.post(
            f"/v1/partners/{pid}/devices:findByOwner",
            json={**body, **({"pageToken": token} if token else {})},
        )
        assert page.status_code == 200, page.text
        ids += [d["deviceId"] for d in page.json().get("devices", [])]
        token = page.json().get("nextPageToken")
        if not token:
            return ids


def test_each_partner_has_its_own_fleet_and_a_few_shared_customers(
    emu: Emulator, client: httpx.Client, fleet_args: dict[str, Any]
) -> None:
    assert emu.partner_ids == (A, B, C)
    assert emu.partner_id == A
    lists = {pid: customers(client, pid) for pid in (A, B, C)}
    ids = {pid: {c["companyId"] for c in listed} for pid, listed in lists.items()}
    assert all(len(listed) == fleet_args["customers"] for listed in lists.values())
    shared = ids[A] & ids[B]
    assert len(shared) == 2
    assert shared == ids[A] & ids[C] == ids[B] & ids[C]
    for pid, listed in lists.items():
        assert all(c["name"] == f"partners/{pid}/customers/{c['companyId']}" for c in listed)
    # each partner claims devices for the shared customers, in its own listings
    for cid in shared:
        mine = {pid: listing(client, pid, ZT, [cid]) for pid in (A, B)}
        assert mine[A]
        assert mine[B]
        assert not set(mine[A]) & set(mine[B])
    devices = {pid: {d["deviceId"] for d in emu.iter_devices(pid)} for pid in (A, B, C)}
    assert len(devices[A] | devices[B] | devices[C]) == 3 * fleet_args["devices"]


def test_a_device_known_to_two_partners(emu: Emulator, client: httpx.Client) -> None:
    known = [
        d for d in emu.iter_devices() if len({c["resellerId"] for c in d.get("claims", [])}) == 2
    ]
    assert len(known) == 2 * 3  # shared_devices per pair of neighbouring partners
    device = known[0]
    by_section = {c["sectionType"]: c for c in device["claims"]}
    zt_owner, zt_partner = by_section[ZT]["ownerCompanyId"], int(by_section[ZT]["resellerId"])
    sl_owner, sl_partner = by_section[SL]["ownerCompanyId"], int(by_section[SL]["resellerId"])
    assert zt_partner != sl_partner
    assert device["deviceId"] in listing(client, zt_partner, ZT, [zt_owner])
    assert device["deviceId"] in listing(client, sl_partner, SL, [sl_owner])
    assert device["deviceId"] not in listing(client, sl_partner, ZT, [zt_owner])
    for pid in (zt_partner, sl_partner):
        got = client.get(f"/v1/partners/{pid}/devices/{device['deviceId']}")
        assert got.json() == {**device, "name": f"partners/{pid}/devices/{device['deviceId']}"}
        found = client.post(
            f"/v1/partners/{pid}/devices:findByIdentifier",
            json={"deviceIdentifier": device["deviceIdentifier"], "limit": 5},
        )
        assert [d["deviceId"] for d in found.json()["devices"]] == [device["deviceId"]]
    stranger = ({A, B, C} - {zt_partner, sl_partner}).pop()
    assert client.get(f"/v1/partners/{stranger}/devices/{device['deviceId']}").status_code == 404


def test_transfer_device_moves_it_to_another_partner(emu: Emulator, client: httpx.Client) -> None:
    of_a = {c["companyId"] for c in customers(client, A)}
    of_b = {c["companyId"] for c in customers(client, B)}
    cid, b_only = sorted(of_a - of_b)[0], sorted(of_b - of_a)[0]
    device = listing(client, A, ZT, [cid])[0]
    emu.transfer_device(int(device), B, int(b_only))
    assert device not in listing(client, A, ZT, [cid])
    assert device in listing(client, B, ZT, [b_only])
    got = client.get(f"/v1/partners/{B}/devices/{device}").json()
    zt = next(c for c in got["claims"] if c["sectionType"] == ZT)
    assert (zt["ownerCompanyId"], zt["resellerId"]) == (b_only, str(B))
    kept_by_a = [c for c in got["claims"] if c["resellerId"] == str(A)]
    assert client.get(f"/v1/partners/{A}/devices/{device}").status_code == (
        200 if kept_by_a else 404
    )
    with pytest.raises(KeyError, match=f"no customer with companyId {b_only} of partner {A}"):
        emu.transfer_device(int(device), A, int(b_only))


def test_partners_it_does_not_serve_get_403(client: httpx.Client) -> None:
    answer = client.get("/v1/partners/1234570/customers")
    assert answer.status_code == 403
    assert answer.json()["error"]["status"] == "PERMISSION_DENIED"


def test_vendors_answer_per_partner(client: httpx.Client) -> None:
    vendors = {pid: client.get(f"/v1/partners/{pid}/vendors").json()["vendors"] for pid in (A, B)}
    assert {v["companyId"] for v in vendors[A]}.isdisjoint(v["companyId"] for v in vendors[B])
    for pid, listed in vendors.items():
        for vendor in listed:
            assert vendor["name"] == f"partners/{pid}/vendors/{vendor['companyId']}"
            them = client.get(f"/v1/{vendor['name']}/customers").json()["customers"]
            assert all(c["name"].startswith(vendor["name"] + "/customers/") for c in them)
    foreign = vendors[B][0]["companyId"]
    assert client.get(f"/v1/partners/{A}/vendors/{foreign}/customers").status_code == 404


def test_page_tokens_belong_to_their_partner(client: httpx.Client) -> None:
    token = client.get(f"/v1/partners/{A}/customers", params={"pageSize": 2}).json()
    answer = client.get(f"/v1/partners/{B}/customers", params={"pageToken": token["nextPageToken"]})
    assert answer.status_code == 400


def test_single_partner_fleets_are_unchanged(fleet_args: dict[str, Any]) -> None:
    default = {k: v for k, v in fleet_args.items() if k != "partners"}
    single = generate_fleet(**default, partners=1)
    assert single.partner_ids == (A,)
    assert list(single.iter_devices()) == list(generate_fleet(**default).iter_devices())
    several = generate_fleet(**fleet_args)
    # the first partner's customers are those of the single-partner fleet
    assert list(several.iter_customers(partner_id=A)) == list(single.iter_customers())
    with pytest.raises(ValueError, match="partners"):
        generate_fleet(devices=1, customers=1, partners=0)


# ------------------------------------------------------------------------------- keys
def _token(client: httpx.Client, key: Path) -> str:
    creds = service_account.Credentials.from_service_account_file(str(key), scopes=[SCOPE])
    creds.refresh(HttpxRequest(client))
    return str(creds.token)


def test_keys_linked_to_some_partners(fleet_args: dict[str, Any], tmp_path: Path) -> None:
    emu = Emulator(generate_fleet(**fleet_args), auth="token")
    per_partner = emu.write_service_account_key(tmp_path / "a.json", partner_ids=[A])
    two = emu.write_service_account_key(tmp_path / "ab.json", partner_ids=[A, B])
    unlinked = emu.write_service_account_key(tmp_path / "any.json")
    with httpx.Client(transport=emu.transport(), base_url=emu.base_url) as client:
        keys = {"a": per_partner, "ab": two, "any": unlinked}
        tokens = {name: _token(client, key) for name, key in keys.items()}

        def status(name: str, pid: int) -> int:
            headers = {"Authorization": f"Bearer {tokens[name]}"}
            return client.get(f"/v1/partners/{pid}/customers", headers=headers).status_code

        assert [status("a", pid) for pid in (A, B, C)] == [200, 403, 403]
        assert [status("ab", pid) for pid in (A, B, C)] == [200, 200, 403]
        assert [status("any", pid) for pid in (A, B, C)] == [200, 200, 200]
        refused = client.get(
            f"/v1/partners/{B}/customers", headers={"Authorization": f"Bearer {tokens['a']}"}
        )
        assert refused.json()["error"]["status"] == "PERMISSION_DENIED"
        emu.link_key(unlinked, [C])  # linking again replaces the partners
        assert [status("any", pid) for pid in (A, B, C)] == [403, 403, 200]


# ------------------------------------------------------------------------------- sync
def test_a_sync_of_another_partner_finds_its_default_listing(emu: Emulator, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    engine = make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    settings = settings_from(
        {
            "partner": {"id": B},
            "auth": {"credentials": "anonymous"},
            "api": {"endpoint": "http://emulator.test", "quota_per_100s": 0},
            "database": {"url": url},
        }
    )
    result = run_sync(settings, transport=emu.transport(), sleep=lambda _: None)
    assert result.status == "succeeded", result.error
    assert result.devices_seen == coverage(emu.fleet, B).listed

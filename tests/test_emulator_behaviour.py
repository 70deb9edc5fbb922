"""The emulator's ``Behaviour`` switches: every reading of what the discovery document leaves
open (both owner kinds in one findByOwner, an id cap, offset page tokens, per-owner totals,
churn) and the request hooks that change the fleet while a client pages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import httpx
import pytest

from inventory.emulator import Behaviour, Emulator, generate_fleet

PID = 1234567
ZT = "SECTION_TYPE_ZERO_TOUCH"
OWNER = f"/v1/partners/{PID}/devices:findByOwner"
IDENT = f"/v1/partners/{PID}/devices:findByIdentifier"
CUSTOMERS = f"/v1/partners/{PID}/customers"


@pytest.fixture
def emu() -> Emulator:
    return Emulator(generate_fleet(devices=600, customers=12, seed=11, partner_id=PID))


@pytest.fixture
def client(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(transport=emu.transport(), base_url="http://emulator.test") as c:
        yield c


def pages(client: httpx.Client, path: str, body: dict[str, Any]) -> tuple[list[str], set[int]]:
    """Page a find method to its end; return the device ids in order and the totalSizes seen."""
    ids: list[str] = []
    totals: set[int] = set()
    token = None
    while True:
        page = client.post(path, json={**body, **({"pageToken": token} if token else {})})
        assert page.status_code == 200, page.text
        data = page.json()
        ids += [d["deviceId"] for d in data.get("devices", [])]
        totals.add(data.get("totalSize", 0))
        token = data.get("nextPageToken")
        if not token:
            return ids, totals


def zt_claims(emu: Emulator) -> dict[str, dict[str, Any]]:
    """Ground truth: each device's zero-touch claim, by deviceId."""
    return {
        d["deviceId"]: c
        for d in emu.iter_devices()
        for c in d.get("claims", [])
        if c["sectionType"] == ZT
    }


def company_with_workspace(emu: Emulator) -> tuple[str, str]:
    """A customer whose company and Workspace account both claim devices, and some only one."""
    claims = zt_claims(emu)
    for c in emu.iter_customers():
        gws = c.get("googleWorkspaceAccount", {}).get("customerId")
        mine = [x for x in claims.values() if x.get("ownerCompanyId") == c["companyId"]]
        alone = [
            x
            for x in claims.values()
            if x.get("googleWorkspaceCustomerId") == gws and "ownerCompanyId" not in x
        ]
        both = [x for x in mine if x.get("googleWorkspaceCustomerId") == gws]
        if gws and alone and both and len(both) < len(mine):
            return c["companyId"], gws
    raise AssertionError("the fleet has no customer with every kind of claim")


def owned(emu: Emulator, test: Callable[[dict[str, Any]], bool]) -> list[str]:
    return [did for did, claim in zt_claims(emu).items() if test(claim)]


# ------------------------------------------------------------------------------ owners
def both_kinds(cid: str, gws: str, limit: int = 7) -> dict[str, Any]:
    """A findByOwner body naming a company and a Workspace account."""
    return {
        "customerId": [cid],
        "googleWorkspaceCustomerId": [gws],
        "sectionType": ZT,
        "limit": limit,
    }


@pytest.mark.parametrize(("mode", "matches"), [("union", any), ("intersect", all)])
def test_union_and_intersect_list_and_count_their_devices(
    emu: Emulator, client: httpx.Client, mode: str, matches: Callable[[list[bool]], bool]
) -> None:
    """union: devices of either owner, each counted once; intersect: claims naming both."""
    cid, gws = company_with_workspace(emu)
    emu.behaviour.owners = mode
    expected = owned(
        emu,
        lambda c: matches(
            [c.get("ownerCompanyId") == cid, c.get("googleWorkspaceCustomerId") == gws]
        ),
    )
    ids, totals = pages(client, OWNER, both_kinds(cid, gws, limit=4))
    assert ids == expected
    assert totals == {len(expected)}
    by_company = owned(emu, _by(cid))
    if mode == "union":
        assert set(by_company) < set(expected)
    else:
        assert 0 < len(expected) < len(by_company)
    # one kind of owner alone is not affected
    alone, _ = pages(client, OWNER, {"customerId": [cid], "sectionType": ZT, "limit": 100})
    assert alone == by_company


def test_reject_answers_400_for_both_kinds_only(emu: Emulator, client: httpx.Client) -> None:
    cid, gws = company_with_workspace(emu)
    emu.behaviour.owners = "reject"
    both = client.post(OWNER, json=both_kinds(cid, gws))
    assert both.status_code == 400
    error = both.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == (
        "Request contains an invalid argument: customer_id and google_workspace_customer_id "
        "cannot be set in the same request."
    )
    for one in ({"customerId": [cid]}, {"googleWorkspaceCustomerId": [gws]}):
        assert client.post(OWNER, json={**one, "sectionType": ZT, "limit": 5}).status_code == 200


# -------------------------------------------------------------------------- id cap
def test_ids_per_request_cap_at_and_beyond(emu: Emulator, client: httpx.Client) -> None:
    cids = [c["companyId"] for c in emu.iter_customers()]
    _, gws = company_with_workspace(emu)
    emu.behaviour.max_ids_per_request = 3
    at_cap = {"customerId": cids[:2], "googleWorkspaceCustomerId": [gws], "sectionType": ZT}
    assert client.post(OWNER, json={**at_cap, "limit": 5}).status_code == 200
    beyond = client.post(OWNER, json={**at_cap, "customerId": cids[:3], "limit": 5})
    assert beyond.status_code == 400
    assert beyond.json()["error"] == {
        "code": 400,
        "message": "Request contains an invalid argument: at most 3 customer_id and "
        "google_workspace_customer_id values are allowed in one request; got 4.",
        "status": "INVALID_ARGUMENT",
    }
    emu.behaviour.max_ids_per_request = 0  # no cap
    assert client.post(OWNER, json={"customerId": cids, "sectionType": ZT, "limit": 5}).is_success


# ---------------------------------------------------------------------------- totals
def test_per_owner_total_counts_a_device_once_per_matching_owner(
    emu: Emulator, client: httpx.Client
) -> None:
    cid, gws = company_with_workspace(emu)
    emu.behaviour.total_size = "per_owner"
    by_company = owned(emu, _by(cid))
    by_space = owned(emu, lambda c: c.get("googleWorkspaceCustomerId") == gws)
    ids, totals = pages(client, OWNER, both_kinds(cid, gws, limit=10))
    assert len(ids) == len(set(by_company) | set(by_space))  # the listing itself is unchanged
    assert totals == {len(by_company) + len(by_space)}
    assert len(by_company) + len(by_space) > len(ids)  # devices naming both count twice
    emu.behaviour.owners = "intersect"
    ids, totals = pages(client, OWNER, both_kinds(cid, gws, limit=10))
    assert totals == {2 * len(ids)}  # each listed device matches one company and one account
    _, single = pages(client, OWNER, {"customerId": [cid], "sectionType": ZT, "limit": 100})
    assert single == {len(by_company)}


# ----------------------------------------------------------------------- page tokens
def _first_page_then(
    client: httpx.Client, path: str, body: dict[str, Any], change: Callable[[], None]
) -> list[str]:
    """Read page one, make ``change``, then read every other page; return the ids in order."""
    first = client.post(path, json=body).json()
    ids = [d["deviceId"] for d in first["devices"]]
    change()
    rest, _ = pages(client, path, {**body, "pageToken": first["nextPageToken"]})
    return ids + rest


@pytest.mark.parametrize("mode", ["keyset", "offset"])
@pytest.mark.parametrize("change", ["leaves", "joins"])
def test_a_device_that_leaves_or_joins_earlier_in_the_order_between_pages(
    emu: Emulator, client: httpx.Client, mode: str, change: str
) -> None:
    emu.behaviour.page_tokens = mode
    cid = _biggest(emu)
    before = owned(emu, _by(cid))
    if change == "leaves":
        act = partial(emu.unclaim, int(before[1]))
        offset_sees = before[:5] + before[6:]  # later pages shift on: the sixth is never returned
    else:
        others = owned(emu, lambda c: c.get("ownerCompanyId") not in (None, cid))
        joining = next(d for d in others if int(d) < int(before[3]))
        act = partial(emu.move_device, int(joining), int(cid))
        offset_sees = before[:5] + before[4:]  # later pages shift back: the fifth comes twice
    body = {"customerId": [cid], "sectionType": ZT, "limit": 5}
    seen = _first_page_then(client, OWNER, body, act)
    # keyset tokens resume after the last device returned: nothing skipped, nothing twice (a
    # newcomer before that position is simply not returned)
    assert seen == (before if mode == "keyset" else offset_sees)


def _by(cid: str) -> Callable[[dict[str, Any]], bool]:
    return lambda c: c.get("ownerCompanyId") == cid


def _biggest(emu: Emulator) -> str:
    """The companyId of the customer with the most zero-touch devices."""
    return max(
        (c["companyId"] for c in emu.iter_customers()), key=lambda cid: len(owned(emu, _by(cid)))
    )


def test_offset_tokens_in_find_by_identifier_and_customers_list(
    emu: Emulator, client: httpx.Client
) -> None:
    emu.behaviour.page_tokens = "offset"
    same = {"serialNumber": "SN-OFFSET", "manufacturer": "Zebra Technologies"}
    added = [str(emu.add_device(identifiers={**same, "model": f"M{n}"})) for n in range(4)]
    body = {"deviceIdentifier": same, "limit": 2}
    seen = _first_page_then(client, IDENT, body, lambda: emu.remove_device(int(added[0])))
    assert seen == added[:2] + added[3:]

    everyone = [c["companyId"] for c in emu.iter_customers()]
    first = client.get(CUSTOMERS, params={"pageSize": 4}).json()
    emu.remove_customer(int(everyone[0]))
    rest = client.get(CUSTOMERS, params={"pageSize": 100, "pageToken": first["nextPageToken"]})
    listed = [c["companyId"] for c in first["customers"] + rest.json()["customers"]]
    assert listed == everyone[:4] + everyone[5:]


def test_offset_tokens_are_signed_and_bound_to_their_query(
    emu: Emulator, client: httpx.Client
) -> None:
    emu.behaviour.page_tokens = "offset"
    cids = [c["companyId"] for c in emu.iter_customers()]
    body = {"customerId": cids, "sectionType": ZT, "limit": 3}
    token = client.post(OWNER, json=body).json()["nextPageToken"]
    assert not token.isdigit()
    flipped = token[:12] + ("A" if token[12] != "A" else "B") + token[13:]
    assert client.post(OWNER, json={**body, "pageToken": flipped}).status_code == 400
    other = {**body, "customerId": cids[:2], "pageToken": token}
    assert client.post(OWNER, json=other).status_code == 400
    assert client.post(OWNER, json={**body, "pageToken": token}).status_code == 200


# ---------------------------------------------------------------------- mid-run hooks
def test_after_requests_runs_once_before_the_nth_matching_request(
    emu: Emulator, client: httpx.Client
) -> None:
    cid = next(emu.iter_customers())["companyId"]
    calls: list[int] = []
    hook = emu.after_requests(2, lambda e: calls.append(len(e.request_log)))
    anything = emu.after_requests(1, lambda e: calls.append(-1), method=None)
    client.get(CUSTOMERS)  # not a findByOwner: only the catch-all counts it
    assert calls == [-1]
    assert anything.fired
    assert not hook.fired
    body = {"customerId": [cid], "sectionType": ZT, "limit": 1}
    for _ in range(3):
        assert client.post(OWNER, json=body).status_code == 200
    assert calls == [-1, 2]  # before the second findByOwner was logged
    assert hook.fired
    with pytest.raises(ValueError, match="1 or more"):
        emu.after_requests(0, lambda e: None)


# ------------------------------------------------------------------------------ churn
def _page_with_churn(mode: str) -> tuple[list[str], list[str], list[int]]:
    emu = Emulator(
        generate_fleet(devices=600, customers=12, seed=11, partner_id=PID),
        behaviour=Behaviour(page_tokens=mode, churn_every=3),
    )
    with httpx.Client(transport=emu.transport(), base_url="http://emulator.test") as client:
        cid = _biggest(emu)
        before = owned(emu, _by(cid))
        seen, _ = pages(client, OWNER, {"customerId": [cid], "sectionType": ZT, "limit": 4})
        assert not set(map(str, emu.churned)) & set(owned(emu, _by(cid)))
    return before, seen, emu.churned


def test_churn_makes_offset_tokens_skip_and_leaves_keyset_tokens_whole() -> None:
    before, seen, churned = _page_with_churn("keyset")
    assert churned
    assert seen == before  # every device left after it was returned
    before, seen, churned = _page_with_churn("offset")
    assert len(seen) == len(set(seen))
    assert len(seen) == len(before) - len(churned)  # one device skipped per change
    assert set(seen) < set(before)
    assert _page_with_churn("offset")[2] == churned  # the same seed makes the same changes


def test_assigning_a_behaviour_restarts_churn(emu: Emulator, client: httpx.Client) -> None:
    cid = next(emu.iter_customers())["companyId"]
    body = {"customerId": [cid], "sectionType": ZT, "limit": 1}
    emu.behaviour = Behaviour(churn_every=2)
    client.post(OWNER, json=body)
    emu.behaviour = Behaviour(churn_every=2)
    client.post(OWNER, json=body)
    assert emu.churned == []
    client.post(OWNER, json=body)
    assert len(emu.churned) == 1


# ------------------------------------------------------------------------- validation
def test_behaviour_checks_every_assignment() -> None:
    assert Behaviour().changed() == {}
    assert Behaviour(page_tokens="offset", churn_every=5).changed() == {
        "page_tokens": "offset",
        "churn_every": 5,
    }
    with pytest.raises(ValueError, match="owners must be one of"):
        Behaviour(owners="both")
    behaviour = Behaviour()
    with pytest.raises(ValueError, match="page_tokens"):
        behaviour.page_tokens = "cursor"
    with pytest.raises(ValueError, match="whole number"):
        behaviour.max_ids_per_request = -1
    with pytest.raises(ValueError, match="whole number"):
        Behaviour(churn_every=True)
    assert behaviour == Behaviour()

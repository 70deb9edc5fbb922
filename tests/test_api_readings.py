"""The sync is correct under every reading of the API that the discovery document allows.

The document leaves open what a findByOwner request naming both companies and Workspace
accounts returns, how many ids a request may name, whether page tokens are keysets or offsets,
and how ``totalSize`` counts (``inventory.emulator.Behaviour``). The emulator behaves each way;
the sync must give the exact fleet under each, and never mark a still-registered device removed.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from inventory.emulator import Behaviour, Emulator, generate_fleet
from tests.helpers.reliability import owned_by
from tests.syncutil import ZT, assert_equals_fleet, expected_devices, settings_for, sync


def _fleet(**behaviour: Any) -> Emulator:
    fleet = generate_fleet(devices=700, customers=10, seed=61, partner_id=7_000_000_061)
    return Emulator(fleet, behaviour=Behaviour(**behaviour), keep_responses=True)


def _owner_requests(emu: Emulator) -> list[dict[str, Any]]:
    return [r.body for r in emu.request_log if r.method == "findByOwner" and r.status == 200]


def _removed(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT device_id FROM devices WHERE removed_at IS NOT NULL"))
        return {int(r[0]) for r in rows}


@pytest.mark.parametrize("owners", ["union", "intersect", "reject"])
def test_exact_whatever_a_request_naming_both_owner_kinds_returns(
    engine: Engine, db_url: str, owners: str
) -> None:
    emu = _fleet(owners=owners)
    customers = {c["companyId"]: c for c in emu.iter_customers()}
    spaces = {c["googleWorkspaceAccount"]["customerId"] for c in customers.values()
              if c.get("googleWorkspaceAccount")}  # fmt: skip
    alone = [
        d
        for d in emu.iter_devices()
        for c in d.get("claims", [])
        if c.get("sectionType") == ZT
        and "ownerCompanyId" not in c
        and c.get("googleWorkspaceCustomerId") in spaces
    ]
    assert alone, "the fleet has Chrome OS devices claimed by a customer's Workspace id alone"
    result = sync(emu, settings_for(emu, db_url, api={"page_size": 20}))
    assert result.ok, result.error
    assert_equals_fleet(engine, expected_devices(emu))
    assert all(int(d["deviceId"]) in expected_devices(emu) for d in alone)
    bodies = _owner_requests(emu)
    assert bodies
    assert not any(b.get("customerId") and b.get("googleWorkspaceCustomerId") for b in bodies)


@pytest.mark.parametrize("totals", ["distinct", "per_owner"])
def test_exact_however_total_size_counts(engine: Engine, db_url: str, totals: str) -> None:
    emu = _fleet(total_size=totals)
    result = sync(emu, settings_for(emu, db_url, api={"page_size": 20}))
    assert result.ok, result.error
    assert_equals_fleet(engine, expected_devices(emu))


def test_a_server_capping_ids_per_request_gets_halves(engine: Engine, db_url: str) -> None:
    emu = _fleet(max_ids_per_request=2)
    # one request slot: 4 company listings of 2 or 3 customers; those of 3 are refused
    result = sync(emu, settings_for(emu, db_url, api={"concurrency": 1, "page_size": 20}))
    assert result.ok, result.error
    assert_equals_fleet(engine, expected_devices(emu))
    refused = [r for r in emu.request_log if r.method == "findByOwner" and r.status == 400]
    assert refused, "the cap must have been hit"
    assert any("refused 3 owners" in w for w in result.warnings), result.warnings
    named = [len(b.get("customerId", []) + b.get("googleWorkspaceCustomerId", []))
             for b in _owner_requests(emu)]  # fmt: skip
    assert max(named) <= 2
    assert all(x.complete for x in result.listings)


def test_the_configured_cap_spares_the_refused_requests(engine: Engine, db_url: str) -> None:
    emu = _fleet(max_ids_per_request=2)
    settings = settings_for(emu, db_url, api={"concurrency": 1, "max_ids_per_request": 2})
    result = sync(emu, settings)
    assert result.ok, result.error
    assert not [r for r in emu.request_log if r.status == 400]
    assert_equals_fleet(engine, expected_devices(emu))


@pytest.mark.parametrize("tokens", ["keyset", "offset"])
def test_devices_leaving_listings_while_they_page_are_never_falsely_removed(
    engine: Engine, db_url: str, tokens: str
) -> None:
    emu = _fleet(page_tokens=tokens)
    settings = settings_for(emu, db_url, api={"page_size": 20, "concurrency": 2})
    assert sync(emu, settings).ok
    emu.behaviour.churn_every = 5  # every 5th findByOwner, a device of its listing leaves it
    result = sync(emu, settings)
    assert emu.churned, "devices must have left their listings mid-run"
    assert result.status in ("succeeded", "partial"), result.error
    truth = expected_devices(emu)
    assert not _removed(engine) & set(truth), "a device still listed was marked removed"
    emu.behaviour.churn_every = 0
    assert sync(emu, settings).ok
    assert_equals_fleet(engine, expected_devices(emu))


class _ShiftOnce(httpx.BaseTransport):
    """Before the second page of one customer's listing: the first device of its first page
    leaves the fleet and a new device joins at the end. With offset tokens the next page
    starts one device late (one still-registered device is skipped) while totalSize and the
    count of devices returned both stay right: nothing in the listing shows it."""

    def __init__(self, emu: Emulator, company: int) -> None:
        self.emu, self.company, self.inner = emu, company, emu.transport()
        self.left: int | None = None
        self.joined: int | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}") if request.method == "POST" else {}
        if (
            self.left is None
            and body.get("customerId") == [str(self.company)]
            and body.get("pageToken")
        ):
            self.left = owned_by(self.emu, self.company)[0]
            self.emu.remove_device(self.left)
            self.joined = self.emu.add_device(company_id=self.company)
        return self.inner.handle_request(request)


def test_a_skip_nothing_in_the_listing_shows_is_caught_before_a_removal(
    engine: Engine, db_url: str
) -> None:
    emu = _fleet(page_tokens="offset")
    biggest = max(
        (int(c["companyId"]) for c in emu.iter_customers()), key=lambda c: len(owned_by(emu, c))
    )
    assert len(owned_by(emu, biggest)) > 40  # three pages of 20
    # one customer a listing, so that the customer's listing is a request body of its own
    settings = settings_for(
        emu, db_url, api={"page_size": 20, "concurrency": 3, "max_ids_per_request": 1}
    )
    assert sync(emu, settings).ok
    skipped = owned_by(emu, biggest)[20]  # the first device of the second page, as it was
    shift = _ShiftOnce(emu, biggest)
    result = sync(emu, settings, transport=shift)
    assert shift.left is not None
    assert shift.joined is not None
    assert result.ok, result.error  # nothing in any listing says it was incomplete
    assert skipped not in _removed(engine), "the skipped device was marked removed"
    assert any(f"device {skipped} is still registered" in w for w in result.warnings)
    checks = [r for r in emu.request_log if r.method == "devices.get"]
    assert [r.path.rsplit("/", 1)[1] for r in checks] == [str(skipped)]
    assert_equals_fleet(engine, {**expected_devices(emu), shift.left: _was(engine, shift.left)})


def _was(engine: Engine, device_id: int) -> dict[str, Any]:
    """The device as the snapshot holds it (the run saw it on its first page, before it left)."""
    with engine.connect() as conn:
        raw = conn.execute(
            text("SELECT raw FROM devices WHERE device_id = :d"), {"d": device_id}
        ).scalar_one()
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


def test_the_client_asks_for_compact_gzipped_json(engine: Engine, db_url: str) -> None:
    """Google indents its JSON unless asked not to, and gzips only for a User-Agent that says
    gzip: the client asks for both, so the answers arrive compact and compressed."""
    emu = _fleet()
    assert sync(emu, settings_for(emu, db_url)).ok
    api = [r for r in emu.request_log if r.method != "token"]
    assert api
    assert {r.query.get("prettyPrint") for r in api} == {"false"}
    assert all("gzip" in r.headers["user-agent"] for r in api)
    assert all("gzip" in r.headers["accept-encoding"] for r in api)
    pages = [r for r in api if r.method == "findByOwner" and r.status == 200]
    sent = sum(r.bytes_sent for r in pages)
    plain = sum(len(json.dumps(r.response, separators=(",", ":")).encode()) for r in pages)
    assert sent < plain / 3, (sent, plain)  # gzip on compact JSON

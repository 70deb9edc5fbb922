"""Several reseller accounts in one database (``[[partners]]``): one run syncs each with its own
client, token and listings; removals are decided per partner; a partner that fails is left as
it was while the others apply; vendors are synced like customers. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from inventory import db
from inventory.config import Settings, settings_from
from inventory.emulator import Emulator, generate_fleet
from inventory.errors import ConfigError
from inventory.store import make_engine, runs
from inventory.sync import SyncResult, run_sync
from tests.syncutil import FakeSleep

A, B = 1234567, 1234568
ZT = "SECTION_TYPE_ZERO_TOUCH"
SL = "SECTION_TYPE_SIM_LOCK"
BOTH = [ZT, SL]


def fleet(auth: str = "anonymous") -> Emulator:
    """Two partners' fleets (two customers and a few devices shared); ``auth="token"`` for
    tests of key files."""
    fleet = generate_fleet(devices=300, customers=8, seed=11, partner_id=A, partners=2)
    return Emulator(fleet, auth=auth)


def settings(emu: Emulator, db_url: str, partners: list[dict[str, Any]], **auth: Any) -> Settings:
    return settings_from(
        {
            "partners": partners,
            "auth": auth or {"credentials": "anonymous"},
            "api": {"endpoint": "http://emulator.test", "quota_per_100s": 0, "max_retries": 2},
            "database": {"url": db_url},
            "sync": {"section_types": BOTH},
        }
    )


def sync(emu: Emulator, s: Settings, **kwargs: Any) -> SyncResult:
    return run_sync(s, transport=emu.transport(), sleep=FakeSleep(), **kwargs)


def rows(engine: Engine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def current(engine: Engine) -> dict[int, int]:
    """{device id: its partner} of the current devices."""
    found = rows(engine, "SELECT device_id, partner_id FROM devices WHERE removed_at IS NULL")
    return {int(d): int(p) for d, p in found}


def known(emu: Emulator, pid: int) -> set[int]:
    """The devices a partner's listings return: a claim it made (in a synced section) for one
    of its customers (or their vendors' customers), or for one's Workspace account."""
    companies = {int(c["companyId"]) for c in emu.iter_customers(pid)}
    companies |= {c.company_id for v in emu.fleet.vendors_of(pid) for c in v.customers}
    spaces = {
        c["googleWorkspaceAccount"]["customerId"]
        for c in emu.iter_customers(pid)
        if c.get("googleWorkspaceAccount", {}).get("customerId")
    }
    return {
        int(d["deviceId"])
        for d in emu.iter_devices(pid)
        if any(
            c.get("resellerId") == str(pid)
            and c.get("sectionType") in BOTH
            and (
                int(c.get("ownerCompanyId", 0)) in companies
                or c.get("googleWorkspaceCustomerId") in spaces
            )
            for c in d.get("claims", [])
        )
    }


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return tmp_path


def test_one_key_for_two_partners_syncs_both_with_one_token_and_one_limiter(
    engine: Engine, db_url: str, keys: Path
) -> None:
    emu = fleet(auth="token")
    key = emu.write_service_account_key(keys / "ab.json", partner_ids=[A, B])
    result = sync(emu, settings(emu, db_url, [{"id": A}, {"id": B}], credentials=str(key)))
    assert result.status == "succeeded", (result.error, result.warnings)
    assert emu.counts()["token"] == 1  # one key file, one token for both partners
    stored = current(engine)
    assert set(stored) == known(emu, A) | known(emu, B)
    # a device both partners claim (shared) belongs to the first partner that lists it
    for device_id in known(emu, A) & known(emu, B):
        assert stored[device_id] == A
    for device_id in known(emu, B) - known(emu, A):
        assert stored[device_id] == B
    # a customer of both partners has a row for each
    customers = rows(engine, "SELECT partner_id, company_id FROM customers")
    per_partner = {pid: {c for p, c in customers if p == pid} for pid in (A, B)}
    assert len(per_partner[A]) == len(per_partner[B]) == 8
    assert len(per_partner[A] & per_partner[B]) == 2
    assert rows(engine, "SELECT partner_id, status FROM sync_run_partners ORDER BY 1") == [
        (A, "succeeded"),
        (B, "succeeded"),
    ]
    listed = rows(engine, "SELECT DISTINCT partner_id FROM sync_listings ORDER BY 1")
    assert listed == [(A,), (B,)]
    views = rows(engine, "SELECT partner_id, COUNT(*) FROM v_devices GROUP BY partner_id")
    assert {p: n for p, n in views} == {A: sum(1 for p in stored.values() if p == A),
                                        B: sum(1 for p in stored.values() if p == B)}  # fmt: skip


def test_one_key_per_partner_and_requests_are_the_sum_of_one_partner_runs(
    db_url: str, keys: Path, tmp_path: Path
) -> None:
    emu = fleet(auth="token")
    key_a = emu.write_service_account_key(keys / "a.json", partner_ids=[A])
    key_b = emu.write_service_account_key(keys / "b.json", partner_ids=[B])
    engine = make_engine(db_url)
    try:
        db.upgrade(engine)
        both = settings(
            emu,
            db_url,
            [{"id": A, "credentials": str(key_a)}, {"id": B, "credentials": str(key_b)}],
        )
        result = sync(emu, both)
        assert result.status == "succeeded", (result.error, result.warnings)
        assert emu.counts()["token"] == 2
        together = result.api_requests
    finally:
        engine.dispose()
    # each partner alone, into a database of its own
    alone = 0
    for pid, key in ((A, key_a), (B, key_b)):
        url = f"sqlite:///{tmp_path / f'alone-{pid}.db'}"
        single = make_engine(url)
        try:
            db.upgrade(single)
        finally:
            single.dispose()
        one = sync(emu, settings(emu, url, [{"id": pid, "credentials": str(key)}]))
        assert one.status == "succeeded", one.error
        alone += one.api_requests
    assert together <= alone


def test_a_partner_whose_key_is_refused_is_left_as_it_was_while_the_other_applies(
    engine: Engine, db_url: str, keys: Path
) -> None:
    emu = fleet(auth="token")
    key = emu.write_service_account_key(keys / "ab.json", partner_ids=[A, B])
    both = settings(emu, db_url, [{"id": A}, {"id": B}], credentials=str(key))
    assert sync(emu, both).status == "succeeded"
    before = current(engine)
    b_customers = rows(engine, "SELECT * FROM customers WHERE partner_id = :p ORDER BY 2", p=B)
    # B's fleet changes, then the key loses its link to B: B's customers.list gets 403
    gone_b = sorted(known(emu, B) - known(emu, A))[:5]
    for device_id in gone_b:
        emu.remove_device(device_id)
    gone_a = sorted(known(emu, A) - known(emu, B))[:3]
    for device_id in gone_a:
        emu.remove_device(device_id)
    emu.link_key(key, [A])
    result = sync(emu, both)
    assert result.status == "partial"
    outcome = {p.partner_id: p for p in result.partners}
    assert outcome[A].status == "succeeded"
    assert outcome[B].status == "failed"
    assert "403" in (outcome[B].error or "") or "PERMISSION" in (outcome[B].error or "")
    assert any(f"partner {B}: customers.list failed" in w for w in result.warnings)
    after = current(engine)
    assert set(before) - set(after) == set(gone_a)  # A's removals applied, none of B's
    assert all(d in after for d in gone_b)
    assert rows(engine, "SELECT * FROM customers WHERE partner_id = :p ORDER BY 2", p=B) == (
        b_customers
    )
    assert result.devices_removed == len(gone_a)
    with engine.connect() as conn:
        assert runs.last_full_success(conn)["run_id"] == 1  # type: ignore[index]
        per_partner = runs.last_full_per_partner(conn)
    assert {p: r["run_id"] for p, r in per_partner.items()} == {A: 2, B: 1}
    assert not result.fleet_fresh
    assert result.partners_fresh == [A]


def test_every_partner_failing_fails_the_run(engine: Engine, db_url: str, keys: Path) -> None:
    emu = fleet(auth="token")
    key = emu.write_service_account_key(keys / "none.json", partner_ids=[])
    result = sync(emu, settings(emu, db_url, [{"id": A}, {"id": B}], credentials=str(key)))
    assert result.status == "failed"
    assert rows(engine, "SELECT COUNT(*) FROM devices") == [(0,)]
    assert rows(engine, "SELECT DISTINCT status FROM sync_run_partners") == [("failed",)]


def test_a_device_moving_between_partners_changes_partner_and_is_not_removed(
    engine: Engine, db_url: str
) -> None:
    emu = fleet()
    both = settings(emu, db_url, [{"id": A}, {"id": B}])
    assert sync(emu, both).status == "succeeded"
    device_id = sorted(known(emu, A) - known(emu, B))[0]
    b_customer = next(c["companyId"] for c in emu.iter_customers(B))
    emu.transfer_device(device_id, B, int(b_customer))
    result = sync(emu, both)
    assert result.status == "succeeded", result.error
    assert result.devices_removed == 0
    assert current(engine)[device_id] == B
    changes = rows(
        engine,
        "SELECT change, partner_id, company_id FROM v_device_changes "
        "WHERE device_id = :d ORDER BY version_id",
        d=device_id,
    )
    assert [c[:2] for c in changes] == [("added", A), ("moved", B)]
    assert changes[-1][2] == int(b_customer)
    # the device's zero-touch owner is now B's customer, named from B's customer list
    [(partner, company_name)] = rows(
        engine, "SELECT partner_id, company_name FROM v_devices WHERE device_id = :d", d=device_id
    )
    expected = next(c["companyName"] for c in emu.iter_customers(B) if c["companyId"] == b_customer)
    assert (partner, company_name) == (B, expected)


def test_a_partner_run_leaves_the_other_partner_alone(engine: Engine, db_url: str) -> None:
    emu = fleet()
    both = settings(emu, db_url, [{"id": A}, {"id": B}])
    assert sync(emu, both).status == "succeeded"
    before = current(engine)
    gone_b = sorted(known(emu, B) - known(emu, A))[:4]
    for device_id in gone_b:
        emu.remove_device(device_id)
    result = sync(emu, both, partners=[A])
    assert result.status == "succeeded", result.error
    assert result.scope == "partners"
    assert [p.partner_id for p in result.partners] == [A]
    assert current(engine) == before  # B's removals wait for a run of B
    assert rows(engine, "SELECT DISTINCT partner_id FROM sync_listings WHERE run_id = 2") == [(A,)]
    with engine.connect() as conn:
        assert runs.last_full_success(conn)["run_id"] == 1  # type: ignore[index]
        assert {p: r["run_id"] for p, r in runs.last_full_per_partner(conn).items()} == {
            A: 2,
            B: 1,
        }
    result = sync(emu, both, partners=[B])
    assert result.devices_removed == len(gone_b)
    with pytest.raises(ConfigError, match="--partner 99: not a configured partner"):
        sync(emu, both, partners=[99])


def test_each_partner_lists_its_own_customers_and_section_types(
    engine: Engine, db_url: str
) -> None:
    emu = fleet()
    some = next(c["companyId"] for c in emu.iter_customers(B))
    s = settings(
        emu, db_url, [{"id": A, "section_types": [ZT]}, {"id": B, "customers": [int(some)]}]
    )
    result = sync(emu, s)
    assert result.status == "succeeded", result.error
    assert result.scope == "customers"
    listings = [x for x in result.listings if x.kind == "find_by_owner"]
    assert {x.section_type for x in listings if x.partner_id == A} == {ZT}
    assert {c for x in listings if x.partner_id == B for c in x.company_ids} == {int(some)}
    assert {x.section_type for x in listings if x.partner_id == B} == set(BOTH)


def test_vendors_are_synced_with_first_seen_and_soft_delete(engine: Engine, db_url: str) -> None:
    emu = fleet()
    both = settings(emu, db_url, [{"id": A}, {"id": B}])
    assert sync(emu, both).status == "succeeded"
    vendors = {pid: emu.fleet.vendors_of(pid) for pid in (A, B)}
    stored = rows(engine, "SELECT partner_id, vendor_id, company_name FROM vendors ORDER BY 1, 2")
    assert stored == sorted(
        (pid, v.company_id, v.company_name) for pid, listed in vendors.items() for v in listed
    )
    customers = rows(
        engine, "SELECT partner_id, vendor_id, company_id FROM vendor_customers ORDER BY 1, 2, 3"
    )
    assert customers == sorted(
        (pid, v.company_id, c.company_id)
        for pid, listed in vendors.items()
        for v in listed
        for c in v.customers
    )
    first_seen = dict(
        (r[0], r[1]) for r in rows(engine, "SELECT vendor_id, first_seen_at FROM vendors")
    )
    # a vendor customer that owns a device: v_vendor_devices names the vendor
    vendor = vendors[A][0]
    owner = vendor.customers[0].company_id
    device_id = sorted(known(emu, A) - known(emu, B))[0]
    emu.move_device(device_id, owner, partner_id=A)
    # and a vendor's customer leaves it
    left = vendors[B][-1].customers.pop()
    assert sync(emu, both).status == "succeeded"
    assert rows(
        engine,
        "SELECT partner_id, vendor_id, vendor_name, company_id, device_id FROM v_vendor_devices",
    ) == [(A, vendor.company_id, vendor.company_name, owner, device_id)]
    gone = rows(
        engine,
        "SELECT removed_at IS NOT NULL FROM vendor_customers WHERE company_id = :c",
        c=left.company_id,
    )
    assert gone == [(True,)]
    assert rows(engine, "SELECT COUNT(*) FROM vendor_customers WHERE removed_at IS NULL") == [
        (len(customers) - 1,)
    ]
    again = dict((r[0], r[1]) for r in rows(engine, "SELECT vendor_id, first_seen_at FROM vendors"))
    assert again == first_seen
    # it comes back: current again, first seen as before
    vendors[B][-1].customers.append(left)
    assert sync(emu, both).status == "succeeded"
    assert rows(
        engine,
        "SELECT removed_at FROM vendor_customers WHERE company_id = :c",
        c=left.company_id,
    ) == [(None,)]


def test_vendors_a_partner_cannot_list_are_left_as_they_were(engine: Engine, db_url: str) -> None:
    emu = fleet()
    both = settings(emu, db_url, [{"id": A}, {"id": B}])
    assert sync(emu, both).status == "succeeded"
    stored = rows(engine, "SELECT * FROM vendors ORDER BY 1, 2")

    class RefuseVendors(httpx.BaseTransport):
        def __init__(self, inner: httpx.BaseTransport) -> None:
            self.inner = inner

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/vendors"):
                error = {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}
                return httpx.Response(403, json={"error": error}, request=request)
            return self.inner.handle_request(request)

    result = run_sync(both, transport=RefuseVendors(emu.transport()), sleep=FakeSleep())
    assert result.status == "partial"
    assert {p.partner_id: p.status for p in result.partners} == {A: "partial", B: "partial"}
    assert rows(engine, "SELECT * FROM vendors ORDER BY 1, 2") == stored
    assert any("vendors could not be listed" in w for w in result.warnings)


def test_a_one_partner_database_is_upgraded_in_place_and_downgraded(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """A database that a one-partner version synced, at revision 0009, upgraded by 0010: its
    rows get the partner id, and a re-sync finds nothing changed. 0010 downgrades too."""
    emu = Emulator(generate_fleet(devices=300, customers=8, seed=3, partner_id=A))
    one = settings(emu, db_url, [{"id": A}])
    imei = next(
        d["deviceIdentifier"]["imei"]
        for d in emu.iter_devices()
        if d.get("claims") and d["deviceIdentifier"].get("imei")
    )
    csv = tmp_path / "shipped.csv"
    csv.write_text(f"imei\n{imei}\n")
    first = sync(emu, one, identifiers_file=str(csv))
    assert first.status == "succeeded", first.error
    devices = current(engine)
    db.downgrade(engine, "0009")  # as revision 0009's code left it
    insp = inspect(engine)
    assert "vendors" not in insp.get_table_names()
    assert "partner_id" not in {c["name"] for c in insp.get_columns("sync_listings")}
    assert insp.get_pk_constraint("customers")["constrained_columns"] == ["company_id"]
    assert rows(engine, "SELECT COUNT(*) FROM v_devices") == [(len(devices),)]
    db.upgrade(engine)
    assert inspect(engine).get_pk_constraint("customers")["constrained_columns"] == [
        "partner_id",
        "company_id",
    ]
    for table in ("sync_listings", "identifier_lookups", "device_versions", "customers"):
        assert rows(engine, f"SELECT DISTINCT partner_id FROM {table}") == [(A,)], table
    assert rows(engine, "SELECT run_id, partner_id, status FROM sync_run_partners") == [
        (1, A, "succeeded")
    ]
    assert rows(engine, "SELECT COUNT(*) FROM v_reconciliation WHERE state = 'ok'") == [(1,)]
    again = sync(emu, one, identifiers_file=str(csv))
    assert again.status == "succeeded", again.error
    assert (again.devices_added, again.devices_changed, again.devices_removed) == (0, 0, 0)
    assert current(engine) == devices
    with engine.connect() as conn:
        assert runs.last_full_per_partner(conn)[A]["run_id"] == 2


def test_status_shows_each_partners_last_full_run(engine: Engine, db_url: str) -> None:
    from inventory.display import status_items
    from inventory.status import collect_status

    emu = fleet()
    both = settings(emu, db_url, [{"id": A}, {"id": B}])
    assert sync(emu, both).status == "succeeded"
    assert sync(emu, both, partners=[B]).status == "succeeded"
    with engine.connect() as conn:
        data = collect_status(conn, 5)
    assert [(p["partner_id"], p["full_run_id"]) for p in data["partners"]] == [(A, 1), (B, 2)]
    lines = [x for x in status_items(data, "db") if isinstance(x, str)]
    assert any(x.startswith(f"Partner {A}: last synced in full by run 1,") for x in lines)
    assert any(x.startswith(f"Partner {B}: last synced in full by run 2,") for x in lines)


def test_a_device_two_partners_know_stays_as_it_is_when_one_is_synced_alone(
    engine: Engine, db_url: str
) -> None:
    """A device that partner A lists (zero touch) and partner B too (SIM lock) belongs to A
    after a full run; a run of B alone sees it unchanged: no version, no change of partner."""
    emu = fleet()
    both = settings(emu, db_url, [{"id": A}, {"id": B}])
    assert sync(emu, both).status == "succeeded"
    shared = known(emu, A) & known(emu, B)
    assert shared, "the fleet must have devices both partners list"
    versions = rows(engine, "SELECT COUNT(*) FROM device_versions")
    for partners in ([B], [A], [B], None):
        result = sync(emu, both, partners=partners)
        assert result.status == "succeeded", result.error
        assert (result.devices_added, result.devices_changed, result.devices_removed) == (0, 0, 0)
        # each partner's devices seen, unchanged ones included
        assert sum(p.devices_seen for p in result.partners) == result.devices_seen > 0
        assert all(p.devices_seen > 0 for p in result.partners)
    assert rows(engine, "SELECT COUNT(*) FROM device_versions") == versions
    assert all(current(engine)[d] == A for d in shared)


def test_v_devices_names_a_vendors_customer(engine: Engine, db_url: str) -> None:
    emu = fleet()
    vendor = emu.fleet.vendors_of(A)[0]
    device_id = sorted(known(emu, A) - known(emu, B))[0]
    emu.move_device(device_id, vendor.customers[0].company_id, partner_id=A)
    assert sync(emu, settings(emu, db_url, [{"id": A}, {"id": B}])).status == "succeeded"
    assert rows(
        engine, "SELECT company_id, company_name FROM v_devices WHERE device_id = :d", d=device_id
    ) == [(vendor.customers[0].company_id, vendor.customers[0].company_name)]


def test_status_names_a_partner_never_synced_whole(engine: Engine, db_url: str, keys: Path) -> None:
    """Found running sync against a key linked to one of two accounts: status said only that
    no full run had succeeded, not which partner was missing."""
    from inventory.display import status_items
    from inventory.status import collect_status

    emu = fleet(auth="token")
    key = emu.write_service_account_key(keys / "a.json", partner_ids=[A])
    result = sync(emu, settings(emu, db_url, [{"id": A}, {"id": B}], credentials=str(key)))
    assert result.status == "partial"
    with engine.connect() as conn:
        data = collect_status(conn, 5)
    lines = [x for x in status_items(data, "db") if isinstance(x, str)]
    assert any(x.startswith(f"Partner {A}: last synced in full by run 1,") for x in lines)
    assert f"Partner {B}: never synced in full yet" in "\n".join(lines)

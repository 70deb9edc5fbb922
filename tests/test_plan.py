"""How a run splits its owners into findByOwner listings (``inventory.sync.plan``)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from inventory.emulator import Emulator, generate_fleet
from inventory.store import snapshot
from inventory.sync.plan import (
    LISTINGS_PER_WORKER,
    MAX_IDS_PER_LISTING,
    PlannedListing,
    listing_chunks,
    plan_listings,
)
from tests.syncutil import ZT, settings_for
from tests.syncutil import sync as run


@pytest.mark.parametrize("n", [1, 7, 31, 400, 401, 4000, 20_000, 20_001])
@pytest.mark.parametrize("concurrency", [1, 4, 8])
def test_chunks_cover_every_owner_once_in_order_with_sizes_one_apart(
    n: int, concurrency: int
) -> None:
    owners = list(range(n))
    chunks = listing_chunks(owners, concurrency)
    assert [o for chunk in chunks for o in chunk] == owners
    sizes = [len(c) for c in chunks]
    assert min(sizes) >= 1
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True), "the larger listings go first"
    assert max(sizes) <= MAX_IDS_PER_LISTING
    if n >= concurrency * LISTINGS_PER_WORKER:
        # every round of `concurrency` listings is a full one: no slot idles in the last
        assert len(chunks) % concurrency == 0
        assert len(chunks) >= concurrency * LISTINGS_PER_WORKER
    else:
        assert len(chunks) == n  # fewer owners than listings wanted: one listing each


def test_no_short_last_listing() -> None:
    # 400 owners, 8 requests at a time: 32 listings of 12 or 13 owners. Chunks of
    # ceil(400 / 32) = 13 made 31 listings, the last of 10, and a final round on 7 slots.
    sizes = [len(c) for c in listing_chunks(list(range(400)), 8)]
    assert len(sizes) == 32
    assert sorted(set(sizes)) == [12, 13]


def test_the_cap_on_ids_per_listing_sets_the_count() -> None:
    chunks = listing_chunks(list(range(1001)), 4, max_ids=10)
    assert max(len(c) for c in chunks) <= 10
    assert len(chunks) == 104  # ceil(1001 / 10) = 101, rounded up to a multiple of 4
    planned = listing_chunks(list(range(1001)), 4, [1] * 1001, max_ids=10)
    assert max(len(c) for c in planned) <= 10
    assert sorted(i for c in planned for i in c) == list(range(1001))


def test_the_default_cap_is_google_s_reseller_library_s() -> None:
    assert MAX_IDS_PER_LISTING == 100
    assert max(len(c) for c in listing_chunks(list(range(5200)), 4)) == 100  # 52 listings


def test_no_owners_no_listings() -> None:
    assert listing_chunks([], 8) == []


# --- literal plans of small hand-made inputs -----------------------------------------------------


def test_a_blind_plan_is_runs_of_owners_one_apart_in_size_the_larger_first() -> None:
    # 2 slots x 4 listings per slot = 8 listings for 10 owners: two of 2, six of 1
    assert listing_chunks(list("abcdefghij"), 2) == [
        ["a", "b"], ["c", "d"], ["e"], ["f"], ["g"], ["h"], ["i"], ["j"],
    ]  # fmt: skip


def test_a_planned_split_starts_the_heavy_owners_at_once_on_their_own_slots() -> None:
    # Owners heaviest first to the lighter slot (each counts one device more than it has):
    # slot 0 gets 0, 2, 6, 7 (104 devices), slot 1 gets 4, 5, 1, 3 (104). Each slot's owners
    # are cut into listings of about a quarter of its devices (26): 0 alone, then 2, 6, 7;
    # 4 alone, 5 alone, then 1, 3. Listings start in order of their planned start: 0 and 4
    # at once, 5 after 41 devices, 1 and 3 after 82, 2, 6 and 7 after 91.
    weights = [90, 10, 10, 10, 40, 40, 0, 0]
    assert listing_chunks(list(range(8)), 2, weights) == [[0], [4], [5], [1, 3], [2, 6, 7]]


def test_a_planned_split_with_one_heavy_owner() -> None:
    # 6 owners, 2 slots, 3 listings a slot wanted. Owner 4 (301 devices, counting one more)
    # fills slot 0 alone; slot 1 holds the rest (70) and cuts at a third of it (23): owner 1
    # (51) is one listing, the other four (19) together the last.
    assert listing_chunks(list(range(6)), 2, [0, 50, 0, 10, 300, 5]) == [[4], [1], [0, 2, 3, 5]]


def test_a_plan_lists_companies_and_workspace_accounts_apart_in_every_section() -> None:
    zt, knox = "SECTION_TYPE_ZERO_TOUCH", "SECTION_TYPE_KNOX"
    blind = plan_listings(
        [10, 11, 12],
        ["W10", "W12", "X1"],
        [zt, knox],
        concurrency=1,
        by_company={},
        by_workspace={},
    )
    # 1 slot: 4 company listings wanted (3 owners: one each), 1 Workspace listing
    assert blind == [
        PlannedListing(section, companies, spaces, 0)
        for section in (zt, knox)
        for companies, spaces in (([10], []), ([11], []), ([12], []), ([], ["W10", "W12", "X1"]))
    ]
    # from the snapshot: 10 (250 devices) alone, 11 and 12 (40) together; the Workspace
    # accounts in one listing (a Workspace listing returns every device its account claims)
    planned = plan_listings(
        [10, 11, 12],
        ["W10", "W12", "X1"],
        [zt],
        concurrency=1,
        by_company={10: 250, 12: 40},
        by_workspace={"W12": 5, "X1": 7},
    )
    assert planned == [
        PlannedListing(zt, [10], [], 250),
        PlannedListing(zt, [11, 12], [], 40),
        PlannedListing(zt, [], ["W10", "W12", "X1"], 12),
    ]


def test_no_request_names_more_than_the_cap_or_mixes_owner_kinds() -> None:
    companies, spaces = list(range(1, 251)), [f"W{i}" for i in range(70)]
    planned = plan_listings(
        companies, spaces, ["Z"], concurrency=2, max_ids=30, by_company={}, by_workspace={}
    )
    assert all(len(p.company_ids) + len(p.google_workspace_customer_ids) <= 30 for p in planned)
    assert not any(p.company_ids and p.google_workspace_customer_ids for p in planned)
    assert sorted(c for p in planned for c in p.company_ids) == companies
    assert sorted(w for p in planned for w in p.google_workspace_customer_ids) == sorted(spaces)


def _makespan(loads: list[int], concurrency: int) -> int:
    """Pages until the last slot is done, when each free slot takes the next listing."""
    slots = [0] * concurrency
    for pages in loads:
        slots.sort()
        slots[0] += pages
    return max(slots)


def _zipf(n: int, total: int, skew: float = 1.1) -> list[int]:
    shares = [1 / (r + 1) ** skew for r in range(n)]
    scale = total / sum(shares)
    weights = [int(s * scale) for s in shares]
    return weights[3::7] + weights[:3] + [w for i, w in enumerate(weights[3:]) if i % 7]


@pytest.mark.parametrize(
    ("n", "total", "skew", "concurrency"),
    [
        (400, 40_000, 1.1, 8),
        (1000, 100_000, 1.1, 4),
        (400, 40_000, 0.7, 8),
        (1000, 100_000, 0.0, 4),
    ],
)
def test_a_plan_from_the_snapshot_ends_near_the_best_possible_time(
    n: int, total: int, skew: float, concurrency: int
) -> None:
    weights = _zipf(n, total, skew)
    owners = list(range(n))
    pages = [-(-w // 100) or 1 for w in weights]  # ceil: a customer's own chain of pages

    def loads(chunks: list[list[int]]) -> list[int]:
        return [max(1, -(-sum(weights[o] for o in chunk) // 100)) for chunk in chunks]

    planned = listing_chunks(owners, concurrency, weights)
    assert sorted(o for chunk in planned for o in chunk) == owners
    assert all(chunk == sorted(chunk) for chunk in planned), "owners keep their order"
    assert max(len(c) for c in planned) <= MAX_IDS_PER_LISTING
    best = max(max(pages), sum(loads(planned)) / concurrency)  # no plan can end sooner
    assert _makespan(loads(planned), concurrency) <= 1.03 * best
    blind = listing_chunks(owners, concurrency)
    assert _makespan(loads(planned), concurrency) <= _makespan(loads(blind), concurrency)
    heaviest = max(owners, key=lambda o: weights[o])
    assert any(heaviest in chunk for chunk in planned[:concurrency]), "the longest chain starts"


def test_a_skewed_fleet_planned_from_the_snapshot_beats_the_blind_plan() -> None:
    weights = _zipf(400, 40_000)
    owners = list(range(400))

    def span(chunks: list[list[int]]) -> int:
        loads = [max(1, -(-sum(weights[o] for o in c) // 100)) for c in chunks]
        return _makespan(loads, 8)

    # The blind plan puts the largest customer wherever its company id falls.
    assert span(listing_chunks(owners, 8, weights)) < 0.8 * span(listing_chunks(owners, 8))


def test_no_known_devices_means_the_blind_plan() -> None:
    owners = list(range(100))
    assert listing_chunks(owners, 4, [0] * 100) == listing_chunks(owners, 4)


def test_a_re_sync_plans_its_listings_from_the_snapshot(engine: Engine, db_url: str) -> None:
    emu = Emulator(generate_fleet(devices=3000, customers=60, skew=1.2))
    settings = settings_for(emu, db_url, api={"concurrency": 2})
    first = run(emu, settings)
    assert first.status == "succeeded", first.error
    with engine.connect() as conn:
        companies, spaces = snapshot.devices_per_owner(conn, [ZT])
    customers = emu.fleet.current_customers()
    for c in customers:
        assert companies.get(c.company_id, 0) == emu.fleet.count_owned(ZT, {c.company_id}, set())
    for space, devices in spaces.items():  # every device a Workspace listing returns
        assert devices == emu.fleet.count_owned(ZT, set(), {space})
    heaviest = max(customers, key=lambda c: companies.get(c.company_id, 0))
    # A first sync knows nothing: 2 slots x 4 listings, each a run of 7 or 8 customers in
    # companyId order, the larger first; then 2 listings of Workspace accounts; then one of the
    # vendors' customers.
    vendors = [
        c.company_id for v in emu.fleet.vendors_of(emu.fleet.partner_id) for c in v.customers
    ]
    planned, last = first.listings[:-1], first.listings[-1]
    assert last.company_ids == vendors
    assert [len(x.company_ids) for x in planned] == [8, 8, 8, 8, 7, 7, 7, 7, 0, 0]
    assert [len(x.google_workspace_customer_ids) > 0 for x in planned[-2:]] == [True] * 2
    in_order = [c for x in planned for c in x.company_ids]
    assert in_order == sorted(c.company_id for c in customers)
    second = run(emu, settings)
    assert second.status == "succeeded", second.error
    assert second.devices_seen == first.devices_added
    starting = second.listings[:2]  # what the 2 request slots take first
    assert any(heaviest.company_id in x.company_ids for x in starting)
    listed = {c for x in second.listings for c in x.company_ids}
    assert listed == {c.company_id for c in customers} | set(vendors)

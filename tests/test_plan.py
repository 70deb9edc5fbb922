"""How a run splits its owners into findByOwner listings (``inventory.sync.plan``)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine

from inventory.emulator import Emulator, generate_fleet
from inventory.store import snapshot
from inventory.sync import fetch, plan
from inventory.sync.plan import LISTINGS_PER_WORKER, MAX_IDS_PER_LISTING, listing_chunks
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


def test_the_cap_on_ids_per_listing_sets_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan, "MAX_IDS_PER_LISTING", 10)
    chunks = listing_chunks(list(range(1001)), 4)
    assert max(len(c) for c in chunks) <= 10
    assert len(chunks) == 104  # ceil(1001 / 10) = 101, rounded up to a multiple of 4


def test_no_owners_no_listings() -> None:
    assert listing_chunks([], 8) == []


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
    assert sum(companies.values()) + sum(spaces.values()) == first.devices_added
    heaviest = max(customers, key=lambda c: companies.get(c.company_id, 0))
    # A first sync knows nothing: its listings are runs of customers in companyId order.
    assert [x.company_ids for x in first.listings] == [
        [c for c, _ in chunk]
        for chunk in listing_chunks(
            [(c.company_id, c.google_workspace_customer_id) for c in customers], 2
        )
    ]
    second = run(emu, settings)
    assert second.status == "succeeded", second.error
    assert second.devices_seen == first.devices_added
    starting = second.listings[:2]  # what the 2 request slots take first
    assert any(heaviest.company_id in x.company_ids for x in starting)
    assert {c for x in second.listings for c in x.company_ids} == {c.company_id for c in customers}


def test_request_slots_follow_the_chain_with_the_most_pages_left(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One slot, so the order is exact. A first sync knows no sizes: an unstarted listing
    counts the mean length of those started (each first page's totalSize tells one), and a
    slot always takes a page of the listing with the most pages left."""
    taken: list[int] = []
    take = fetch.Chains.take

    def spy(self: Any, halt: Any) -> Any:
        chain = take(self, halt)
        if chain is not None:
            taken.append(chain.task.listing.listing_id)
        return chain

    monkeypatch.setattr(fetch.Chains, "take", spy)
    emu = Emulator(generate_fleet(devices=2500, customers=24, skew=1.3))
    result = run(emu, settings_for(emu, db_url, api={"concurrency": 1}))
    assert result.status == "succeeded", result.error
    length = {x.listing_id: max(1, -(-(x.total_size or 0) // 100)) for x in result.listings}
    assert len(set(length.values())) > 2, "the listings must differ in length"
    fresh = [x.listing_id for x in result.listings]  # plan order
    left: dict[int, int] = {}  # started listings: pages still to fetch
    expected: list[int] = []
    while fresh or any(left.values()):
        known = [length[n] for n in left]
        mean = sum(known) / len(known) if known else float("inf")
        ready = [n for n in left if left[n]]
        best = max(ready, key=lambda n: (left[n], -n)) if ready else None
        if fresh and (best is None or mean >= left[best]):
            n = fresh.pop(0)
            left[n] = length[n] - 1
        else:
            assert best is not None
            n = best
            left[n] -= 1
        expected.append(n)
    assert taken == expected

"""How a run splits its owners into findByOwner listings (``inventory.sync.listing_chunks``)."""

from __future__ import annotations

import pytest

from inventory import sync
from inventory.sync import LISTINGS_PER_WORKER, MAX_IDS_PER_LISTING, listing_chunks


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
    monkeypatch.setattr(sync, "MAX_IDS_PER_LISTING", 10)
    chunks = listing_chunks(list(range(1001)), 4)
    assert max(len(c) for c in chunks) <= 10
    assert len(chunks) == 104  # ceil(1001 / 10) = 101, rounded up to a multiple of 4


def test_no_owners_no_listings() -> None:
    assert listing_chunks([], 8) == []

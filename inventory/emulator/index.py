"""The owner index: which devices each owner has claimed, per section and reseller partner.

A key is ``(section, partner id, "c", companyId)`` or ``(section, partner id, "g", workspaceId)``;
its value is the ascending array of the device indexes claimed so by that partner (the claim's
``resellerId``). Device-index order is deviceId order, so merging the arrays of a query's owners
gives findByOwner's listing in order, and a page costs O(page), not O(fleet).
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence

from inventory.emulator.records import Claim

IndexKey = tuple[str, int, str, int | str]


def claim_keys(claims: Iterable[Claim], home: int) -> Iterator[IndexKey]:
    """Yield the index keys of ``claims``; a claim without a ``reseller_id`` is ``home``'s."""
    for c in claims:
        partner = home if c.reseller_id is None else c.reseller_id
        if c.owner_company_id is not None:
            yield (c.section_type, partner, "c", c.owner_company_id)
        if c.google_workspace_customer_id:
            yield (c.section_type, partner, "g", c.google_workspace_customer_id)


class OwnerIndex:
    """Sorted device-index arrays per owner key."""

    def __init__(self) -> None:
        self.arrays: dict[IndexKey, array[int]] = {}

    def get(self, key: IndexKey) -> array[int] | None:
        """Return the array of ``key`` (None when the owner has no device)."""
        return self.arrays.get(key)

    def replace(self, i: int, old: Iterable[IndexKey], new: Iterable[IndexKey]) -> None:
        """Move device ``i`` from the ``old`` keys' arrays to the ``new`` keys' arrays."""
        for key in old:
            arr = self.arrays.get(key)
            if arr is not None:
                pos = bisect_left(arr, i)
                if pos < len(arr) and arr[pos] == i:
                    del arr[pos]
        for key in new:
            arr = self.arrays.setdefault(key, array("I"))
            pos = bisect_left(arr, i)
            if pos == len(arr) or arr[pos] != i:
                arr.insert(pos, i)

    def lists(
        self,
        section: str,
        partner: int,
        company_ids: Iterable[int],
        workspace_ids: Iterable[str],
    ) -> list[array[int]]:
        """Return the non-empty arrays of these owners' ``section`` claims by ``partner``."""
        keys: list[IndexKey] = [(section, partner, "c", c) for c in set(company_ids)]
        keys += [(section, partner, "g", g) for g in set(workspace_ids)]
        return [arr for key in keys if (arr := self.arrays.get(key))]


def iter_after(lists: Sequence[Sequence[int]], after: int) -> Iterator[int]:
    """Yield the distinct values above ``after`` of ascending ``lists``, ascending."""
    heap = []
    for n, arr in enumerate(lists):
        pos = bisect_right(arr, after)
        if pos < len(arr):
            heap.append((arr[pos], n, pos))
    heapq.heapify(heap)
    last = after
    while heap:
        value, n, pos = heap[0]
        if value != last:
            yield value
            last = value
        arr = lists[n]
        if pos + 1 < len(arr):
            heapq.heapreplace(heap, (arr[pos + 1], n, pos + 1))
        else:
            heapq.heappop(heap)


def merge_after(lists: Sequence[Sequence[int]], after: int, limit: int) -> list[int]:
    """Return up to ``limit`` distinct values above ``after`` from ascending ``lists``."""
    if len(lists) == 1:  # the common case, one owner: a slice
        arr = lists[0]
        pos = bisect_right(arr, after)
        return list(arr[pos : pos + limit])
    out: list[int] = []
    if limit > 0:
        for value in iter_after(lists, after):
            out.append(value)
            if len(out) >= limit:
                break
    return out

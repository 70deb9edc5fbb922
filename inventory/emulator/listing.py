"""findByOwner's listing: which devices one query lists, in deviceId order, and its totalSize.

A query names companies and Google Workspace accounts of one partner in one section. With
``Behaviour.owners == "union"`` it lists every device whose claim names any of them; with
``"intersect"`` (when it names both kinds) only devices whose claim names one of the companies
and one of the Workspace accounts. Pages come from the owner index (``index.py``): after a
position (keyset tokens) in O(page), or from an offset into the listing as it is now (offset
tokens), which materialises the listing once per fleet version when it merges several owners.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

from inventory.emulator.fleet import Fleet
from inventory.emulator.index import iter_after, merge_after

_CACHE_ENTRIES = 64


@dataclass(frozen=True)
class OwnerQuery:
    """One findByOwner query, as the emulator reads it.

    Attributes:
        partner: the partner asking.
        section: the section type.
        company_ids: the companies named.
        workspace_ids: the Google Workspace accounts named.
        intersect: list only devices matching a named company AND a named Workspace account.
    """

    partner: int
    section: str
    company_ids: frozenset[int]
    workspace_ids: frozenset[str]
    intersect: bool = False

    def canonical(self) -> str:
        """The text page tokens bind to: the same for the same listing, whatever the order."""
        key = [self.partner, self.section, sorted(self.company_ids), sorted(self.workspace_ids)]
        return json.dumps([*key, "intersect"] if self.intersect else key)


class Listings:
    """Pages and counts of findByOwner listings over one fleet, cached per fleet version."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self._cache: dict[tuple[str, str], tuple[int, object]] = {}

    def _memo(self, kind: str, query: OwnerQuery) -> tuple[tuple[str, str], object | None]:
        key = (kind, query.canonical())
        hit = self._cache.get(key)
        if hit is not None and hit[0] == self.fleet.version:
            return key, hit[1]
        return key, None

    def _keep(self, key: tuple[str, str], value: object) -> None:
        if len(self._cache) >= _CACHE_ENTRIES:
            self._cache.clear()
        self._cache[key] = (self.fleet.version, value)

    # ------------------------------------------------------------------------- devices
    def _lists(self, query: OwnerQuery, *, workspaces_only: bool = False) -> list[Sequence[int]]:
        companies = () if workspaces_only else query.company_ids
        return list(
            self.fleet.owner_lists(query.section, companies, query.workspace_ids, query.partner)
        )

    def _iter(self, query: OwnerQuery, after: int) -> Iterator[int]:
        """Yield the listed device indexes above ``after``, ascending."""
        if not query.intersect:
            return iter_after(self._lists(query), after)
        fleet, section, companies = self.fleet, query.section, query.company_ids
        return (
            i
            for i in iter_after(self._lists(query, workspaces_only=True), after)
            if (claim := fleet.section_claim(i, section)) is not None
            and claim.owner_company_id in companies
        )

    def after(self, query: OwnerQuery, after: int, limit: int) -> list[int]:
        """Return up to ``limit`` listed device indexes above ``after`` (keyset paging)."""
        if not query.intersect:
            return merge_after(self._lists(query), after, limit)
        return list(islice(self._iter(query, after), limit))

    def everything(self, query: OwnerQuery) -> Sequence[int]:
        """Return the whole listing as it is now (cached until the fleet changes)."""
        key, hit = self._memo("all", query)
        if isinstance(hit, array):
            return hit
        lists = self._lists(query)
        if not query.intersect and len(lists) == 1:  # one owner: a copy of its index array
            listed = array("I", lists[0])
        else:
            listed = array("I", self._iter(query, -1))
        self._keep(key, listed)
        return listed

    def at(self, query: OwnerQuery, offset: int, limit: int) -> list[int]:
        """Return up to ``limit`` listed device indexes from position ``offset`` (offset paging)."""
        lists = self._lists(query)
        if not query.intersect and len(lists) == 1:  # one owner: a slice of its index array
            return list(lists[0][offset : offset + limit])
        return list(self.everything(query)[offset : offset + limit])

    # -------------------------------------------------------------------------- counts
    def total(self, query: OwnerQuery, *, per_owner: bool) -> int:
        """Return totalSize: distinct devices listed, or (``per_owner``) the sum over the named
        owners of the listed devices each one matches."""
        key, hit = self._memo("per_owner" if per_owner else "distinct", query)
        if isinstance(hit, int):
            return hit
        if query.intersect:  # every listed device matches one named company and one account
            count = len(self.everything(query)) * (2 if per_owner else 1)
        elif per_owner:
            count = sum(len(arr) for arr in self._lists(query))
        else:
            count = self.fleet.count_owned(
                query.section, set(query.company_ids), set(query.workspace_ids), query.partner
            )
        self._keep(key, count)
        return count

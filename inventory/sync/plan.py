"""The listing plan of a run: which owners each findByOwner listing names, in what order.

A listing is one findByOwner query paged to its end: a chain of pages that only one request at
a time can follow, because each page's token comes from the page before. ``api.concurrency``
requests follow as many chains at once and take the next listing when theirs ends, so a run
ends when its last chain does. Few listings waste few calls (each wastes at most its last,
partly filled page); enough of them, of the right sizes and in the right order, keep every
request slot busy to the end. Pure functions: owners and the snapshot's counts in, listings out.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

MAX_IDS_PER_LISTING = 1000  # owner ids in one findByOwner body (the API sets no maximum)
LISTINGS_PER_WORKER = 4

_T = TypeVar("_T")
Owner = tuple[int | None, str | None]  # (company id, its Workspace customer id)


@dataclass(frozen=True)
class PlannedListing:
    """One findByOwner listing to run: its section type, its owners, and the devices the
    snapshot says they have (0: unknown, or none)."""

    section_type: str
    company_ids: list[int]
    google_workspace_customer_ids: list[str]
    expected_devices: int


def plan_listings(
    owners: Sequence[tuple[int, str | None]],
    extra_workspaces: Sequence[str],
    sections: Sequence[str],
    *,
    concurrency: int,
    by_company: Mapping[int, int],
    by_workspace: Mapping[str, int],
) -> list[PlannedListing]:
    """The listings of a run, in the order to start them.

    A listing asks for its customers' ids and their Workspace accounts together (the API
    returns devices matching either), so a Chrome OS device claimed with both is fetched
    once; Workspace ids that belong to no listed customer get listings of their own. Each
    listing wastes at most its last, partly filled page; :func:`listing_chunks` decides how
    many listings there are and how many owners each names. Every group is listed once per
    section type.

    Args:
        owners: (company id, its Workspace customer id or None) of each customer to list.
        extra_workspaces: Workspace customer ids to list that belong to no listed customer.
        sections: the section types to list.
        concurrency: request slots.
        by_company: current devices per owner company in the snapshot (empty on a first sync).
        by_workspace: current devices per Workspace id whose claim names no company.
    """

    def devices(owner: Owner) -> int:
        company, space = owner
        known = by_company.get(company, 0) if company is not None else 0
        return known + (by_workspace.get(space, 0) if space else 0)

    # (companies, Workspace ids, devices the snapshot expects) of each listing
    groups: list[tuple[list[int], list[str], int]] = []
    for chunk in listing_chunks(owners, concurrency, [devices(o) for o in owners]):
        spaces = list(dict.fromkeys(w for _, w in chunk if w))
        groups.append(([c for c, _ in chunk], spaces, sum(map(devices, chunk))))
    spaces_only: list[Owner] = [(None, w) for w in extra_workspaces]
    for part in listing_chunks(spaces_only, concurrency, [devices(o) for o in spaces_only]):
        groups.append(([], [w for _, w in part if w], sum(map(devices, part))))
    return [
        PlannedListing(section, companies, spaces, expected)
        for section in sections
        for companies, spaces, expected in groups
    ]


def listing_chunks(
    items: Sequence[_T], concurrency: int, weights: Sequence[int] | None = None
) -> list[list[_T]]:
    """Split owners into the listings of a run, in the order to start them, so that the
    request slots finish together.

    There are ``LISTINGS_PER_WORKER`` listings per concurrent request (more when
    ``MAX_IDS_PER_LISTING`` asks for it), rounded up to a multiple of ``concurrency``. A
    listing is a chain of pages that only one request at a time can follow, so the run ends
    when its last chain does.

    Without ``weights`` (a first sync knows nothing of the fleet) the listings are near-equal
    runs of owners, one apart in size, the larger first: rounded-up chunks left a short last
    listing and a final round on fewer request slots than there were.

    With ``weights`` (each owner's devices in the current snapshot) the plan follows the
    fleet: a customer with a tenth of the devices is a chain that must start at once, not
    last. See :func:`_planned_chunks`.
    """
    n = len(items)
    if n == 0:
        return []
    concurrency = max(1, concurrency)
    count = max(concurrency * LISTINGS_PER_WORKER, math.ceil(n / MAX_IDS_PER_LISTING))
    count = min(n, math.ceil(count / concurrency) * concurrency)
    if weights is not None and any(weights):
        return [[items[i] for i in chunk] for chunk in _planned_chunks(weights, concurrency, count)]
    size, larger = divmod(n, count)
    chunks: list[list[_T]] = []
    start = 0
    for k in range(count):
        end = start + size + (1 if k < larger else 0)
        chunks.append(list(items[start:end]))
        start = end
    return chunks


def _planned_chunks(weights: Sequence[int], concurrency: int, count: int) -> list[list[int]]:
    """Listings (as indexes into ``weights``) planned on the request slots they will run on.

    1. Owners, heaviest first, go to the request slot with the least expected devices (the
       longest-processing-time rule): the slots' totals come out near-equal.
    2. Each slot's owners, heaviest first, are cut into ``count / concurrency`` listings of
       near-equal devices (an owner heavier than that is a listing of its own).
    3. The listings are returned in the order of their planned start on their slot. Slots take
       the next listing when they free up, so as long as the snapshot is close to the truth,
       each slot runs the listings planned for it and all end near the ideal time.

    An owner counts one device more than it had, so owners with none (or new ones) spread
    evenly. Each listing keeps its owners in their given order.
    """
    cost = [w + 1 for w in weights]
    slots = [(0, s) for s in range(concurrency)]  # (expected devices, slot): a min-heap
    owned: list[list[int]] = [[] for _ in range(concurrency)]
    for i in sorted(range(len(cost)), key=lambda i: -cost[i]):  # stable: ties keep order
        load, s = heapq.heappop(slots)
        owned[s].append(i)
        heapq.heappush(slots, (load + cost[i], s))
    per_slot = max(1, count // concurrency)
    planned: list[tuple[int, int, list[int]]] = []  # (planned start, slot, owners)
    for s, members in enumerate(owned):
        target = sum(cost[i] for i in members) / per_slot
        start = load = 0
        chunk: list[int] = []
        for n, i in enumerate(members):
            chunk.append(i)
            load += cost[i]
            if n == len(members) - 1 or load >= target or len(chunk) == MAX_IDS_PER_LISTING:
                planned.append((start, s, sorted(chunk)))
                start += load
                load, chunk = 0, []
    planned.sort(key=lambda p: (p[0], p[1]))
    return [chunk for _, _, chunk in planned]

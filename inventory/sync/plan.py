"""The listing plan of a run: which owners each findByOwner listing names, in what order.

A listing is one findByOwner query paged to its end: a chain of pages that only one request at
a time can follow, because each page's token comes from the page before. ``api.concurrency``
requests follow as many chains at once and take the next listing when theirs ends, so a run
ends when its last chain does. Few listings waste few calls (each wastes at most its last,
partly filled page); enough of them, of the right sizes and in the right order, keep every
request slot busy to the end. Pure functions: owners and the snapshot's counts in, listings out.

A findByOwner request names either companies or Workspace accounts, never both: the discovery
document does not say whether a request naming both returns the union or the intersection
(``zt-inventory check`` asks the API), and at most ``api.max_ids_per_request`` of them (Google's
reseller library caps findByOwner at 100 customer ids).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

MAX_IDS_PER_LISTING = 100  # owner ids in one findByOwner body, unless a caller says otherwise
LISTINGS_PER_WORKER = 4
# Workspace listings are few and short (a customer's Chrome OS devices): one per request slot
WORKSPACE_LISTINGS_PER_WORKER = 1

_T = TypeVar("_T")


@dataclass(frozen=True)
class PlannedListing:
    """One findByOwner listing to run: its section type, its owners, and the devices the
    snapshot says they have (0: unknown, or none)."""

    section_type: str
    company_ids: list[int]
    google_workspace_customer_ids: list[str]
    expected_devices: int


def plan_listings(
    companies: Sequence[int],
    workspaces: Sequence[str],
    sections: Sequence[str],
    *,
    concurrency: int,
    max_ids: int = MAX_IDS_PER_LISTING,
    by_company: Mapping[int, int],
    by_workspace: Mapping[str, int],
) -> list[PlannedListing]:
    """The listings of a run, in the order to start them: the company listings, then the
    Workspace listings, each group once per section type.

    A Chrome OS device claimed for both a company and its Workspace account comes back from
    both kinds of listing (the merge keeps one copy); one claimed for a Workspace account
    alone only from the Workspace listing. Each listing wastes at most its last, partly filled
    page; :func:`listing_chunks` decides how many listings there are and how many owners each
    names.

    Args:
        companies: the customers (company ids) to list.
        workspaces: the Workspace customer ids to list (the customers' own and configured ones).
        sections: the section types to list.
        concurrency: request slots.
        max_ids: the most owner ids one request names.
        by_company: current devices per owner company in the snapshot (empty on a first sync).
        by_workspace: current devices per Workspace customer id in the snapshot.
    """
    company_weights = [by_company.get(c, 0) for c in companies]
    workspace_weights = [by_workspace.get(w, 0) for w in workspaces]
    groups: list[tuple[list[int], list[str], int]] = [
        ([companies[i] for i in chunk], [], sum(company_weights[i] for i in chunk))
        for chunk in listing_chunks(
            list(range(len(companies))), concurrency, company_weights, max_ids=max_ids
        )
    ]
    groups += [
        ([], [workspaces[i] for i in chunk], sum(workspace_weights[i] for i in chunk))
        for chunk in listing_chunks(
            list(range(len(workspaces))),
            concurrency,
            workspace_weights,
            max_ids=max_ids,
            per_worker=WORKSPACE_LISTINGS_PER_WORKER,
        )
    ]
    return [
        PlannedListing(section, companies, spaces, expected)
        for section in sections
        for companies, spaces, expected in groups
    ]


def listing_chunks(
    items: Sequence[_T],
    concurrency: int,
    weights: Sequence[int] | None = None,
    *,
    max_ids: int = MAX_IDS_PER_LISTING,
    per_worker: int = LISTINGS_PER_WORKER,
) -> list[list[_T]]:
    """Split owners into the listings of a run, in the order to start them, so that the
    request slots finish together.

    There are ``per_worker`` listings per concurrent request (more when ``max_ids``, the most
    owners one listing may name, asks for it), rounded up to a multiple of ``concurrency``. A
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
    concurrency, max_ids = max(1, concurrency), max(1, max_ids)
    count = max(concurrency * per_worker, math.ceil(n / max_ids))
    count = min(n, math.ceil(count / concurrency) * concurrency)
    if weights is not None and any(weights):
        planned = _planned_chunks(weights, concurrency, count, max_ids)
        return [[items[i] for i in chunk] for chunk in planned]
    size, larger = divmod(n, count)
    chunks: list[list[_T]] = []
    start = 0
    for k in range(count):
        end = start + size + (1 if k < larger else 0)
        chunks.append(list(items[start:end]))
        start = end
    return chunks


def _planned_chunks(
    weights: Sequence[int], concurrency: int, count: int, max_ids: int
) -> list[list[int]]:
    """Listings (as indexes into ``weights``) planned on the request slots they will run on.

    1. Owners, heaviest first, go to the request slot with the least expected devices (the
       longest-processing-time rule): the slots' totals come out near-equal.
    2. Each slot's owners, heaviest first, are cut into ``count / concurrency`` listings of
       near-equal devices (an owner heavier than that is a listing of its own).
    3. The listings are returned in the order of their planned start on their slot. Slots take
       the next listing when they free up, so as long as the snapshot is close to the truth,
       each slot runs the listings planned for it and all end near the ideal time.

    An owner counts one device more than it had, so owners with none (or new ones) spread
    evenly. Each listing keeps its owners in their given order and names at most ``max_ids``.
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
            if n == len(members) - 1 or load >= target or len(chunk) == max_ids:
                planned.append((start, s, sorted(chunk)))
                start += load
                load, chunk = 0, []
    planned.sort(key=lambda p: (p[0], p[1]))
    return [chunk for _, _, chunk in planned]

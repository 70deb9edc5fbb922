"""One sync run and its parts, each in a module named for its job.

``run`` (the list of a run's steps, :func:`run_sync`), ``partners`` (the configured partners a
run syncs: their lists, what their listings ask about, what the run may conclude of their
devices, how each went), ``plan`` (which owners each findByOwner listing names), ``fetch``
(threads, page chains and the bounded queue), ``collect`` (what each page means for its
listing), ``staging`` (private tables the pages stream into), ``merge`` (what the merge
decides, and the one transaction that applies it) and ``progress`` (live counters).
``reconcile`` is a run of identifier lookups only (``zt-inventory reconcile``), on the same
client stack, fetching and lookup records. A run's record lives in :mod:`inventory.store.runs`.
"""

from __future__ import annotations

from inventory.store.runs import ListingKind, ListingResult, RunStatus, SyncResult, Trigger
from inventory.sync.progress import Phase, Progress
from inventory.sync.run import run_sync

__all__ = [
    "ListingKind",
    "ListingResult",
    "Phase",
    "Progress",
    "RunStatus",
    "SyncResult",
    "Trigger",
    "run_sync",
]

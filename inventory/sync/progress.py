"""A run's live counters, for a caller to display or time: updated by the run's own thread."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    """What a run is doing, in order: each phase is reported once, when it starts."""

    STARTING = "starting"
    CUSTOMERS = "customers"  # customers.list
    DEVICES = "devices"  # the findByOwner listings and findByIdentifier lookups
    MERGING = "merging"  # removals decided, then the merge transaction
    DONE = "done"


@dataclass
class Progress:
    """Live counters of a run; ``on_progress`` gets this same object after every change."""

    customers_total: int = 0
    customers_done: int = 0
    listings_total: int = 0
    listings_done: int = 0
    devices_expected: int = 0
    devices_seen: int = 0
    api_requests: int = 0
    retries: int = 0
    phase: Phase = Phase.STARTING

"""A run's live counters, for a caller to display or time: updated by the run's own thread.

Totals are the best known so far and never shrink: on a re-sync they start from the snapshot
(each listing's devices in the last run), on a first sync they grow as each listing's first
page tells its ``totalSize``. Devices are counted as fetched: a device that two listings return
(both section types, a company and its Workspace account) counts twice, in the total too.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

MIN_RATE_SAMPLE = 5  # requests the devices phase must have made before an ETA is shown


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
    devices_expected: int = 0  # best known, never shrinking
    devices_seen: int = 0  # devices fetched so far
    requests_expected: int = 0  # best known, never shrinking
    api_requests: int = 0
    retries: int = 0
    phase: Phase = Phase.STARTING
    quota_rate: float | None = None  # requests per second the client-side quota allows
    devices_started_at: float | None = field(default=None, repr=False)  # monotonic seconds
    requests_before_devices: int = field(default=0, repr=False)

    def enter(self, phase: Phase, now: float | None = None) -> None:
        """Start ``phase`` (the devices phase starts the clock of the rate and ETA)."""
        self.phase = phase
        if phase == Phase.DEVICES and self.devices_started_at is None:
            self.devices_started_at = time.monotonic() if now is None else now
            self.requests_before_devices = self.api_requests

    def rate(self, now: float | None = None) -> float | None:
        """Requests per second in the devices phase, never above what the quota allows; None
        until enough requests were made to tell."""
        if self.devices_started_at is None:
            return None
        now = time.monotonic() if now is None else now
        done = self.api_requests - self.requests_before_devices
        elapsed = now - self.devices_started_at
        if done < MIN_RATE_SAMPLE or elapsed <= 0:
            return self.quota_rate if done and self.quota_rate else None
        observed = done / elapsed
        return min(observed, self.quota_rate) if self.quota_rate else observed

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds until the requests expected so far are made, at :meth:`rate`; None when
        unknown (before the devices phase, or too early to tell)."""
        if self.phase != Phase.DEVICES:
            return None
        rate = self.rate(now)
        if not rate:
            return None
        return max(0, self.requests_expected - self.api_requests) / rate

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """The counters as plain data (what ``sync_runs.progress`` holds during a run)."""
        data = asdict(self)
        for private in ("devices_started_at", "requests_before_devices"):
            data.pop(private)
        data["eta_s"] = self.eta_s(now)
        data["rate"] = self.rate(now) if self.phase == Phase.DEVICES else None
        return data

"""What a run does with each page it fetched: builds the rows, stages them, and counts them
against their listing; and what a listing's end or failure means for it.

A listing is complete only when every page arrived, the page tokens ended, and the devices
counted match ``totalSize`` (SPEC guarantee 2). An identifier lookup that the API rejects with
400 is that row's problem, recorded with its error; any other failure of any task ends the run.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inventory.api import Page
from inventory.errors import ApiError, CancelledError, ListingError
from inventory.models import IdentifierLookup
from inventory.store.runs import ListingResult
from inventory.sync import staging
from inventory.sync.progress import Progress
from inventory.transform import (
    BadRecordError,
    DeviceRows,
    from_identifier,
    to_customer_row,
    to_device_rows,
)

log = logging.getLogger("inventory.sync")

MAX_WARNINGS_KEPT = 50
_LOOKUP_COLUMNS = frozenset(IdentifierLookup.__table__.c.keys())


@dataclass
class Task:
    """One chain of pages to fetch: a findByOwner listing, or one identifier's lookup."""

    listing: ListingResult
    identifier: dict[str, str] | None = None  # a DeviceIdentifier request object
    line: int = 0  # the identifier's line in its CSV file
    expected_pages: float = math.inf  # unknown: start it early and learn its totalSize


@dataclass
class _Found:
    """What one identifier's lookup found so far."""

    matches: int = 0
    first_device_id: int | None = None


@dataclass
class Collector:
    """Takes the pages of a run's tasks as they arrive and keeps what the run needs of them.

    Args:
        stager: where device rows go (its connection takes the customers too).
        partner_id: the partner the devices belong to.
        progress: the live counters to advance.
        notify: called after each change of ``progress``.
        warnings: where the run's warnings go (at most ``MAX_WARNINGS_KEPT`` are kept).
    """

    stager: staging.Stager
    partner_id: int
    progress: Progress
    notify: Callable[[], None]
    warnings: list[str]
    unknown: Counter[str] = field(default_factory=Counter)
    lookups: list[dict[str, Any]] = field(default_factory=list)
    identifiers_complete: bool = True
    _found: dict[int, _Found] = field(default_factory=dict)
    # customers.list so far: {company id: its Workspace customer id or None}, and totalSize
    _customers: dict[int, str | None] = field(default_factory=dict)
    _customers_total: int | None = None

    def warn(self, message: str) -> None:
        """Keep and log a warning of the run."""
        if len(self.warnings) < MAX_WARNINGS_KEPT:
            self.warnings.append(message)
            log.warning("%s", message)

    def customer_page(self, page: Page) -> None:
        """One page of ``customers.list``: its customers as rows, staged and counted.

        Raises:
            ListingError: a customer record cannot be stored (the list would be incomplete).
        """
        rows = []
        for item in page.items:
            try:
                row, unknown = to_customer_row(item, self.partner_id)
            except BadRecordError as exc:
                raise ListingError(f"customers.list: {exc}") from None
            self.unknown.update(unknown)
            rows.append(row)
            self._customers[row["company_id"]] = row["google_workspace_customer_id"]
        staging.stage_customers(self.stager.conn, rows)
        self._customers_total = page.total_size
        counted = len(self._customers)
        self.progress.customers_total = page.total_size or counted
        self.progress.customers_done = counted
        self.notify()

    def customers_done(self) -> dict[int, str | None]:
        """Every customer ``customers.list`` returned, with its Workspace customer id.

        Raises:
            ListingError: the count does not match ``totalSize``: nothing may be applied.
        """
        counted, total = len(self._customers), self._customers_total or 0
        if counted != total:
            raise ListingError(
                f"customers.list returned {counted} customers but totalSize said {total}; "
                "the customer list is incomplete, so nothing was applied"
            )
        return self._customers

    def page(self, task: Task, page: Page) -> None:
        """One page of a task: its devices as rows, staged and counted."""
        listing = task.listing
        rows: list[DeviceRows] = []
        for item in page.items:
            try:
                rows.append(to_device_rows(item, self.partner_id))
            except BadRecordError as exc:
                listing.error = listing.error or f"bad device record: {exc}"
                self.warn(f"listing {listing.listing_id}: {exc}")
        for r in rows:
            self.unknown.update(r.unknown_fields)
            for message in r.warnings:
                self.warn(message)
        self.stager.add_page(listing.listing_id, rows)
        listing.api_requests += 1
        if task.identifier is None:
            if listing.total_size is None and page.total_size:
                self.progress.devices_expected += page.total_size
            listing.total_size = page.total_size
            listing.devices_seen += len(page.items)
            self.progress.devices_seen += len(page.items)
        else:
            found = self._found.setdefault(task.line, _Found())
            found.matches += len(rows)
            if found.first_device_id is None and rows:
                found.first_device_id = rows[0].device["device_id"]
            listing.devices_seen += len(rows)
        self.notify()

    def done(self, task: Task) -> None:
        """A task's pages ended: a listing is complete when its count matches ``totalSize``."""
        listing = task.listing
        if task.identifier is not None:
            self._record_lookup(task, None)
            return
        counted, total = listing.devices_seen, listing.total_size or 0
        if listing.error is None and counted != total:
            listing.error = f"counted {counted} devices but totalSize said {total}"
        listing.complete = listing.error is None
        if not listing.complete:
            self.warn(f"listing {listing.listing_id} is incomplete: {listing.error}")
        self.progress.listings_done += 1
        self.notify()

    def failed(self, task: Task, exc: Exception) -> None:
        """A task failed: its listing is incomplete, or its lookup has an error.

        Raises:
            ApiError, CancelledError: the failure ends the run.
            ListingError: an unexpected failure, which ends the run too.
        """
        listing = task.listing
        if isinstance(exc, ListingError):
            listing.error = str(exc)
            self.warn(f"listing {listing.listing_id} is incomplete: {exc}")
            self.progress.listings_done += 1
            return
        if task.identifier is not None and isinstance(exc, ApiError) and exc.status == 400:
            # One identifier the API rejects (e.g. a malformed IMEI) is that row's problem.
            self.identifiers_complete = False
            self._record_lookup(task, str(exc))
            return
        if isinstance(exc, ApiError | CancelledError):
            raise exc
        raise ListingError(f"listing {listing.listing_id} failed: {type(exc).__name__}: {exc}")

    def _record_lookup(self, task: Task, error: str | None) -> None:
        found = self._found.pop(task.line, _Found())
        columns = from_identifier(task.identifier or {})
        self.lookups.append(
            {
                **{k: v for k, v in columns.items() if k in _LOOKUP_COLUMNS},
                "line_number": task.line,
                "found": found.matches > 0,
                "device_id": found.first_device_id,
                "matches": found.matches,
                "error": error,
            }
        )

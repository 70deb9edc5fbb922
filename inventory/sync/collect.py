"""What a run does with each page it fetched: builds the rows, stages them, and counts them
against their listing; and what a listing's end or failure means for it.

A listing is complete only when every page arrived, the page tokens ended, and the devices
counted match ``totalSize`` (SPEC guarantee 2). An identifiers-CSV row is recorded by
:class:`Lookups` whatever becomes of it: a malformed row with its error, never looked up; a
lookup that the API rejects with 400, or whose pages do not add up, with its error. Any other
failure of any task ends the run.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inventory.api import Page
from inventory.errors import ApiError, CancelledError, ListingError
from inventory.models import IdentifierLookup
from inventory.store.runs import ListingResult
from inventory.sync import staging
from inventory.sync.progress import Progress
from inventory.transform import (
    ZERO_TOUCH,
    BadRecordError,
    DeviceRows,
    from_identifier,
    to_customer_row,
    to_device_rows,
)

if TYPE_CHECKING:
    from inventory.identifiers import IdentifierRow

log = logging.getLogger("inventory.sync")

MAX_WARNINGS_KEPT = 50
_LOOKUP_COLUMNS = frozenset(IdentifierLookup.__table__.c.keys())


@dataclass
class Task:
    """One chain of pages to fetch: a findByOwner listing, or one identifier's lookup."""

    listing: ListingResult
    row: IdentifierRow | None = None  # the identifiers-CSV row to look up
    expected_pages: float = math.inf  # unknown: start it early and learn its totalSize

    @property
    def identifier(self) -> dict[str, str] | None:
        """The ``DeviceIdentifier`` request object of the row (None for a listing)."""
        return None if self.row is None else self.row.identifier


@dataclass
class _Found:
    """What one identifier's lookup found so far: how many devices, and the first one."""

    matches: int = 0
    device_id: int | None = None
    owner_company_id: int | None = None  # its zero-touch claim's owner
    google_workspace_customer_id: str | None = None  # ... or the claim's Workspace account


@dataclass
class Lookups:
    """The ``identifier_lookups`` rows of a run: one per identifiers-CSV row, as its lookup
    ends (or at once, for a malformed row that is never looked up).

    ``complete`` turns false when any row is malformed or its lookup failed: the run is then
    partial, and a device with no claim that such a row used to find is not removed.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = True
    _found: dict[int, _Found] = field(default_factory=dict)

    def malformed(self, rows: Iterable[IdentifierRow]) -> None:
        """Record the rows that have an ``error``: stored with it, not looked up."""
        for row in rows:
            if row.error is not None:
                self.complete = False
                self._record(row, _Found(), row.error)

    def page(self, row: IdentifierRow, devices: list[DeviceRows], total_size: int | None) -> None:
        """One page of a row's lookup: its devices count, and the first one is the row's."""
        found = self._found.setdefault(row.line, _Found())
        if found.device_id is None and devices:
            first = devices[0]
            found.device_id = first.device["device_id"]
            for claim in first.claims:
                if claim["section_type"] == ZERO_TOUCH:
                    found.owner_company_id = claim["owner_company_id"]
                    found.google_workspace_customer_id = claim["google_workspace_customer_id"]
        # a page of a lookup that is not followed further still counts every match
        found.matches = max(found.matches + len(devices), total_size or 0)

    def done(self, row: IdentifierRow) -> None:
        """A row's lookup ended."""
        self._record(row, self._found.pop(row.line, _Found()), None)

    def failed(self, row: IdentifierRow, error: str) -> None:
        """A row's lookup failed: recorded with its error."""
        self.complete = False
        self._record(row, self._found.pop(row.line, _Found()), error)

    def _record(self, row: IdentifierRow, found: _Found, error: str | None) -> None:
        columns = from_identifier(row.identifier)
        self.rows.append(
            {
                **{k: v for k, v in columns.items() if k in _LOOKUP_COLUMNS},
                "line_number": row.line,
                "expected_company_id": row.expected_company_id,
                "order_number": row.order_number,
                "found": found.matches > 0,
                "device_id": found.device_id,
                "matches": found.matches,
                "owner_company_id": found.owner_company_id,
                "google_workspace_customer_id": found.google_workspace_customer_id,
                "error": error,
            }
        )


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
    identifier_lookups: Lookups = field(default_factory=Lookups)
    # customers.list so far: {company id: its Workspace customer id or None}, and totalSize
    _customers: dict[int, str | None] = field(default_factory=dict)
    _customers_total: int | None = None

    @property
    def lookups(self) -> list[dict[str, Any]]:
        """The run's ``identifier_lookups`` rows so far."""
        return self.identifier_lookups.rows

    @property
    def identifiers_complete(self) -> bool:
        """True while every identifiers-CSV row was well-formed and its lookup succeeded."""
        return self.identifier_lookups.complete

    def warn(self, message: str) -> None:
        """Keep and log a warning of the run."""
        keep_warning(self.warnings, message)

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
        if task.row is None:
            if listing.total_size is None and page.total_size:
                self.progress.devices_expected += page.total_size
            listing.total_size = page.total_size
            listing.devices_seen += len(page.items)
            self.progress.devices_seen += len(page.items)
        else:
            self.identifier_lookups.page(task.row, rows, None)
            listing.devices_seen += len(rows)
        self.notify()

    def done(self, task: Task) -> None:
        """A task's pages ended: a listing is complete when its count matches ``totalSize``."""
        listing = task.listing
        if task.row is not None:
            self.identifier_lookups.done(task.row)
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
        if task.row is not None and lookup_failed(exc):
            # One identifier the API rejects (e.g. a malformed IMEI) is that row's problem.
            self.identifier_lookups.failed(task.row, str(exc))
            return
        if isinstance(exc, ListingError):
            listing.error = str(exc)
            self.warn(f"listing {listing.listing_id} is incomplete: {exc}")
            self.progress.listings_done += 1
            return
        if isinstance(exc, ApiError | CancelledError):
            raise exc
        raise ListingError(f"listing {listing.listing_id} failed: {type(exc).__name__}: {exc}")


def keep_warning(warnings: list[str], message: str) -> None:
    """Log a warning of a run, and keep it with the run's first ``MAX_WARNINGS_KEPT``."""
    if len(warnings) < MAX_WARNINGS_KEPT:
        warnings.append(message)
        log.warning("%s", message)


def lookup_failed(exc: Exception) -> bool:
    """True when a lookup's failure is its row's alone: the API refused the identifier (400),
    or its pages did not add up. Anything else (quota, auth, network) ends the run."""
    return isinstance(exc, ListingError) or (isinstance(exc, ApiError) and exc.status == 400)

"""What a run does with each page it fetched: builds the rows, stages them, and counts them
against their listing; and what a listing's end or failure means for it.

A listing is complete only when every page arrived, the page tokens ended, and the devices
counted match ``totalSize`` (SPEC guarantee 2), and ``totalSize`` stayed the same from its
first page to its last: a server whose page tokens are offsets skips a device that leaves the
listing while it pages, and the count of what arrived then matches the last page's total.

A listing that fails (retries exhausted, an error the API answered) is incomplete: its owners'
devices are left as they were and the run is partial. A listing the API refuses with 400 before
its first page, for naming too many owners, is listed again as two halves. An identifiers-CSV
row is recorded by :class:`Lookups` whatever becomes of it: a malformed row with its error,
never looked up; a lookup that fails, or whose pages do not add up, with its error. Credentials
the API refuses, a cancel, and anything unexpected end the run.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inventory.api import Page
from inventory.errors import ApiError, AuthError, CancelledError, ListingError
from inventory.models import IdentifierLookup
from inventory.store.runs import ListingKind, ListingResult
from inventory.sync import staging
from inventory.sync.fetch import PageFetcher
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
    first_total: int | None = None  # the totalSize of the first page that had one

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
    _found: dict[tuple[int, int], _Found] = field(default_factory=dict)  # (partner, line)

    def lines(self) -> tuple[int, int]:
        """(CSV rows looked up, rows whose device some partner found): each partner looks
        every row up, so a row can have a lookup per partner."""
        found = {x["line_number"] for x in self.rows if x["found"]}
        return len({x["line_number"] for x in self.rows}), len(found)

    def malformed(self, rows: Iterable[IdentifierRow], partner_id: int) -> None:
        """Record the rows that have an ``error``: stored with it, not looked up."""
        for row in rows:
            if row.error is not None:
                self.complete = False
                self._record(row, partner_id, _Found(), row.error)

    def page(
        self, row: IdentifierRow, partner_id: int, devices: list[DeviceRows], total: int | None
    ) -> None:
        """One page of a row's lookup: its devices count, and the first one is the row's."""
        found = self._found.setdefault((partner_id, row.line), _Found())
        if found.device_id is None and devices:
            first = devices[0]
            found.device_id = first.device["device_id"]
            for claim in first.claims:
                if claim["section_type"] == ZERO_TOUCH:
                    found.owner_company_id = claim["owner_company_id"]
                    found.google_workspace_customer_id = claim["google_workspace_customer_id"]
        # a page of a lookup that is not followed further still counts every match
        found.matches = max(found.matches + len(devices), total or 0)

    def done(self, row: IdentifierRow, partner_id: int) -> None:
        """A row's lookup ended."""
        self._record(row, partner_id, self._found.pop((partner_id, row.line), _Found()), None)

    def failed(self, row: IdentifierRow, partner_id: int, error: str) -> None:
        """A row's lookup failed: recorded with its error."""
        self.complete = False
        self._record(row, partner_id, self._found.pop((partner_id, row.line), _Found()), error)

    def _record(
        self, row: IdentifierRow, partner_id: int, found: _Found, error: str | None
    ) -> None:
        columns = from_identifier(row.identifier)
        self.rows.append(
            {
                **{k: v for k, v in columns.items() if k in _LOOKUP_COLUMNS},
                "partner_id": partner_id,
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
        progress: the live counters to advance.
        notify: called after each change of ``progress``.
        warnings: where the run's warnings go (at most ``MAX_WARNINGS_KEPT`` are kept).
        listings: the run's listings, to which :meth:`listing_task` adds.
        page_size: devices per findByOwner page (to expect a listing's pages).
    """

    stager: staging.Stager
    progress: Progress
    notify: Callable[[], None]
    warnings: list[str]
    listings: list[ListingResult]
    page_size: int
    unknown: Counter[str] = field(default_factory=Counter)
    identifier_lookups: Lookups = field(default_factory=Lookups)
    # each partner's customers.list so far: {company id: its Workspace customer id or None},
    # and its totalSize
    _customers: dict[int, dict[int, str | None]] = field(default_factory=dict)
    _customers_total: dict[int, int | None] = field(default_factory=dict)
    # what each listing is expected to return: the snapshot's count, then its totalSize
    _expected: dict[int, int] = field(default_factory=dict)
    lookups_planned: int = 0  # identifier lookups to make: one request each
    concurrency: int = 1  # request slots of the removal checks
    unchecked: int = 0  # removal checks that failed: those devices stay as they were

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

    def customer_page(self, partner_id: int, page: Page) -> None:
        """One page of a partner's ``customers.list``: its customers as rows, staged and
        counted.

        Raises:
            ListingError: a customer record cannot be stored (the list would be incomplete).
        """
        rows = []
        customers = self._customers.setdefault(partner_id, {})
        for item in page.items:
            try:
                row, unknown = to_customer_row(item, partner_id)
            except BadRecordError as exc:
                raise ListingError(f"customers.list: {exc}") from None
            self.unknown.update(unknown)
            rows.append(row)
            customers[row["company_id"]] = row["google_workspace_customer_id"]
        staging.stage_customers(self.stager.conn, rows)
        self._customers_total[partner_id] = page.total_size
        self._count_customers()

    def _count_customers(self) -> None:
        p, partners = self.progress, self._customers
        p.customers_done = sum(len(c) for c in partners.values())
        p.customers_total = sum(self._customers_total.get(k) or len(c) for k, c in partners.items())
        self.notify()

    def customers_done(self, partner_id: int) -> dict[int, str | None]:
        """Every customer a partner's ``customers.list`` returned, with its Workspace id.

        Raises:
            ListingError: the count does not match ``totalSize``: nothing of the partner may be
                applied.
        """
        customers = self._customers.setdefault(partner_id, {})
        counted, total = len(customers), self._customers_total.get(partner_id) or 0
        if counted != total:
            raise ListingError(
                f"customers.list returned {counted} customers but totalSize said {total}; "
                "the customer list is incomplete, so nothing was applied"
            )
        return customers

    def customers_failed(self, partner_id: int) -> None:
        """A partner's customers.list failed: what it staged is taken back."""
        staging.unstage_partner(self.stager.conn, partner_id)
        self._customers.pop(partner_id, None)
        self._customers_total.pop(partner_id, None)
        self._count_customers()

    def listing_task(
        self,
        partner_id: int,
        section_type: str,
        company_ids: list[int],
        workspace_ids: list[str],
        expected_devices: int = 0,
    ) -> Task:
        """A new findByOwner listing of the run, as a fetch task (numbered from 1)."""
        number = 1 + max((x.listing_id for x in self.listings), default=0)
        listing = ListingResult(
            number,
            ListingKind.FIND_BY_OWNER,
            section_type,
            company_ids,
            workspace_ids,
            partner_id=partner_id,
        )
        self.listings.append(listing)
        self.progress.listings_total += 1
        self._expect(number, expected_devices)
        # a listing of owners the snapshot does not know is started early, to learn its length
        pages = math.ceil(expected_devices / max(1, self.page_size))
        return Task(listing, expected_pages=pages or math.inf)

    def _expect(self, listing_id: int, devices: int | None) -> None:
        """A listing's best-known size (None: it is gone); the run's best-known totals."""
        if devices is None:
            self._expected.pop(listing_id, None)
        else:
            self._expected[listing_id] = devices
        p, size = self.progress, max(1, self.page_size)
        p.devices_expected = max(p.devices_expected, sum(self._expected.values()))
        pages = sum(max(1, math.ceil(d / size)) for d in self._expected.values())
        # requests before the devices phase: those of customers.list (made by now)
        before = p.api_requests if p.devices_started_at is None else p.requests_before_devices
        planned = before + pages + self.lookups_planned
        p.requests_expected = max(p.requests_expected, planned, p.api_requests)

    def page(self, task: Task, page: Page) -> None:
        """One page of a task: its devices as rows, staged and counted."""
        listing = task.listing
        rows: list[DeviceRows] = []
        for item in page.items:
            try:
                rows.append(to_device_rows(item, listing.partner_id))
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
            total = page.total_size
            if total is not None:
                if task.first_total is None:
                    task.first_total = total
                    self._expect(listing.listing_id, total)
                elif total != task.first_total and listing.error is None:
                    listing.error = (
                        f"totalSize changed from {task.first_total} to {total} while paging: "
                        "the listing changed under its page tokens"
                    )
                listing.total_size = total
            listing.devices_seen += len(page.items)
            self.progress.devices_seen += len(page.items)
        else:
            self.identifier_lookups.page(task.row, listing.partner_id, rows, None)
            listing.devices_seen += len(rows)
        self.notify()

    def done(self, task: Task) -> None:
        """A task's pages ended: a listing is complete when its count matches ``totalSize``."""
        listing = task.listing
        if task.row is not None:
            self.identifier_lookups.done(task.row, listing.partner_id)
            return
        counted, total = listing.devices_seen, listing.total_size or 0
        if listing.error is None and counted != total:
            listing.error = f"counted {counted} devices but totalSize said {total}"
        listing.complete = listing.error is None
        if not listing.complete:
            self.warn(f"listing {listing.listing_id} is incomplete: {listing.error}")
        self.progress.listings_done += 1
        self.notify()

    def failed(self, task: Task, exc: Exception) -> list[Task]:
        """A task failed: its listing is incomplete (or listed again in halves), or its lookup
        has an error.

        Returns:
            the tasks that replace it (the halves of a listing the API found too large).

        Raises:
            AuthError, CancelledError: the failure ends the run.
            ListingError: an unexpected failure, which ends the run too.
        """
        listing = task.listing
        if isinstance(exc, AuthError | CancelledError):
            raise exc
        if task.row is not None and lookup_failed(exc):
            # A lookup that fails (the API refused the identifier, retries ran out, its pages
            # did not add up) is that row's problem: recorded with its error.
            self.identifier_lookups.failed(task.row, listing.partner_id, str(exc))
            return []
        if _too_many_owners(listing, exc):
            return self._split(task, exc)
        if isinstance(exc, ApiError | ListingError):
            listing.error = str(exc)
            self.warn(f"listing {listing.listing_id} is incomplete: {exc}")
            self.progress.listings_done += 1
            self.notify()
            return []
        raise ListingError(f"listing {listing.listing_id} failed: {type(exc).__name__}: {exc}")

    def _split(self, task: Task, exc: Exception) -> list[Task]:
        """List a listing's owners again, as two listings of half as many."""
        x = task.listing
        self.listings.remove(x)
        self.progress.listings_total -= 1
        self._expect(x.listing_id, None)
        owners = len(x.company_ids) + len(x.google_workspace_customer_ids)
        self.warn(
            f"findByOwner refused {owners} owners in one request ({exc}); listing them in two "
            f"halves (set api.max_ids_per_request = {owners // 2} to avoid the extra request)"
        )
        assert x.section_type is not None
        companies, spaces = x.company_ids, x.google_workspace_customer_ids
        half_c, half_s = len(companies) // 2, len(spaces) // 2
        return [
            self.listing_task(x.partner_id, x.section_type, companies[:half_c], spaces[:half_s]),
            self.listing_task(x.partner_id, x.section_type, companies[half_c:], spaces[half_s:]),
        ]

    def check_removals(
        self,
        device_ids: list[tuple[int, int]],
        fetch_one: Callable[[tuple[int, int]], Iterator[Page]],
        sections: Sequence[str],
        halt: Callable[[], bool],
    ) -> list[tuple[int, int]]:
        """Ask the API for each of these (device, partner) pairs (``devices.get`` of that
        partner): one still claimed in a synced section was skipped by its listing, and is
        staged as the API has it; one gone, or claimed no more, is removed. A check that fails
        leaves its device as it was.

        Returns:
            the pairs found still registered, and those whose check failed: no removal.
        """
        if not device_ids:
            return []
        fetcher = PageFetcher(
            device_ids,
            fetch_one,
            expected_pages=lambda _: 1.0,
            concurrency=self.concurrency,
            page_size=1,
            halt=halt,
        )
        self.progress.requests_expected += len(device_ids)
        kept: list[tuple[int, int]] = []
        checks = iter(fetcher)
        with closing(checks):
            for item in checks:
                if item.error is not None:
                    self.unchecked += 1
                    kept.append(item.task)
                    device_id = item.task[0]
                    self.warn(f"device {device_id}: its removal check failed: {item.error}")
                elif item.page is not None and item.page.items:
                    device = item.page.items[0]
                    claims = device.get("claims") or []
                    if isinstance(claims, list) and any(
                        isinstance(c, dict) and c.get("sectionType") in sections for c in claims
                    ):
                        kept.append(item.task)
                        self.warn(
                            f"device {item.task[0]} is still registered but no listing "
                            "returned it (its listing moved under its page tokens); kept"
                        )
                        check = ListingResult(
                            staging.CHECK_LISTING,
                            ListingKind.FIND_BY_OWNER,
                            None,
                            [],
                            [],
                            complete=True,
                            partner_id=item.task[1],
                        )
                        self.page(Task(check), item.page)
                self.notify()
        return kept


def _too_many_owners(listing: ListingResult, exc: Exception) -> bool:
    """A 400 on a listing's first request, naming more than one owner: the request may be too
    large for the server (the discovery document sets no maximum), never the listing's data."""
    owners = len(listing.company_ids) + len(listing.google_workspace_customer_ids)
    return (
        isinstance(exc, ApiError) and exc.status == 400 and listing.api_requests == 0 and owners > 1
    )


def keep_warning(warnings: list[str], message: str) -> None:
    """Log a warning of a run, and keep it with the run's first ``MAX_WARNINGS_KEPT``."""
    if len(warnings) < MAX_WARNINGS_KEPT:
        warnings.append(message)
        log.warning("%s", message)


def lookup_failed(exc: Exception) -> bool:
    """True when a lookup's failure is its row's alone: the API refused the identifier or ran
    out of retries on it, or its pages did not add up. Credentials the API refuses and a
    cancel end the run."""
    return isinstance(exc, ListingError) or (
        isinstance(exc, ApiError) and not isinstance(exc, AuthError)
    )

"""A reconcile run: what was shipped (an identifiers CSV) against what is registered.

The run looks up each row of the file with findByIdentifier and nothing else (no
customers.list, no findByOwner): one call per row and configured partner (a partner finds the
devices it registered), ``api.concurrency`` at a time, within the
quota limiter, on the same client stack and page fetching as a sync (``inventory.api``,
:func:`inventory.sync.fetch.fetch_pages`). Its lookups are recorded as a run of its own
(``sync_runs.scope`` = ``identifiers``); it changes nothing in the snapshot. Each row's state is
``v_reconciliation``'s, so the command and the view never disagree; devices whose
``ordernumber`` metadata names an order of the file but that the file does not name come from
the snapshot (``not_in_file``).

One call per row: the lookup asks for :data:`LOOKUP_LIMIT` devices (the API's largest page)
and never follows ``nextPageToken``. An identifier that matches more devices than that (no
IMEI or MEID does; a serial number with a manufacturer hardly can) keeps the first page's
first device as its device, ``totalSize`` as its ``matches``, and a warning.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inventory.api import Counters, Page, ZeroTouchClient, connect_partners
from inventory.auth import load_each
from inventory.config import Settings, require_for_sync
from inventory.db import check_revision
from inventory.errors import (
    ApiError,
    CancelledError,
    InventoryError,
    ListingError,
)
from inventory.identifiers import IdentifierRow, describe, read_identifiers, row_problems
from inventory.store import WriterLock, make_engine, require_database_file, runs
from inventory.store.reconciliation import (
    NOT_IN_FILE,
    STATES,
    devices_not_in_file,
    reconciliation_rows,
)
from inventory.store.runs import (
    ListingKind,
    ListingResult,
    RunScope,
    RunStatus,
    SyncResult,
    Trigger,
)
from inventory.sync import merge
from inventory.sync.collect import Lookups, Task, keep_warning, lookup_failed
from inventory.sync.fetch import Halt, fetch_pages
from inventory.transform import BadRecordError, DeviceRows, to_device_rows

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.engine import Engine

log = logging.getLogger("inventory.reconcile")

LOOKUP_LIMIT = 100
NO_ORDER = ""  # the order of rows that name none


@dataclass
class Reconciliation:
    """What a reconcile run found.

    Attributes:
        path: the identifiers file.
        result: the run (its ``sync_runs`` row); ``failure`` says why a failed run failed.
        rows: ``v_reconciliation``'s rows of the run, by line (none when the run failed).
        not_in_file: devices of the file's orders that the file does not name.
    """

    path: str
    result: SyncResult
    rows: list[dict[str, Any]] = field(default_factory=list)
    not_in_file: list[dict[str, Any]] = field(default_factory=list)

    @property
    def all_ok(self) -> bool:
        """True when the run recorded its lookups and every row of the file is ``ok``."""
        applied = self.result.status in runs.APPLIED
        return applied and all(r["state"] == "ok" for r in self.rows)

    def by_state(self) -> dict[str, int]:
        """Rows per state (every state, zeros too), then the ``not_in_file`` devices."""
        counts = Counter(r["state"] for r in self.rows)
        return {**{s: counts[s] for s in STATES}, NOT_IN_FILE: len(self.not_in_file)}

    def by_order(self) -> dict[str, dict[str, int]]:
        """{order number ("" for rows without one): rows per state, and ``not_in_file``}."""
        orders: dict[str, Counter[str]] = {}
        for r in self.rows:
            orders.setdefault(r["order_number"] or NO_ORDER, Counter())[r["state"]] += 1
        for d in self.not_in_file:
            orders.setdefault(d["order_number"], Counter())[NOT_IN_FILE] += 1
        return {
            order: {s: counts[s] for s in (*STATES, NOT_IN_FILE)}
            for order, counts in sorted(orders.items())
        }


def run_reconcile(
    settings: Settings,
    path: str | Path,
    *,
    trigger: Trigger = Trigger.MANUAL,
    on_progress: Callable[[int, int], None] | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] | None = None,
) -> Reconciliation:
    """Look up every row of an identifiers CSV and record the lookups as a run of their own.

    Args:
        settings: validated settings (``[api]``, ``[auth]``, ``[database]``, the partner).
        path: the identifiers CSV.
        trigger: who started the run, recorded in ``sync_runs``.
        on_progress: called with (rows looked up, rows to look up) as lookups end.
        transport: an httpx transport (the in-process emulator in tests).
        sleep: how to wait between retries and for the quota.
        should_stop: polled; True abandons the run with nothing recorded but its failure.

    Returns:
        The rows' states and the orders' devices the file misses; a run the API stopped is
        ``failed`` with its exception in ``result.failure`` (``CancelledError`` when stopped).

    Raises:
        ConfigError: settings or the file are unusable (nothing was looked up).
        SchemaMismatchError: the database is not at the newest schema.
        LockedError: a sync holds the database's writer lock.
    """
    require_for_sync(settings)
    rows = read_identifiers(path)
    credentials = load_each(
        (p.credentials, settings.credentials_label(p)) for p in settings.partners
    )
    require_database_file(settings.database.url)
    engine = make_engine(settings.database.url)
    try:
        check_revision(engine)
        with WriterLock(engine):
            run = _Reconcile(
                settings, engine, str(path), rows, trigger, on_progress, Halt(should_stop)
            )
            return run.execute(credentials, transport, sleep)
    finally:
        engine.dispose()


@dataclass
class _Reconcile:
    """A reconcile run in progress."""

    settings: Settings
    engine: Engine
    path: str
    rows: list[IdentifierRow]
    trigger: Trigger
    on_progress: Callable[[int, int], None] | None
    halt: Halt
    lookups: Lookups = field(default_factory=Lookups)
    counters: Counters = field(default_factory=Counters)
    unknown: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.partner_id = self.settings.partners[0].id
        self.listings = [  # one lookup listing per partner
            ListingResult(
                listing_id=0,
                kind=ListingKind.FIND_BY_IDENTIFIER,
                section_type=None,
                company_ids=[],
                google_workspace_customer_ids=[],
                partner_id=p.id,
            )
            for p in self.settings.partners
        ]
        self.result = SyncResult(
            run_id=None,
            status=RunStatus.RUNNING,
            trigger=self.trigger,
            dry_run=False,
            started_at=datetime.now(UTC),
            scope=RunScope.IDENTIFIERS,
            listings=list(self.listings),
        )

    def execute(
        self,
        credentials: Any,
        transport: httpx.BaseTransport | None,
        sleep: Callable[[float], None],
    ) -> Reconciliation:
        """The steps: open the run, store the malformed rows, look the others up, record."""
        self.result.run_id = runs.open_run(self.engine, self.result, self.partner_id)
        log.info("%s", describe(self.path, self.rows))
        for message in row_problems(self.path, self.rows):
            self._warn(message)
        self.lookups.malformed(self.rows, self.partner_id)
        try:
            with connect_partners(
                self.settings.api,
                [(p.id, p.credentials) for p in self.settings.partners],
                credentials,
                counters=self.counters,
                transport=transport,
                sleep=sleep,
                should_stop=self.halt,
            ) as clients:
                self._look_up(clients)
        except (ApiError, ListingError, CancelledError) as exc:
            return self._record_failure(exc)
        except BaseException as exc:
            self._record_failure(None, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.halt.set()
        return self._record()

    def _look_up(self, clients: dict[int, ZeroTouchClient]) -> None:
        """One findByIdentifier call per well-formed row and partner; each lookup ends in
        ``lookups``."""
        tasks = [
            Task(listing, row, 1.0)
            for listing in self.listings
            for row in self.rows
            if row.error is None
        ]
        fetched = fetch_pages(
            tasks,
            lambda task: _first_page(clients[task.listing.partner_id], task),
            expected_pages=lambda task: task.expected_pages,
            concurrency=self.settings.api.concurrency,
            page_size=LOOKUP_LIMIT,
            halt=self.halt,
        )
        ended = 0
        with closing(fetched):
            for item in fetched:
                row, listing = item.task.row, item.task.listing
                assert row is not None
                if item.page is not None:
                    self._page(row, listing, item.page)
                    continue
                if item.error is None:
                    self.lookups.done(row, listing.partner_id)
                elif lookup_failed(item.error):
                    self.lookups.failed(row, listing.partner_id, str(item.error))
                else:
                    raise item.error
                ended += 1
                if self.on_progress is not None:
                    self.on_progress(ended, len(tasks))

    def _page(self, row: IdentifierRow, listing: ListingResult, page: Page) -> None:
        devices: list[DeviceRows] = []
        for item in page.items:
            try:
                devices.append(to_device_rows(item, listing.partner_id))
            except BadRecordError as exc:
                self._warn(f"{self.path}:{row.line}: a device the lookup found: {exc}")
        for d in devices:
            self.unknown.update(d.unknown_fields)
        if page.total_size and page.total_size > len(page.items):
            self._warn(
                f"{self.path}:{row.line}: the identifier matches {page.total_size} devices; "
                f"one call a row reads the first {len(page.items)}, and the row keeps the first"
            )
        listing.api_requests += 1
        listing.devices_seen += len(devices)
        self.lookups.page(row, listing.partner_id, devices, page.total_size)

    def _record(self) -> Reconciliation:
        """Store the lookups and the run in one transaction, then read the rows' states."""
        result = self.result
        result.status = RunStatus.SUCCEEDED if self.lookups.complete else RunStatus.PARTIAL
        failed = sum(1 for x in self.lookups.rows if x["error"])
        for listing in self.listings:
            listing.complete = self.lookups.complete
            listing.error = None if self.lookups.complete else f"{failed} row(s) with errors"
        self._finish()
        result.identifiers_looked_up, result.identifiers_found = self.lookups.lines()
        with self.engine.begin() as conn:
            assert result.finished_at is not None
            merge.apply_lookups(conn, self._run_id, self.lookups.rows, result.finished_at)
            runs.record_run(conn, result)
        with self.engine.connect() as conn:
            rows = reconciliation_rows(conn, self._run_id)
            orders = [r["order_number"] for r in rows if r["order_number"]]
            extra = devices_not_in_file(conn, self._run_id, orders) if orders else []
        return Reconciliation(self.path, result, rows, extra)

    def _record_failure(self, failure: InventoryError | None, message: str = "") -> Reconciliation:
        """Record the run as failed (its lookups are not stored)."""
        result = self.result
        result.status = RunStatus.FAILED
        result.error = message or str(failure)
        result.failure = failure
        self._finish()
        try:
            with self.engine.begin() as conn:
                runs.record_run(conn, result)
        except Exception:  # the original failure is what the user needs to see
            log.exception("could not record the failed run")
        return Reconciliation(self.path, result)

    def _finish(self) -> None:
        self.result.finished_at = datetime.now(UTC)
        self.result.api_requests = self.counters.requests
        self.result.retries = self.counters.retries
        self.result.unknown_fields = dict(self.unknown)

    def _warn(self, message: str) -> None:
        keep_warning(self.result.warnings, message)

    @property
    def _run_id(self) -> int:
        assert self.result.run_id is not None
        return self.result.run_id


def _first_page(client: ZeroTouchClient, task: Task) -> Iterator[Page]:
    """The first page of a row's lookup, as the last: one call per row, whatever it matched."""
    assert task.identifier is not None
    for page in client.iter_find_by_identifier_pages(task.identifier, limit=LOOKUP_LIMIT):
        yield replace(page, next_token=None)
        return

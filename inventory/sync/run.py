"""One sync run, as the list of its steps.

The run takes the database's writer lock and opens its ``sync_runs`` row; lists the customers;
plans the findByOwner listings; fetches their pages (and the identifier lookups) and stages
them as they arrive; decides what changed, what is left as it was and what is removed; and
applies it all in one transaction with the run's record (SPEC "What a sync guarantees"). Each
step is a function of its own module: ``api`` (the client stack), ``plan``, ``fetch``,
``collect`` (what each page means), ``staging``, ``merge`` and ``store.runs`` (the record).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine

from inventory.api import Counters, Page, ZeroTouchClient, connect
from inventory.auth import load_credentials
from inventory.config import Settings, require_for_sync
from inventory.db import check_revision
from inventory.errors import (
    ApiError,
    AuthError,
    CancelledError,
    ConfigError,
    InventoryError,
    ListingError,
    MassRemovalError,
)
from inventory.identifiers import IdentifierRow, describe, read_identifiers, row_problems
from inventory.store import WriterLock, make_engine, require_database_file, runs, snapshot
from inventory.store.runs import ListingKind, ListingResult, RunStatus, SyncResult, Trigger
from inventory.sync import merge, staging
from inventory.sync.collect import Collector, Task
from inventory.sync.fetch import Halt, PageFetcher, short_gil_slices
from inventory.sync.plan import plan_listings
from inventory.sync.progress import Phase, Progress

if TYPE_CHECKING:
    import httpx
    from google.auth.credentials import Credentials

log = logging.getLogger("inventory.sync")

PREVIEW_ROWS = 20
PROGRESS_RECORD_S = 5.0  # how often a run writes its progress to its sync_runs row
_SEEN = ("added", "changed", "reappeared", "same")  # staged changes of devices the run saw


def run_sync(
    settings: Settings,
    *,
    trigger: Trigger = Trigger.MANUAL,
    dry_run: bool = False,
    allow_mass_removal: bool = False,
    customers: list[int] | None = None,
    identifiers_file: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] | None = None,
    preview_limit: int = PREVIEW_ROWS,
) -> SyncResult:
    """Run one sync of ``settings`` into its database.

    Args:
        settings: validated settings.
        trigger: who started the run, recorded in ``sync_runs``.
        dry_run: fetch and report what would change; apply nothing.
        allow_mass_removal: apply even when more than ``sync.max_removed_fraction`` would go.
        customers: list only these customer ids (default: ``sync.customers``, else all).
        identifiers_file: CSV of identifiers to look up (default: ``sync.identifiers_file``).
        on_progress: called with live counters after every page.
        transport: an httpx transport (the in-process emulator in tests).
        sleep: how to wait between retries.
        should_stop: polled; True abandons the run with nothing applied.
        preview_limit: a dry run previews up to this many changes of each kind.

    Returns:
        The run's result; API and listing failures end as ``failed`` or ``partial``, and a
        failed run carries its exception in ``failure`` (``CancelledError`` when stopped).

    Raises:
        ConfigError: settings or the identifiers file are unusable (nothing was fetched).
        SchemaMismatchError: the database is not at the newest schema.
        LockedError: another run holds the database's writer lock.
    """
    require_for_sync(settings)
    ident_path = settings.sync.identifiers_file if identifiers_file is None else identifiers_file
    try:
        identifiers = read_identifiers(ident_path) if ident_path else None
    except ConfigError as exc:  # say which setting named the file (an environment variable?)
        if identifiers_file is not None:
            raise
        where = settings.label("sync.identifiers_file")
        raise ConfigError([f"{where}: {e}" for e in exc.errors]) from None
    try:
        credentials = load_credentials(settings.auth.credentials)
    except AuthError as exc:  # an unusable key file is bad configuration: nothing ran
        raise ConfigError(f"{settings.label('auth.credentials')}: {exc}") from None
    require_database_file(settings.database.url)  # rather than create an empty one
    engine = make_engine(settings.database.url)
    try:
        check_revision(engine)
        with WriterLock(engine):
            run = _Run(
                settings=settings,
                engine=engine,
                result=SyncResult(
                    run_id=None,
                    status=RunStatus.RUNNING,
                    trigger=trigger,
                    dry_run=dry_run,
                    started_at=datetime.now(UTC),
                    preview_limit=preview_limit,
                ),
                allow_mass_removal=allow_mass_removal,
                subset=list(customers) if customers else list(settings.sync.customers),
                identifiers=identifiers,
                identifiers_file=ident_path,
                credentials=credentials,
                on_progress=on_progress,
                transport=transport,
                sleep=sleep,
                halt=Halt(should_stop),
            )
            return run.execute()
    finally:
        engine.dispose()


@dataclass
class _Run:
    """A run in progress: its settings, its result so far and its live counters."""

    settings: Settings
    engine: Engine
    result: SyncResult
    allow_mass_removal: bool
    subset: list[int]  # the customers to list; empty: every customer
    identifiers: list[IdentifierRow] | None  # the identifiers CSV's rows; None: no file
    identifiers_file: str
    credentials: Credentials | None
    on_progress: Callable[[Progress], None] | None
    transport: httpx.BaseTransport | None
    sleep: Callable[[float], None]
    halt: Halt
    conn: Connection | None = None  # the run's writer connection, with its staging tables
    run_id: int = 0  # 0 for a dry run: it has no sync_runs row
    counts: dict[str, int] = field(default_factory=dict)  # staged devices per change
    counters: Counters = field(default_factory=Counters)
    progress: Progress = field(default_factory=Progress)
    _recorded: float = 0.0  # when the progress was last written to the run's row

    def __post_init__(self) -> None:
        self.partner_id = self.settings.partner.id or 0
        self._thread = threading.get_ident()  # the run's own: it alone writes and notifies
        api = self.settings.api
        if api.quota_per_100s:
            self.progress.quota_rate = api.quota_per_100s / api.quota_window_s

    def execute(self) -> SyncResult:
        """The steps of a run; a failure at any step applies nothing and is recorded."""
        with self.engine.connect() as conn:
            self.conn = conn
            try:
                self._steps()
            finally:
                self.halt.set()
                if not conn.invalidated:
                    staging.drop(conn)
        self._finished()
        return self.result

    def _finished(self) -> None:
        """The run's end is when its work is done, commit and cleanup included: the summary
        says what the command took, and the run's row says the same (best effort: the
        snapshot is committed whatever happens here)."""
        result = self.result
        result.finished_at = datetime.now(UTC)
        if self.run_id and result.status in runs.APPLIED:
            try:
                with self.engine.begin() as conn:
                    runs.stamp_finished(conn, self.run_id, result.finished_at)
            except Exception:  # the run is applied and recorded; only its end time is earlier
                log.warning("could not record the end time of run %s", self.run_id, exc_info=True)

    def _steps(self) -> None:
        self._open()
        try:
            with connect(
                self.settings.api,
                self.partner_id,
                self.credentials,
                counters=self.counters,
                transport=self.transport,
                sleep=self._wait,
                should_stop=self.halt,
            ) as client:
                companies, workspaces = self._list_customers(client)
                tasks = self._plan(companies, workspaces)
                self._fetch(client, tasks)
                self._decide(client)
            self._apply()
        except (ApiError, ListingError, MassRemovalError, CancelledError) as exc:
            self._fail(exc, str(exc))
        except BaseException as exc:
            self._fail(None, f"{type(exc).__name__}: {exc}")
            raise

    # --- the steps ---------------------------------------------------------------------------

    def _open(self) -> None:
        """Open the run's ``sync_runs`` row (none for a dry run) and its staging tables."""
        self.result.scope, self.result.scope_customer_ids = runs.scope_of(self.subset)
        if not self.result.dry_run:
            self.run_id = runs.open_run(self.engine, self.result, self.partner_id)
            self.result.run_id = self.run_id
        staging.create(self.writer)
        self.collector = Collector(
            staging.Stager(self.writer),
            self.partner_id,
            self.progress,
            self._notify,
            self.result.warnings,
            self.result.listings,
            self.settings.api.page_size,
            concurrency=self.settings.api.concurrency,
        )

    def _list_customers(self, client: ZeroTouchClient) -> tuple[list[int], list[str]]:
        """Stage ``customers.list``; return the companies to list and the Workspace accounts to
        list (the listed customers' own, then the configured ones)."""
        self._notify(Phase.CUSTOMERS)
        for page in client.iter_customer_pages():
            self.collector.customer_page(page)
            if self.halt():
                raise CancelledError("cancelled")
        workspaces = self.collector.customers_done()
        self.result.customers_seen = len(workspaces)
        companies = list(workspaces)
        if self.subset:
            for missing in (c for c in self.subset if c not in workspaces):
                self.collector.warn(f"customer {missing} is not in customers.list; listed anyway")
            companies = list(self.subset)
        # Chrome OS devices may be claimed for a customer's Workspace account alone, or for one
        # that is no zero-touch customer of the reseller (sync.google_workspace_customer_ids).
        spaces = [w for c in companies if (w := workspaces.get(c))]
        spaces += self.settings.sync.google_workspace_customer_ids
        return companies, list(dict.fromkeys(spaces))

    def _plan(self, companies: list[int], workspaces: list[str]) -> list[Task]:
        """The listings (from the plan) and identifier lookups of the run, as fetch tasks."""
        sections, api = self.settings.sync.section_types, self.settings.api
        with self.writer.begin():  # what the snapshot holds plans the listings
            by_company, by_workspace = snapshot.devices_per_owner(self.writer, sections)
        planned = plan_listings(
            companies,
            workspaces,
            sections,
            concurrency=api.concurrency,
            max_ids=api.max_ids_per_request,
            by_company=by_company,
            by_workspace=by_workspace,
        )
        tasks = [
            self.collector.listing_task(
                p.section_type, p.company_ids, p.google_workspace_customer_ids, p.expected_devices
            )
            for p in planned
        ]
        if self.identifiers is not None:
            lookup = ListingResult(
                listing_id=staging.IDENTIFIER_LISTING,
                kind=ListingKind.FIND_BY_IDENTIFIER,
                section_type=None,
                company_ids=[],
                google_workspace_customer_ids=[],
            )
            self.result.listings.append(lookup)
            self._malformed(self.identifiers)
            # one identifier is one short lookup: they fill the slots the listings leave
            lookups = [Task(lookup, row, 1.0) for row in self.identifiers if row.error is None]
            self.collector.lookups_planned = len(lookups)
            tasks += lookups
        return tasks

    def _fetch(self, client: ZeroTouchClient, tasks: list[Task]) -> None:
        """Fetch every task's pages and hand each to the collector as it arrives."""
        with short_gil_slices():
            self._notify(Phase.DEVICES)
            self._collect(client, tasks)
        self.collector.stager.flush()
        self._collect_counters()

    def _collect(self, client: ZeroTouchClient, tasks: list[Task]) -> None:
        collector = self.collector
        fetcher = PageFetcher(
            tasks,
            lambda task: _open_pages(client, task, self.settings.api.page_size),
            expected_pages=lambda task: task.expected_pages,
            concurrency=self.settings.api.concurrency,
            page_size=self.settings.api.page_size,
            halt=self.halt,
            idle=self._notify,
        )
        fetched = iter(fetcher)
        with closing(fetched):
            for item in fetched:
                if item.page is not None:
                    collector.page(item.task, item.page)
                elif item.error is not None:
                    fetcher.add(collector.failed(item.task, item.error))
                else:
                    collector.done(item.task)

    def _decide(self, client: ZeroTouchClient) -> None:
        """Decide what the merge will apply: coverage, incomplete listings, removals (checked
        with the API), the counts, and the mass-removal guard."""
        result, writer = self.result, self.writer
        owner_listings = [x for x in result.listings if x.kind == ListingKind.FIND_BY_OWNER]
        staging.stage_coverage(writer, owner_listings)
        for x in result.listings:
            if x.kind == ListingKind.FIND_BY_IDENTIFIER:
                x.complete = self.collector.identifiers_complete
                failed = sum(1 for row in self.collector.lookups if row["error"])
                x.error = None if x.complete else f"{failed} identifier row(s) with errors"
        merge.mark_incomplete(writer, [x.listing_id for x in owner_listings if not x.complete])
        # A device can come back from two listings: claims in two sections, a company and a
        # Workspace listing, an identifier lookup, or a device that moved while we paged.
        merge.deduplicate(writer)
        for listing_id, repeated in sorted(self.collector.stager.repeated.items()):
            self.collector.warn(
                f"listing {listing_id} returned {repeated} device(s) more than once; "
                "each is stored once"
            )
        self._notify(Phase.MERGING)
        staging.refresh_statistics(writer)
        merge.stage_removals(
            writer,
            self.settings.sync.section_types,
            every_customer=not self.subset,
            identifiers_complete=self.collector.identifiers_complete,
        )
        self._check_removals(client)
        self.counts = merge.change_counts(writer)
        result.devices_added = self.counts.get("added", 0)
        result.devices_changed = self.counts.get("changed", 0)
        result.devices_reappeared = self.counts.get("reappeared", 0)
        result.devices_removed = self.counts.get("removed", 0)
        result.devices_seen = sum(v for k, v in self.counts.items() if k in _SEEN)
        result.customers_added, result.customers_removed = merge.customer_changes(writer)
        self._guard_mass_removal()
        if self.collector.unknown:
            log.warning(
                "the API sent fields this version does not know (kept in raw): %s",
                ", ".join(f"{k} x{v}" for k, v in sorted(self.collector.unknown.items())),
            )
        # a removal left unchecked, or whose check failed, leaves its device as it was
        unchecked = self.counts.get("unconfirmed", 0) + self.collector.unchecked
        partial = unchecked or any(not x.complete for x in result.listings)
        result.status = RunStatus.PARTIAL if partial else RunStatus.SUCCEEDED

    def _check_removals(self, client: ZeroTouchClient) -> None:
        """Ask the API for each device a complete listing should have returned but did not,
        before it is marked removed (up to ``sync.removal_checks`` a run)."""
        writer, sections = self.writer, self.settings.sync.section_types
        candidates = merge.removal_candidates(writer, sections)
        limit = self.settings.sync.removal_checks
        if not limit:  # the listings are trusted
            return
        checked, waiting = candidates[:limit], candidates[limit:]
        if waiting:
            merge.unstage_removals(writer, waiting, left=True)
            self.collector.warn(
                f"{len(waiting)} devices missing from their listings were not checked "
                f"(sync.removal_checks = {limit}); they stay as they were until a later run"
            )
        found = self.collector.check_removals(
            checked, lambda device_id: _check_pages(client, device_id), sections, self.halt
        )
        merge.unstage_removals(writer, found, left=False)
        self.collector.stager.flush()

    def _apply(self) -> None:
        """Apply the decisions and record the run in one transaction (a dry run previews)."""
        result, lookups, writer = self.result, self.collector.lookups, self.writer
        self._collect_counters()
        if result.dry_run:
            result.preview = merge.preview(writer, result.preview_limit)
            return
        now = datetime.now(UTC)  # the new snapshot's time: its versions start then
        with writer.begin():
            merge.apply(writer, self.run_id, now, self.counts)
            merge.apply_lookups(writer, self.run_id, lookups, now)
            result.finished_at = datetime.now(UTC)  # restamped once the commit is done
            runs.record_run(writer, result)
        result.identifiers_looked_up = len(lookups)
        result.identifiers_found = sum(1 for x in lookups if x["found"])
        self._notify(Phase.DONE)

    # --- helpers -----------------------------------------------------------------------------

    @property
    def writer(self) -> Connection:
        """The run's writer connection."""
        assert self.conn is not None
        return self.conn

    def _malformed(self, rows: list[IdentifierRow]) -> None:
        """Say what the identifiers file holds; store its malformed rows with their errors, each
        a warning (the run goes on, and is partial)."""
        log.info("%s", describe(self.identifiers_file, rows))
        for message in row_problems(self.identifiers_file, rows):
            self.collector.warn(message)
        self.collector.identifier_lookups.malformed(rows)

    def _guard_mass_removal(self) -> None:
        removed = self.result.devices_removed
        if not removed or self.allow_mass_removal:
            return
        with self.writer.begin():
            fleet = snapshot.current_fleet_size(self.writer)
        limit = self.settings.sync.max_removed_fraction
        if fleet and removed / fleet > limit:
            raise MassRemovalError(
                f"this run would mark {removed} of {fleet} devices removed "
                f"({removed / fleet:.0%}), more than sync.max_removed_fraction = {limit:g}; "
                "nothing was applied. If the removals are real, run "
                "`zt-inventory sync --allow-mass-removal`"
            )

    def _fail(self, failure: InventoryError | None, message: str) -> None:
        if isinstance(failure, CancelledError):
            log.warning("sync cancelled: nothing was applied")
            self.result.status = RunStatus.CANCELLED
        else:
            log.debug("sync failed: %s", message)
            self.result.status = RunStatus.FAILED
        self.result.error = message
        self.result.failure = failure
        self.result.finished_at = datetime.now(UTC)
        self._collect_counters()
        try:
            if not self.result.dry_run:  # on a connection of its own: the writer may be broken
                with self.engine.begin() as conn:
                    runs.record_run(conn, self.result)
        except Exception:  # the original failure is what the user needs to see
            log.exception("could not record the failed run")

    def _collect_counters(self) -> None:
        self.result.api_requests = self.counters.requests
        self.result.retries = self.counters.retries
        collector = getattr(self, "collector", None)  # none when the run failed to open
        self.result.unknown_fields = dict(collector.unknown) if collector else {}

    def _wait(self, seconds: float) -> None:
        """How the API client waits (retries, the quota): the run's own thread shows its
        counters first, so that a retry storm in customers.list does not look like a stall."""
        if threading.get_ident() == self._thread:
            self._notify()
        self.sleep(seconds)

    def _notify(self, phase: Phase | None = None) -> None:
        progress = self.progress
        progress.api_requests = self.counters.requests
        progress.retries = self.counters.retries
        if phase is not None:
            progress.enter(phase)
        now = time.monotonic()
        due = phase is not None or now - self._recorded >= PROGRESS_RECORD_S
        if self.run_id and due and progress.phase != Phase.DONE:
            self._recorded = now  # status, from another process, reads it
            runs.record_progress(self.writer, self.run_id, progress.to_dict(now))
        if self.on_progress is not None:
            self.on_progress(progress)


def _check_pages(client: ZeroTouchClient, device_id: int) -> Iterator[Page]:
    """One device by id, as a one-page listing (no page: the API does not know it)."""
    device = client.get_device(device_id)
    yield Page(number=1, items=[device] if device else [], total_size=None, next_token=None)


def _open_pages(client: ZeroTouchClient, task: Task, limit: int) -> Iterator[Page]:
    """The pages of one task: its identifier's lookup, or its listing."""
    if task.identifier is not None:
        return client.iter_find_by_identifier_pages(task.identifier, limit=limit)
    listing = task.listing
    assert listing.section_type is not None
    return client.iter_find_by_owner_pages(
        listing.section_type,
        customer_ids=listing.company_ids,
        workspace_ids=listing.google_workspace_customer_ids,
        limit=limit,
    )

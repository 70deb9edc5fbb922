"""One sync run, as the list of its steps.

The run takes the database's writer lock and opens its ``sync_runs`` row; lists each
partner's customers and vendors; plans the findByOwner listings; fetches their pages (and the
identifier lookups) and stages them as they arrive; decides what changed, what is left as it
was and what is removed; and applies it all in one transaction with the run's record (SPEC
"What a sync guarantees"). Each step is a function of its own module: ``api`` (the client
stack), ``partners``, ``plan``, ``fetch``, ``collect`` (what each page means), ``staging``,
``merge`` and ``store.runs`` (the record).

A run syncs every configured partner (``[[partners]]``), or those ``partners`` names: each with
its own client and token, partners behind one key file sharing one quota limiter (Google counts
the quota per project). A partner whose customers.list fails is left as it was and the run is
partial; the others apply. Removals are decided per partner (``merge.stage_removals``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine

from inventory.api import Counters, Page, ZeroTouchClient, connect_partners
from inventory.auth import load_each
from inventory.config import PartnerSettings, Settings, require_for_sync
from inventory.db import check_revision
from inventory.errors import (
    ApiError,
    CancelledError,
    ConfigError,
    InventoryError,
    ListingError,
    MassRemovalError,
)
from inventory.identifiers import IdentifierRow, describe, read_identifiers, row_problems
from inventory.store import WriterLock, make_engine, require_database_file, runs, snapshot
from inventory.store.runs import (
    ListingKind,
    ListingResult,
    PartnerResult,
    RunScope,
    RunStatus,
    SyncResult,
    Trigger,
)
from inventory.sync import merge, staging
from inventory.sync.collect import Collector, Task
from inventory.sync.fetch import Halt, PageFetcher
from inventory.sync.partners import (
    Owners,
    PartnerLists,
    PartnerRun,
    scope_rows,
    select_partners,
    settle_outcomes,
)
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
    partners: Sequence[int] | None = None,
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
        customers: list only these customer ids, of every partner synced (default: each
            partner's ``customers``, else all).
        partners: sync only these configured partners (default: every one).
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
        ConfigError: settings, the partners named or the identifiers file are unusable
            (nothing was fetched).
        SchemaMismatchError: the database is not at the newest schema.
        LockedError: another run holds the database's writer lock.
    """
    require_for_sync(settings)
    selected = select_partners(settings, partners)
    ident_path = settings.sync.identifiers_file if identifiers_file is None else identifiers_file
    try:
        identifiers = read_identifiers(ident_path) if ident_path else None
    except ConfigError as exc:  # say which setting named the file (an environment variable?)
        if identifiers_file is not None:
            raise
        where = settings.label("sync.identifiers_file")
        raise ConfigError([f"{where}: {e}" for e in exc.errors]) from None
    credentials = load_each((p.credentials, settings.credentials_label(p)) for p in selected)
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
                selected=selected,
                every_partner=len(selected) == len(settings.partners),
                customers=list(customers or ()),
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
    selected: list[PartnerSettings]  # the partners to sync, in the configuration's order
    every_partner: bool  # every configured partner is synced
    customers: list[int]  # --customer: list only these, of every partner; empty: as configured
    identifiers: list[IdentifierRow] | None  # the identifiers CSV's rows; None: no file
    identifiers_file: str
    credentials: dict[str, Credentials | None]  # key file -> its credentials
    on_progress: Callable[[Progress], None] | None
    transport: httpx.BaseTransport | None
    sleep: Callable[[float], None]
    halt: Halt
    conn: Connection | None = None  # the run's writer connection, with its staging tables
    run_id: int = 0  # 0 for a dry run: it has no sync_runs row
    counts: dict[str, int] = field(default_factory=dict)  # staged devices per change
    counters: Counters = field(default_factory=Counters)
    progress: Progress = field(default_factory=Progress)
    partners: list[PartnerRun] = field(default_factory=list)
    clients: dict[int, ZeroTouchClient] = field(default_factory=dict)  # by partner id
    _recorded: float = 0.0  # when the progress was last written to the run's row

    def __post_init__(self) -> None:
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
            with connect_partners(
                self.settings.api,
                [(p.id, p.credentials) for p in self.selected],
                self.credentials,
                counters=self.counters,
                transport=self.transport,
                sleep=self._wait,
                should_stop=self.halt,
            ) as clients:
                self._start_partners(clients)
                owners = [self._list(p) for p in self.partners]
                tasks = self._plan(owners)
                self._fetch(tasks)
                self._decide()
            self._apply()
        except (ApiError, ListingError, MassRemovalError, CancelledError) as exc:
            self._fail(exc, str(exc))
        except BaseException as exc:
            self._fail(None, f"{type(exc).__name__}: {exc}")
            raise

    # --- the steps ---------------------------------------------------------------------------

    def _open(self) -> None:
        """Open the run's ``sync_runs`` row (none for a dry run) and its staging tables."""
        listed = self.customers or sorted({c for p in self.selected for c in p.customers})
        self.result.scope, self.result.scope_customer_ids = runs.scope_of(listed)
        if not self.every_partner and self.result.scope == RunScope.FULL:
            self.result.scope = RunScope.PARTNERS
        if not self.result.dry_run:
            self.run_id = runs.open_run(self.engine, self.result, self.selected[0].id)
            self.result.run_id = self.run_id
        staging.create(self.writer)
        self.collector = collector = Collector(
            staging.Stager(self.writer),
            self.progress,
            self._notify,
            self.result.warnings,
            self.result.listings,
            self.settings.api.page_size,
            concurrency=self.settings.api.concurrency,
        )
        self.lists = PartnerLists(
            collector,
            self.writer,
            self.halt,
            self.settings.sync.google_workspace_customer_ids,
            concurrency=self.settings.api.concurrency,
        )

    def _start_partners(self, clients: dict[int, ZeroTouchClient]) -> None:
        """The run's partners, each with its client and its customers to list."""
        self.clients = clients
        for index, settings in enumerate(self.selected):
            subset = list(self.customers or settings.customers)
            result = PartnerResult(settings.id)
            self.result.partners.append(result)
            self.partners.append(PartnerRun(settings, index, clients[settings.id], subset, result))

    def _list(self, partner: PartnerRun) -> Owners:
        """Stage a partner's customers.list and vendors: what its listings ask about."""
        self._notify(Phase.CUSTOMERS)
        owners = self.lists.stage(partner, self.partners)
        self.result.customers_seen += partner.result.customers_seen
        self._notify()  # the requests the lists took
        return owners

    def _plan(self, owners: list[Owners]) -> list[Task]:
        """The listings (each partner's, as a run of it alone would plan them) and identifier
        lookups of the run, as fetch tasks."""
        api, tasks = self.settings.api, list[Task]()
        for partner, listed in zip(self.partners, owners, strict=True):
            tasks += self.lists.listing_tasks(
                partner,
                listed,
                concurrency=api.concurrency,
                max_ids=api.max_ids_per_request,
                alone=len(self.partners) == 1,
            )
        if self.identifiers is not None:
            tasks += self._lookups(self.identifiers)
        return tasks

    def _lookups(self, rows: list[IdentifierRow]) -> list[Task]:
        """The identifier lookups: every well-formed row, looked up under each partner (a
        partner finds the devices it registered)."""
        log.info("%s", describe(self.identifiers_file, rows))
        for message in row_problems(self.identifiers_file, rows):
            self.collector.warn(message)
        self.collector.identifier_lookups.malformed(rows, self.partners[0].id)
        tasks = list[Task]()
        for partner in self.partners:
            if not partner.customers_whole:
                continue
            lookup = ListingResult(
                listing_id=staging.IDENTIFIER_LISTING + partner.index,
                kind=ListingKind.FIND_BY_IDENTIFIER,
                section_type=None,
                company_ids=[],
                google_workspace_customer_ids=[],
                partner_id=partner.id,
            )
            self.result.listings.append(lookup)
            # one identifier is one short lookup: they fill the slots the listings leave
            tasks += [Task(lookup, row, 1.0) for row in rows if row.error is None]
        self.collector.lookups_planned = len(tasks)
        return tasks

    def _fetch(self, tasks: list[Task]) -> None:
        """Fetch every task's pages and hand each to the collector as it arrives."""
        self._notify(Phase.DEVICES)
        self._collect(tasks)
        self.collector.stager.flush()
        self._collect_counters()

    def _collect(self, tasks: list[Task]) -> None:
        collector, size, clients = self.collector, self.settings.api.page_size, self.clients
        fetcher = PageFetcher(
            tasks,
            lambda task: _open_pages(clients[task.listing.partner_id], task, size),
            expected_pages=lambda task: task.expected_pages,
            concurrency=self.settings.api.concurrency,
            page_size=size,
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

    def _decide(self) -> None:
        """Decide what the merge will apply: coverage, incomplete listings, removals (checked
        with the API), the counts, and the mass-removal guard."""
        result, writer = self.result, self.writer
        owner_listings = [x for x in result.listings if x.kind == ListingKind.FIND_BY_OWNER]
        staging.stage_coverage(writer, owner_listings)
        staging.stage_scope(writer, scope_rows(self.settings.partners, self.partners))
        for x in result.listings:
            if x.kind == ListingKind.FIND_BY_IDENTIFIER:
                x.complete = self.collector.identifiers_complete
                failed = sum(1 for row in self.collector.lookups if row["error"])
                x.error = None if x.complete else f"{failed} identifier row(s) with errors"
        merge.mark_incomplete(writer, [x.listing_id for x in owner_listings if not x.complete])
        # A device can come back from two listings: claims in two sections, a company and a
        # Workspace listing, an identifier lookup, two partners, or a device that moved while
        # we paged.
        merge.deduplicate(writer)
        for listing_id, repeated in sorted(self.collector.stager.repeated.items()):
            if listing_id >= 0:  # a device that two CSV rows name is no surprise
                self.collector.warn(
                    f"listing {listing_id} returned {repeated} device(s) more than once; "
                    "each is stored once"
                )
        self._notify(Phase.MERGING)
        staging.refresh_statistics(writer)
        claimless = [p.id for p in self.partners if p.everyone]
        merge.stage_removals(
            writer, claimless_partners=claimless if self.collector.identifiers_complete else []
        )
        self._check_removals()
        self.counts = merge.change_counts(writer)
        result.devices_added = self.counts.get("added", 0)
        result.devices_changed = self.counts.get("changed", 0)
        result.devices_reappeared = self.counts.get("reappeared", 0)
        result.devices_removed = self.counts.get("removed", 0)
        result.devices_seen = sum(v for k, v in self.counts.items() if k in _SEEN)
        whole = [p.id for p in self.partners if p.customers_whole]
        result.customers_added, result.customers_removed = merge.customer_changes(writer, whole)
        self._guard_mass_removal()
        if self.collector.unknown:
            log.warning(
                "the API sent fields this version does not know (kept in raw): %s",
                ", ".join(f"{k} x{v}" for k, v in sorted(self.collector.unknown.items())),
            )
        seen = merge.devices_per_listing(writer, _SEEN)
        settle_outcomes(self.partners, result.listings, seen)
        # a removal left unchecked, or whose check failed, leaves its device as it was
        unchecked = self.counts.get("unconfirmed", 0) + self.collector.unchecked
        partial = unchecked or any(not x.complete for x in result.listings)
        partial = partial or any(p.result.status != RunStatus.SUCCEEDED for p in self.partners)
        result.status = RunStatus.PARTIAL if partial else RunStatus.SUCCEEDED

    def _check_removals(self) -> None:
        """Ask the API for each device a complete listing should have returned but did not,
        before it is marked removed (up to ``sync.removal_checks`` a run)."""
        writer = self.writer
        candidates = merge.removal_candidates(writer)
        limit = self.settings.sync.removal_checks
        if not limit:  # the listings are trusted
            return
        checked, waiting = candidates[:limit], candidates[limit:]
        if waiting:
            merge.unstage_removals(writer, [d for d, _ in waiting], left=True)
            self.collector.warn(
                f"{len(waiting)} devices missing from their listings were not checked "
                f"(sync.removal_checks = {limit}); they stay as they were until a later run"
            )
        sections = list(dict.fromkeys(s for p in self.selected for s in p.section_types))
        found = self.collector.check_removals(
            checked,
            lambda pair: _check_pages(self.clients[pair[1]], pair[0]),
            sections,
            self.halt,
        )
        merge.unstage_removals(writer, [d for d, _ in found], left=False)
        self.collector.stager.flush()

    def _apply(self) -> None:
        """Apply the decisions and record the run in one transaction (a dry run previews)."""
        result, lookups, writer = self.result, self.collector.lookups, self.writer
        self._collect_counters()
        if result.dry_run:
            result.preview = merge.preview(writer, result.preview_limit)
            return
        now = datetime.now(UTC)  # the new snapshot's time: its versions start then
        vendors = [p.id for p in self.partners if p.vendors_whole]
        whole = {
            "customers": [p.id for p in self.partners if p.customers_whole],
            "vendors": vendors,
            "vendor_customers": vendors,
        }
        with writer.begin():
            merge.apply(writer, self.run_id, now, self.counts, whole)
            merge.apply_lookups(writer, self.run_id, lookups, now)
            result.finished_at = datetime.now(UTC)  # restamped once the commit is done
            runs.record_run(writer, result)
        result.identifiers_looked_up, result.identifiers_found = (
            self.collector.identifier_lookups.lines()
        )
        self._notify(Phase.DONE)

    # --- helpers -----------------------------------------------------------------------------

    @property
    def writer(self) -> Connection:
        """The run's writer connection."""
        assert self.conn is not None
        return self.conn

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
        for partner in self.result.partners:  # nothing of any partner was applied
            partner.status = self.result.status
            partner.error = partner.error or message
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

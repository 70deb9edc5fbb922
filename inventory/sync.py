"""One sync run: API -> transform -> staging, then one merge transaction.

The run takes the database's writer lock, lists customers, then runs the findByOwner listings
(several customers packed into each, ``api.concurrency`` at a time) and the findByIdentifier
lookups on worker threads. Pages come back to this thread through a bounded queue, so memory
stays flat however large the fleet; this thread classifies and stages them. When every listing
has ended, removals are decided, the mass-removal guard is checked, and one transaction merges
staging into the public tables (SPEC "What a sync guarantees").
"""

from __future__ import annotations

import collections
import heapq
import logging
import math
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, update
from sqlalchemy.engine import Engine

from inventory import merge, staging
from inventory.api import ZeroTouchClient
from inventory.auth import GoogleAuth, load_credentials
from inventory.config import Settings, require_for_sync
from inventory.db import check_revision
from inventory.errors import (
    ApiError,
    AuthError,
    CancelledError,
    ConfigError,
    ListingError,
    MassRemovalError,
)
from inventory.http import ApiTransport, Counters, RequestLimiter, build_client
from inventory.identifiers import read_identifiers
from inventory.models import IdentifierLookup, SyncListing, SyncRun
from inventory.pagination import Page
from inventory.plan import listing_chunks
from inventory.store import WriterLock, make_engine
from inventory.transform import BadRecordError, DeviceRows, to_customer_row, to_device_rows

if TYPE_CHECKING:
    import httpx
    from google.auth.credentials import Credentials

log = logging.getLogger("inventory.sync")

QUEUE_PAGES_PER_WORKER = 2
MAX_WARNINGS_KEPT = 50
PREVIEW_ROWS = 20
# While pages stream in, the main thread is busy with Python work and the fetching threads wait
# for the GIL after every socket read: CPython makes a waiting thread wait up to the switch
# interval (5 ms by default). With 100 ms calls that made each call take about 130 ms as the
# client saw it (107 ms for a client with no other work); 0.5 ms brought it to about 118 ms.
SWITCH_INTERVAL_S = 0.0005
_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.0


@contextmanager
def _short_gil_slices() -> Iterator[None]:
    """Shorten the GIL switch interval while any run fetches; restore it after the last."""
    global _switch_users, _switch_saved
    with _switch_lock:
        if _switch_users == 0:
            _switch_saved = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_saved, SWITCH_INTERVAL_S))
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_saved)


@dataclass
class ListingResult:
    """One listing of a run: what it asked, what it got, whether it arrived whole."""

    listing_id: int
    kind: str
    section_type: str | None
    company_ids: list[int]
    google_workspace_customer_ids: list[str]
    total_size: int | None = None
    devices_seen: int = 0
    api_requests: int = 0
    complete: bool = False
    error: str | None = None


@dataclass
class SyncResult:
    """What a run did; ``status`` is succeeded, partial or failed."""

    run_id: int | None
    status: str
    trigger: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None = None
    customers_seen: int = 0
    devices_seen: int = 0
    devices_added: int = 0
    devices_changed: int = 0
    devices_removed: int = 0
    devices_reappeared: int = 0
    customers_added: int = 0
    customers_removed: int = 0
    api_requests: int = 0
    retries: int = 0
    unknown_fields: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    listings: list[ListingResult] = field(default_factory=list)
    identifiers_looked_up: int = 0
    identifiers_found: int = 0
    error: str | None = None
    preview: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the run succeeded."""
        return self.status == "succeeded"

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        data["duration_s"] = self.duration_s
        data["listings_complete"] = sum(1 for item in self.listings if item.complete)
        return data


@dataclass
class Progress:
    """Live counters a caller may display; updated by the sync's main thread."""

    customers_total: int = 0
    customers_done: int = 0
    listings_total: int = 0
    listings_done: int = 0
    devices_expected: int = 0
    devices_seen: int = 0
    api_requests: int = 0
    retries: int = 0
    phase: str = "starting"


@dataclass
class _Task:
    listing: ListingResult
    identifier: dict[str, str] | None = None
    line: int = 0
    expected_pages: float = math.inf  # unknown: start it early and learn its totalSize


@dataclass
class _Chain:
    """A listing's pages in progress: at most one request of a chain is in flight."""

    task: _Task
    order: int  # its place in the plan: the tie-break between equal chains
    pages: Iterator[Page] | None = None  # opened by the first slot that takes it
    seen: int = 0  # items fetched so far


class _Chains:
    """The listings' page chains, handed to request slots one page at a time.

    A slot takes the chain with the most pages left, fetches one page, and gives the chain
    back: a long chain never waits behind a short one, and no slot idles while any chain can
    move. After a chain's page, what it has left is counted from ``totalSize`` (a server
    that omits it leaves the chain one page from its end, as far as the order goes). A chain
    nobody has started counts ``_Task.expected_pages``: from the snapshot on a re-sync; on a
    first sync, unknown, so it counts the mean length of the chains started so far (and goes
    first before any is known). The first page of each chain then tells its length, and a
    long one keeps going while the others start.

    Simulated on first syncs of skewed fleets (8 slots), the run ends within 0-8 % of its
    longest chain, where taking whole listings in plan order ended up to 41 % after it.
    """

    def __init__(
        self, tasks: list[_Task], open_pages: Callable[[_Task], Iterator[Page]], limit: int
    ) -> None:
        self._limit = max(1, limit)
        self._open = open_pages
        # (-pages left, order, chain): a min-heap, so the most pages left comes first
        self._ready: list[tuple[float, int, _Chain]] = []
        self._fresh: collections.deque[_Chain] = collections.deque()  # unstarted, length unknown
        for n, task in enumerate(tasks):
            if math.isinf(task.expected_pages):
                self._fresh.append(_Chain(task, n))
            else:
                self._ready.append((-task.expected_pages, n, _Chain(task, n)))
        heapq.heapify(self._ready)
        self._lengths = [0, 0]  # pages and chains whose length the first page told
        self._unfinished = len(tasks)
        self._cond = threading.Condition()

    def take(self, aborted: threading.Event) -> _Chain | None:
        """The chain with the most pages left; None when every chain has ended."""
        with self._cond:
            while not self._ready and not self._fresh:
                if self._unfinished == 0 or aborted.is_set():
                    return None
                self._cond.wait(0.1)  # chains in flight come back, or end
            pages, chains = self._lengths
            mean = pages / chains if chains else math.inf
            if self._fresh and (not self._ready or mean >= -self._ready[0][0]):
                chain = self._fresh.popleft()
            else:
                chain = heapq.heappop(self._ready)[2]
        return chain

    def next_page(self, chain: _Chain) -> Page:
        """Fetch the chain's next page (the one request of this chain in flight)."""
        if chain.pages is None:  # opening the generator sends nothing; its first next() does
            chain.pages = self._open(chain.task)
        return next(chain.pages)

    def give_back(self, chain: _Chain, page: Page) -> None:
        """Return a chain after one of its pages, ranked by the pages it has left."""
        self._learn(chain, page)
        total = page.total_size
        left = math.ceil(max(0, total - chain.seen) / self._limit) if total else 1
        with self._cond:
            heapq.heappush(self._ready, (-max(1, left), chain.order, chain))
            self._cond.notify()

    def ended(self, chain: _Chain, page: Page | None) -> None:
        """A chain ended: with its last page, or with an error (``page`` None)."""
        if page is not None:
            self._learn(chain, page)
        with self._cond:
            self._unfinished -= 1
            self._cond.notify_all()

    def _learn(self, chain: _Chain, page: Page) -> None:
        """Count the chain's items; its first page's ``totalSize`` tells its length."""
        if chain.seen == 0 and page.total_size:
            with self._cond:
                self._lengths[0] += max(1, math.ceil(page.total_size / self._limit))
                self._lengths[1] += 1
        chain.seen += len(page.items)


def run_sync(
    settings: Settings,
    *,
    trigger: str = "manual",
    dry_run: bool = False,
    allow_mass_removal: bool = False,
    customers: list[int] | None = None,
    identifiers_file: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] | None = None,
) -> SyncResult:
    """Run one sync of ``settings`` into its database.

    Args:
        settings: validated settings.
        trigger: ``manual`` or ``schedule``, recorded in ``sync_runs``.
        dry_run: fetch and report what would change; apply nothing.
        allow_mass_removal: apply even when more than ``sync.max_removed_fraction`` would go.
        customers: list only these customer ids (default: ``sync.customers``, else all).
        identifiers_file: CSV of identifiers to look up (default: ``sync.identifiers_file``).
        on_progress: called with live counters after every page.
        transport: an httpx transport (the in-process emulator in tests).
        sleep: how to wait between retries.
        should_stop: polled; True abandons the run with nothing applied.

    Returns:
        The run's result; API and listing failures end as ``failed`` or ``partial``.

    Raises:
        ConfigError: settings or the identifiers file are unusable (nothing was fetched).
        SchemaMismatchError: the database is not at the newest schema.
        LockedError: another run holds the database's writer lock.
    """
    require_for_sync(settings)
    ident_path = settings.sync.identifiers_file if identifiers_file is None else identifiers_file
    identifiers = read_identifiers(ident_path) if ident_path else []
    try:
        credentials = load_credentials(settings.auth.credentials)
    except AuthError as exc:  # an unusable key file is bad configuration: nothing ran
        raise ConfigError(str(exc)) from None
    engine = make_engine(settings.database.url)
    try:
        check_revision(engine)
        with WriterLock(engine):
            run = _Run(
                settings,
                engine,
                trigger=trigger,
                dry_run=dry_run,
                allow_mass_removal=allow_mass_removal,
                customers=list(customers) if customers else list(settings.sync.customers),
                identifiers=identifiers,
                credentials=credentials,
                on_progress=on_progress,
                transport=transport,
                sleep=sleep,
                should_stop=should_stop,
            )
            return run.execute()
    finally:
        engine.dispose()


class _Run:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        trigger: str,
        dry_run: bool,
        allow_mass_removal: bool,
        customers: list[int],
        identifiers: list[tuple[int, dict[str, str]]],
        credentials: Credentials | None,
        on_progress: Callable[[Progress], None] | None,
        transport: httpx.BaseTransport | None,
        sleep: Callable[[float], None],
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.dry_run = dry_run
        self.allow_mass_removal = allow_mass_removal
        self.subset = customers
        self.identifiers = identifiers
        self.credentials = credentials
        self.on_progress = on_progress
        self.transport = transport
        self.sleep = sleep
        self.external_stop = should_stop
        self.partner_id = settings.partner.id or 0
        self.aborted = threading.Event()
        self.counters = Counters()
        self.progress = Progress()
        self.unknown: Counter[str] = Counter()
        self.lookups: list[dict[str, Any]] = []
        self.identifiers_complete = True
        self.result = SyncResult(
            run_id=None, status="running", trigger=trigger, dry_run=dry_run,
            started_at=datetime.now(UTC),
        )  # fmt: skip

    # --- lifecycle -------------------------------------------------------------------------

    def execute(self) -> SyncResult:
        run_id = 0 if self.dry_run else self._open_run()
        self.result.run_id = run_id or None
        staging.clear(self.engine)
        try:
            self._fetch_and_stage(run_id)
            self._finish(run_id)
        except (ApiError, ListingError, MassRemovalError, CancelledError) as exc:
            self._fail(run_id, str(exc))
        except BaseException as exc:
            self._fail(run_id, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.aborted.set()
        return self.result

    def stopping(self) -> bool:
        if self.aborted.is_set():
            return True
        if self.external_stop is not None and self.external_stop():
            self.aborted.set()
            return True
        return False

    def _open_run(self) -> int:
        now = self.result.started_at
        with self.engine.begin() as conn:
            # A run that died (SIGKILL, power loss) left its row "running": close it.
            conn.execute(
                update(SyncRun)
                .where(SyncRun.status == "running")
                .values(status="failed", finished_at=now, error="abandoned: the process ended")
            )
            row = conn.execute(
                insert(SyncRun)
                .values(
                    started_at=now,
                    status="running",
                    trigger=self.result.trigger,
                    partner_id=self.partner_id,
                    dry_run=False,
                )  # fmt: skip
                .returning(SyncRun.run_id)
            )
            return int(row.scalar_one())

    def _fail(self, run_id: int, message: str) -> None:
        log.error("sync failed: %s", message)
        self.result.status = "failed"
        self.result.error = message
        self.result.finished_at = datetime.now(UTC)
        self._collect_counters()
        try:
            staging.clear(self.engine, run_id)
            if not self.dry_run:
                with self.engine.begin() as conn:
                    self._record_run(conn, run_id)
        except Exception:  # the original failure is what the user needs to see
            log.exception("could not record the failed run")

    def _collect_counters(self) -> None:
        self.result.api_requests = self.counters.requests
        self.result.retries = self.counters.retries
        self.result.unknown_fields = dict(self.unknown)

    def _notify(self, phase: str | None = None) -> None:
        if phase is not None:
            self.progress.phase = phase
        self.progress.api_requests = self.counters.requests
        self.progress.retries = self.counters.retries
        if self.on_progress is not None:
            self.on_progress(self.progress)

    # --- fetching ----------------------------------------------------------------------------

    def _fetch_and_stage(self, run_id: int) -> None:
        api = self.settings.api
        token_client = build_client(
            api.endpoint, timeout_s=api.timeout_s, concurrency=1, transport=self.transport
        )
        try:
            creds = self.credentials
            auth = None if creds is None else GoogleAuth(creds, token_client)
            client = build_client(
                api.endpoint,
                timeout_s=api.timeout_s,
                concurrency=api.concurrency,
                auth=auth,
                transport=self.transport,
            )
            with client:
                limiter = RequestLimiter(
                    api.quota_per_100s, api.quota_window_s, api.concurrency, sleep=self.sleep
                )
                sender = ApiTransport(
                    client, limiter, max_retries=api.max_retries, sleep=self.sleep,
                    counters=self.counters, should_stop=self.stopping,
                )  # fmt: skip
                zt = ZeroTouchClient(sender, self.partner_id)
                owners, extra_workspaces = self._stage_customers(zt, run_id)
                tasks = self._plan(owners, extra_workspaces)
                with _short_gil_slices():
                    self._run_tasks(zt, run_id, tasks)
        finally:
            token_client.close()

    def _stage_customers(
        self, zt: ZeroTouchClient, run_id: int
    ) -> tuple[list[tuple[int, str | None]], list[str]]:
        """Stage ``customers.list``; return the (company, Workspace id) pairs to list, and the
        configured Workspace ids that belong to no listed customer."""
        self._notify("customers")
        companies: list[int] = []
        workspaces: dict[int, str] = {}
        counted, total = 0, None
        for page in zt.iter_customer_pages():
            rows = []
            for item in page.items:
                try:
                    row, unknown = to_customer_row(item, self.partner_id)
                except BadRecordError as exc:
                    raise ListingError(f"customers.list: {exc}") from None
                self.unknown.update(unknown)
                rows.append(row)
                companies.append(row["company_id"])
                if row["google_workspace_customer_id"]:
                    workspaces[row["company_id"]] = row["google_workspace_customer_id"]
            counted += len(page.items)
            total = page.total_size
            staging.stage_customers(self.engine, run_id, rows)
            self.progress.customers_total = total or counted
            self.progress.customers_done = counted
            self._notify()
            if self.stopping():
                raise CancelledError("cancelled")
        if counted != (total or 0):
            raise ListingError(
                f"customers.list returned {counted} customers but totalSize said {total or 0}; "
                "the customer list is incomplete, so nothing was applied"
            )
        self.result.customers_seen = counted
        # Chrome OS devices may be claimed for a Workspace account that is no zero-touch
        # customer of the reseller: sync.google_workspace_customer_ids names those.
        chosen = companies
        if self.subset:
            known = set(companies)
            for missing in (c for c in self.subset if c not in known):
                self._warn(f"customer {missing} is not in customers.list; listed anyway")
            chosen = list(self.subset)
        owners = [(c, workspaces.get(c)) for c in chosen]
        own = {w for _, w in owners if w}
        extra = [w for w in self.settings.sync.google_workspace_customer_ids if w not in own]
        return owners, extra

    def _plan(self, owners: list[tuple[int, str | None]], extra: list[str]) -> list[_Task]:
        """Pack customers into listings: few calls, and enough listings to keep workers busy.

        A listing asks for its customers' ids and their Workspace accounts together (the API
        returns devices matching either), so a Chrome OS device claimed with both is fetched
        once. Each listing wastes at most its last, partly filled page; :func:`listing_chunks`
        decides how many listings there are and how many owners each names.
        """
        concurrency = self.settings.api.concurrency
        # What the snapshot holds per owner plans the listings (nothing on a first sync).
        by_company, by_space = merge.devices_per_owner(
            self.engine, self.settings.sync.section_types
        )

        def devices(owner: tuple[int | None, str | None]) -> int:
            company, space = owner
            known = by_company.get(company, 0) if company is not None else 0
            return known + (by_space.get(space, 0) if space else 0)

        # (companies, Workspace ids, devices the snapshot expects) of each listing
        groups: list[tuple[list[int], list[str], int]] = []
        for chunk in listing_chunks(owners, concurrency, [devices(o) for o in owners]):
            listed = list(dict.fromkeys(w for _, w in chunk if w))
            groups.append(([c for c, _ in chunk], listed, sum(map(devices, chunk))))
        spaces_only: list[tuple[int | None, str | None]] = [(None, w) for w in extra]
        for part in listing_chunks(spaces_only, concurrency, [devices(o) for o in spaces_only]):
            groups.append(([], [w for _, w in part if w], sum(map(devices, part))))
        limit = max(1, self.settings.api.page_size)
        tasks = [
            _Task(
                ListingResult(
                    listing_id=number,
                    kind="find_by_owner",
                    section_type=section,
                    company_ids=companies,
                    google_workspace_customer_ids=spaces,
                ),
                # a listing of owners the snapshot does not know is started early, to learn
                expected_pages=math.ceil(devices / limit) if devices else math.inf,
            )
            for number, (section, (companies, spaces, devices)) in enumerate(
                ((sec, g) for sec in self.settings.sync.section_types for g in groups), start=1
            )
        ]
        self.result.listings = [t.listing for t in tasks]
        if self.identifiers:
            lookup = ListingResult(
                listing_id=staging.IDENTIFIER_LISTING,
                kind="find_by_identifier",
                section_type=None,
                company_ids=[],
                google_workspace_customer_ids=[],
            )
            self.result.listings.append(lookup)
            # one identifier is one short lookup: they fill the slots the listings leave
            tasks += [
                _Task(lookup, identifier, line, expected_pages=1.0)
                for line, identifier in self.identifiers
            ]
        return tasks

    def _pages(self, zt: ZeroTouchClient, task: _Task) -> Iterator[Page]:
        limit = self.settings.api.page_size
        if task.identifier is not None:
            return zt.iter_find_by_identifier_pages(task.identifier, limit=limit)
        listing = task.listing
        assert listing.section_type is not None
        return zt.iter_find_by_owner_pages(
            listing.section_type,
            customer_ids=listing.company_ids,
            workspace_ids=listing.google_workspace_customer_ids,
            limit=limit,
        )

    def _run_tasks(self, zt: ZeroTouchClient, run_id: int, tasks: list[_Task]) -> None:
        self.progress.listings_total = sum(1 for t in tasks if t.identifier is None)
        self._notify("devices")
        workers = max(1, min(self.settings.api.concurrency, len(tasks)))
        inbox: queue.Queue[tuple[str, _Task, Any]] = queue.Queue(workers * QUEUE_PAGES_PER_WORKER)
        chains = _Chains(tasks, lambda task: self._pages(zt, task), self.settings.api.page_size)

        def put(item: tuple[str, _Task, Any]) -> bool:
            while not self.aborted.is_set():
                try:
                    inbox.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            while not self.aborted.is_set():
                chain = chains.take(self.aborted)
                if chain is None:
                    return
                try:
                    page = chains.next_page(chain)
                except Exception as exc:  # reported to the main thread, which decides
                    chains.ended(chain, None)
                    put(("error", chain.task, exc))
                    continue
                if not put(("page", chain.task, page)):
                    return
                if page.next_token is None:  # iter_pages ends with the page without a token
                    chains.ended(chain, page)
                    put(("done", chain.task, None))
                else:
                    chains.give_back(chain, page)

        threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        stager = staging.Stager(self.engine, run_id)
        remaining = len(tasks)
        lookups: dict[int, dict[str, Any]] = {}
        try:
            while remaining:
                if self.stopping():
                    raise CancelledError("cancelled")
                try:
                    kind, task, payload = inbox.get(timeout=0.2)
                except queue.Empty:
                    continue
                if kind == "page":
                    self._take_page(stager, task, payload, lookups)
                    continue
                remaining -= 1
                if kind == "error":
                    self._task_failed(task, payload, lookups)
                else:
                    self._task_done(task, lookups)
            stager.flush()
        finally:
            self.aborted.set()
            for thread in threads:
                thread.join(timeout=5)
        self._collect_counters()

    def _take_page(
        self, stager: staging.Stager, task: _Task, page: Page, lookups: dict[int, dict[str, Any]]
    ) -> None:
        listing = task.listing
        rows: list[DeviceRows] = []
        for item in page.items:
            try:
                rows.append(to_device_rows(item, self.partner_id))
            except BadRecordError as exc:
                listing.error = listing.error or f"bad device record: {exc}"
                self._warn(f"listing {listing.listing_id}: {exc}")
        for r in rows:
            self.unknown.update(r.unknown_fields)
            for message in r.warnings:
                self._warn(message)
        stager.add_page(listing.listing_id, rows)
        listing.api_requests += 1
        if task.identifier is None:
            if listing.total_size is None and page.total_size:
                self.progress.devices_expected += page.total_size
            listing.total_size = page.total_size
            listing.devices_seen += len(page.items)
            self.progress.devices_seen += len(page.items)
        else:
            found = lookups.setdefault(task.line, {"ids": [], "matches": 0})
            found["matches"] += len(rows)
            found["ids"].extend(r.device["device_id"] for r in rows[:1])
            listing.devices_seen += len(rows)
        self._notify()

    def _task_done(self, task: _Task, lookups: dict[int, dict[str, Any]]) -> None:
        listing = task.listing
        if task.identifier is not None:
            self._record_lookup(task, lookups.pop(task.line, None), None)
            return
        counted, total = listing.devices_seen, listing.total_size or 0
        if listing.error is None and counted != total:
            listing.error = f"counted {counted} devices but totalSize said {total}"
        listing.complete = listing.error is None
        if not listing.complete:
            self._warn(f"listing {listing.listing_id} is incomplete: {listing.error}")
        self.progress.listings_done += 1
        self._notify()

    def _task_failed(self, task: _Task, exc: Exception, lookups: dict[int, dict[str, Any]]) -> None:
        listing = task.listing
        if isinstance(exc, ListingError):
            listing.error = str(exc)
            self._warn(f"listing {listing.listing_id} is incomplete: {exc}")
            self.progress.listings_done += 1
            return
        if task.identifier is not None and isinstance(exc, ApiError) and exc.status == 400:
            # One identifier the API rejects (e.g. a malformed IMEI) is that row's problem.
            self.identifiers_complete = False
            self._record_lookup(task, lookups.pop(task.line, None), str(exc))
            return
        if isinstance(exc, ApiError | CancelledError):
            raise exc
        raise ListingError(f"listing {listing.listing_id} failed: {type(exc).__name__}: {exc}")

    def _record_lookup(self, task: _Task, found: dict[str, Any] | None, error: str | None) -> None:
        ident = task.identifier or {}
        matches = found["matches"] if found else 0
        self.lookups.append(
            {
                "line_number": task.line,
                "imei": ident.get("imei"),
                "meid": ident.get("meid"),
                "serial_number": ident.get("serialNumber"),
                "manufacturer": ident.get("manufacturer"),
                "model": ident.get("model"),
                "device_type": ident.get("deviceType"),
                "chrome_os_attested_device_id": ident.get("chromeOsAttestedDeviceId"),
                "found": matches > 0,
                "device_id": found["ids"][0] if found and found["ids"] else None,
                "matches": matches,
                "error": error,
            }
        )

    def _warn(self, message: str) -> None:
        if len(self.result.warnings) < MAX_WARNINGS_KEPT:
            self.result.warnings.append(message)
            log.warning("%s", message)

    # --- applying ----------------------------------------------------------------------------

    def _finish(self, run_id: int) -> None:
        owner_listings = [x for x in self.result.listings if x.kind == "find_by_owner"]
        coverage = [
            {
                "run_id": run_id,
                "section_type": x.section_type,
                "owner_kind": kind,
                "owner_key": str(key),
                "complete": x.complete,
            }
            for x in owner_listings
            for kind, keys in (
                ("company", x.company_ids),
                ("workspace", x.google_workspace_customer_ids),
            )
            for key in keys
        ]
        staging.stage_coverage(self.engine, coverage)
        for x in self.result.listings:
            if x.kind == "find_by_identifier":
                x.complete = self.identifiers_complete
                x.error = None if x.complete else "some identifier lookups failed"
        incomplete = [x.listing_id for x in owner_listings if not x.complete]
        staging.mark_incomplete(self.engine, run_id, incomplete)
        sections = self.settings.sync.section_types
        staged = merge.staged_per_listing(self.engine, run_id)
        for x in owner_listings:
            repeated = x.devices_seen - staged.get(x.listing_id, 0)
            if repeated > 0:
                self._warn(
                    f"listing {x.listing_id} returned {repeated} device(s) more than once; "
                    "each is stored once"
                )
        # A device can come back from two listings: claims in two sections, a company and a
        # Workspace listing, an identifier lookup, or a device that moved while we paged.
        if merge.has_cross_listing_duplicates(self.engine, run_id):
            staging.deduplicate(self.engine, run_id)
        self._notify("merging")
        staging.refresh_statistics(self.engine)
        merge.stage_removals(
            self.engine, run_id, sections,
            every_customer=not self.subset, identifiers_complete=self.identifiers_complete,
        )  # fmt: skip
        counts = merge.change_counts(self.engine, run_id)
        self.result.devices_added = counts.get("added", 0)
        self.result.devices_changed = counts.get("changed", 0)
        self.result.devices_reappeared = counts.get("reappeared", 0)
        self.result.devices_removed = counts.get("removed", 0)
        self.result.devices_seen = sum(
            v for k, v in counts.items() if k in ("added", "changed", "reappeared", "same")
        )
        added, removed = merge.customer_changes(self.engine, run_id)
        self.result.customers_added, self.result.customers_removed = added, removed
        self._guard_mass_removal()
        if self.unknown:
            log.warning(
                "the API sent fields this version does not know (kept in raw): %s",
                ", ".join(f"{k} x{v}" for k, v in sorted(self.unknown.items())),
            )
        partial = any(not x.complete for x in self.result.listings)
        self.result.status = "partial" if partial else "succeeded"
        self.result.finished_at = datetime.now(UTC)
        self._collect_counters()
        if self.dry_run:
            self.result.preview = merge.preview(self.engine, run_id, PREVIEW_ROWS)
            staging.clear(self.engine, run_id)
            return
        with self.engine.begin() as conn:
            merge.apply(conn, run_id, self.result.finished_at, counts)
            if self.lookups:
                now = self.result.finished_at
                conn.execute(
                    insert(IdentifierLookup),
                    [dict(x, run_id=run_id, looked_up_at=now) for x in self.lookups],
                )
            self._record_run(conn, run_id)
        self.result.identifiers_looked_up = len(self.lookups)
        self.result.identifiers_found = sum(1 for x in self.lookups if x["found"])
        staging.clear(self.engine, run_id)
        self._notify("done")

    def _guard_mass_removal(self) -> None:
        removed = self.result.devices_removed
        if not removed or self.allow_mass_removal:
            return
        fleet = merge.current_fleet_size(self.engine)
        limit = self.settings.sync.max_removed_fraction
        if fleet and removed / fleet > limit:
            raise MassRemovalError(
                f"this run would mark {removed} of {fleet} devices removed "
                f"({removed / fleet:.0%}), more than sync.max_removed_fraction = {limit:g}; "
                "nothing was applied. If the removals are real, run "
                "`zt-inventory sync --allow-mass-removal`"
            )

    def _record_run(self, conn: Any, run_id: int) -> None:
        r = self.result
        conn.execute(
            update(SyncRun)
            .where(SyncRun.run_id == run_id)
            .values(
                finished_at=r.finished_at,
                status=r.status,
                customers_seen=r.customers_seen,
                devices_seen=r.devices_seen,
                devices_added=r.devices_added if r.status != "failed" else 0,
                devices_changed=r.devices_changed if r.status != "failed" else 0,
                devices_removed=r.devices_removed if r.status != "failed" else 0,
                devices_reappeared=r.devices_reappeared if r.status != "failed" else 0,
                api_requests=r.api_requests,
                retries=r.retries,
                unknown_fields=dict(self.unknown) or None,
                warnings=r.warnings or None,
                error=r.error,
            )
        )
        if r.listings:
            conn.execute(
                insert(SyncListing),
                [
                    {
                        "run_id": run_id,
                        "kind": x.kind,
                        "section_type": x.section_type,
                        "company_ids": x.company_ids,
                        "google_workspace_customer_ids": x.google_workspace_customer_ids,
                        "total_size": x.total_size,
                        "devices_seen": x.devices_seen,
                        "api_requests": x.api_requests,
                        "complete": x.complete,
                        "error": x.error,
                    }
                    for x in r.listings
                ],
            )

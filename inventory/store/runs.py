"""How a run is recorded: the ``sync_runs`` and ``sync_listings`` rows, written and read here only.

A run opens its ``sync_runs`` row as ``running`` (closing any row a killed process left
``running``), and records its outcome and its listings when it ends: in the merge transaction
when it applied something, on its own when it failed. ``status``, the scheduler and the
Prometheus metrics read runs through the functions below, so they agree on what "the last
good run" is, and on how fresh the fleet is: only a succeeded ``full`` run (``RunScope``) counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from inventory.errors import InventoryError
from inventory.models import SyncListing, SyncRun, SyncRunPartner

ABANDONED = "abandoned: the process ended"


class RunStatus(StrEnum):
    """``sync_runs.status``."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"  # stopped (SIGINT, SIGTERM): nothing applied


class Trigger(StrEnum):
    """``sync_runs.trigger``: who started the run."""

    MANUAL = "manual"
    SCHEDULE = "schedule"


class RunScope(StrEnum):
    """``sync_runs.scope``: what a run listed. Only ``full`` runs tell how fresh the fleet is."""

    FULL = "full"  # every customer customers.list returned, plus the configured Workspace ids
    CUSTOMERS = "customers"  # --customer / sync.customers: ids in sync_runs.scope_customer_ids
    PARTNERS = "partners"  # --partner: every customer of some of the configured partners
    IDENTIFIERS = "identifiers"  # identifier lookups only (a reconcile run)


def scope_of(customers: list[int]) -> tuple[RunScope, list[int] | None]:
    """A run's scope and ``scope_customer_ids`` from the customers it lists (empty: all)."""
    if customers:
        return RunScope.CUSTOMERS, sorted(set(customers))
    return RunScope.FULL, None


class ListingKind(StrEnum):
    """``sync_listings.kind``."""

    FIND_BY_OWNER = "find_by_owner"
    FIND_BY_IDENTIFIER = "find_by_identifier"


# a run that applied what it fetched: its snapshot is what readers see
APPLIED = (RunStatus.SUCCEEDED, RunStatus.PARTIAL)


@dataclass
class ListingResult:
    """One listing of a run: what it asked, what it got, whether it arrived whole."""

    listing_id: int
    kind: ListingKind
    section_type: str | None
    company_ids: list[int]
    google_workspace_customer_ids: list[str]
    total_size: int | None = None
    devices_seen: int = 0
    api_requests: int = 0
    complete: bool = False
    error: str | None = None
    partner_id: int = 0  # the partner whose listing it is


@dataclass
class PartnerResult:
    """How one partner of a run went (``sync_run_partners``)."""

    partner_id: int
    status: RunStatus = RunStatus.RUNNING
    customers_seen: int = 0
    devices_seen: int = 0
    error: str | None = None


@dataclass
class SyncResult:
    """What a run did: its ``sync_runs`` row, its listings, and what the caller may show."""

    run_id: int | None
    status: RunStatus
    trigger: Trigger
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None = None
    scope: RunScope = RunScope.FULL
    scope_customer_ids: list[int] | None = None
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
    partners: list[PartnerResult] = field(default_factory=list)
    identifiers_looked_up: int = 0
    identifiers_found: int = 0
    error: str | None = None
    # a dry run's first changes: up to ``preview_limit`` of each kind as the run collects
    # them; the CLI shows at most ``preview_limit`` in all
    preview: list[dict[str, Any]] = field(default_factory=list)
    preview_limit: int = 20
    # why a failed run failed, as the exception (a CancelledError when it was stopped)
    failure: InventoryError | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the run succeeded."""
        return self.status == RunStatus.SUCCEEDED

    @property
    def fleet_fresh(self) -> bool:
        """True when this full run applied every listing of the fleet whole: what tells how
        fresh the fleet is (a run partial only for an identifiers row or a removal it could
        not check counts; see :func:`last_full_success`)."""
        return (
            self.status in APPLIED
            and self.scope == RunScope.FULL
            and not self.dry_run
            and all(x.complete for x in self.listings if x.kind == ListingKind.FIND_BY_OWNER)
            and all(p.status != RunStatus.FAILED for p in self.partners)
        )

    @property
    def partners_fresh(self) -> list[int]:
        """The partners this run brought whole: every listing of theirs complete, in an applied
        ``full`` or ``partners`` run (see :func:`last_full_per_partner`)."""
        if self.status not in APPLIED or self.dry_run:
            return []
        if self.scope not in (RunScope.FULL, RunScope.PARTNERS):
            return []
        broken = {
            x.partner_id
            for x in self.listings
            if x.kind == ListingKind.FIND_BY_OWNER and not x.complete
        }
        return [
            p.partner_id
            for p in self.partners
            if p.status != RunStatus.FAILED and p.partner_id not in broken
        ]

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        data = asdict(self)
        data.pop("failure")
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        data["duration_s"] = self.duration_s
        data["listings_complete"] = sum(1 for item in self.listings if item.complete)
        data["preview_capped"] = self.dry_run and len(self.preview) < self.changes
        return data

    @property
    def changes(self) -> int:
        """Devices added, changed, reappeared and removed: what a dry run would apply."""
        return (
            self.devices_added + self.devices_changed + self.devices_reappeared
            + self.devices_removed
        )  # fmt: skip


def open_run(engine: Engine, result: SyncResult, partner_id: int) -> int:
    """Insert the run's ``running`` row and return its id.

    A run that died (SIGKILL, power loss) left its row ``running``; the writer lock says no
    other run is going, so any such row is closed as failed first.
    """
    with engine.begin() as conn:
        conn.execute(
            update(SyncRun)
            .where(SyncRun.status == RunStatus.RUNNING)
            .values(status=RunStatus.FAILED, finished_at=result.started_at, error=ABANDONED)
        )
        row = conn.execute(
            insert(SyncRun)
            .values(
                started_at=result.started_at,
                status=RunStatus.RUNNING,
                trigger=result.trigger,
                partner_id=partner_id,
                dry_run=False,
                scope=result.scope,
                scope_customer_ids=result.scope_customer_ids,
            )
            .returning(SyncRun.run_id)
        )
        return int(row.scalar_one())


def record_progress(conn: Connection, run_id: int, progress: dict[str, Any]) -> None:
    """Write a running run's live counters to its row (in a transaction of its own)."""
    with conn.begin():
        conn.execute(
            update(SyncRun)
            .where(SyncRun.run_id == run_id)
            .values(
                progress=progress,
                devices_seen=progress.get("devices_seen", 0),
                api_requests=progress.get("api_requests", 0),
                retries=progress.get("retries", 0),
            )
        )


def record_run(conn: Connection, result: SyncResult) -> None:
    """Write the run's outcome and its listings (inside the caller's transaction)."""
    r = result
    applied = r.status in APPLIED
    conn.execute(
        update(SyncRun)
        .where(SyncRun.run_id == r.run_id)
        .values(
            finished_at=r.finished_at,
            status=r.status,
            customers_seen=r.customers_seen,
            devices_seen=r.devices_seen,
            devices_added=r.devices_added if applied else 0,
            devices_changed=r.devices_changed if applied else 0,
            devices_removed=r.devices_removed if applied else 0,
            devices_reappeared=r.devices_reappeared if applied else 0,
            api_requests=r.api_requests,
            retries=r.retries,
            unknown_fields=r.unknown_fields or None,
            warnings=r.warnings or None,
            error=r.error,
            progress=None,
        )
    )
    if r.listings:
        conn.execute(
            insert(SyncListing),
            [
                {
                    "run_id": r.run_id,
                    "partner_id": x.partner_id or None,
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
    if r.partners:
        conn.execute(
            insert(SyncRunPartner),
            [
                {
                    "run_id": r.run_id,
                    "partner_id": p.partner_id,
                    "status": p.status,
                    "customers_seen": p.customers_seen,
                    "devices_seen": p.devices_seen,
                    "error": p.error,
                }
                for p in r.partners
            ],
        )


def stamp_finished(conn: Connection, run_id: int, finished_at: datetime) -> None:
    """Set when a run ended, once its commit and cleanup are done (the caller's transaction)."""
    conn.execute(update(SyncRun).where(SyncRun.run_id == run_id).values(finished_at=finished_at))


# --- reading -----------------------------------------------------------------------------------

_RUN_FIELDS = (
    "run_id", "trigger", "scope", "scope_customer_ids", "status", "started_at", "finished_at",
    "devices_seen",
    "devices_added", "devices_changed", "devices_removed", "devices_reappeared",
    "api_requests", "retries", "error", "progress",
)  # fmt: skip
_LISTING_FIELDS = (
    "listing_id", "kind", "section_type", "company_ids", "google_workspace_customer_ids",
    "total_size", "devices_seen", "complete", "error",
)  # fmt: skip


def recent_runs(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` runs, newest first, with their ``duration_s``."""
    cols = SyncRun.__table__.c
    query = select(*(cols[f] for f in _RUN_FIELDS)).order_by(cols.run_id.desc()).limit(limit)
    runs = [dict(row._mapping) for row in conn.execute(query)]
    for run in runs:
        start, end = run["started_at"], run["finished_at"]
        run["duration_s"] = (end - start).total_seconds() if start and end else None
    return runs


def listings_of(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """The listings of one run, in listing order."""
    cols = SyncListing.__table__.c
    query = (
        select(*(cols[f] for f in _LISTING_FIELDS))
        .where(cols.run_id == run_id)
        .order_by(cols.listing_id)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def last_applied_run(conn: Connection) -> dict[str, Any] | None:
    """The newest run whose snapshot readers see (succeeded or partial), or None.

    An ``identifiers`` run (``zt-inventory reconcile``) records lookups and applies nothing
    to the snapshot: it is never this run.
    """
    cols = SyncRun.__table__.c
    row = conn.execute(
        select(cols.run_id, cols.finished_at, cols.status, cols.scope)
        .where(cols.status.in_(APPLIED), cols.scope != RunScope.IDENTIFIERS)
        .order_by(cols.run_id.desc())
        .limit(1)
    ).first()
    return None if row is None else dict(row._mapping)


def last_full_success(conn: Connection) -> dict[str, Any] | None:
    """The newest ``full`` run that brought every listing of the fleet in whole (``run_id``,
    ``finished_at``), or None.

    This is how fresh the fleet is: a ``customers`` run brings a few customers up to date and
    says nothing of the rest, and a run with an incomplete listing left some customers as they
    were. A run that is partial for another reason (a malformed row of the identifiers file,
    a removal it could not check) still brought the whole fleet: it counts.
    """
    cols, listings = SyncRun.__table__.c, SyncListing.__table__.c
    partners = SyncRunPartner.__table__.c
    broken = (
        select(listings.listing_id)
        .where(listings.run_id == cols.run_id)
        .where(listings.kind == ListingKind.FIND_BY_OWNER, listings.complete.is_(False))
    )
    failed = select(partners.partner_id).where(
        partners.run_id == cols.run_id, partners.status == RunStatus.FAILED
    )
    row = conn.execute(
        select(cols.run_id, cols.finished_at)
        .where(cols.status.in_(APPLIED), cols.scope == RunScope.FULL)
        .where(cols.finished_at.is_not(None), ~broken.exists(), ~failed.exists())
        .order_by(cols.run_id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return {"run_id": row.run_id, "finished_at": row.finished_at.astimezone(UTC)}


def partners_synced(conn: Connection) -> list[int]:
    """Every partner a run has synced (or tried to), by id."""
    partners = SyncRunPartner.__table__.c
    query = select(partners.partner_id).distinct().order_by(partners.partner_id)
    return [int(r[0]) for r in conn.execute(query)]


def last_full_per_partner(conn: Connection) -> dict[int, dict[str, Any]]:
    """{partner id: its newest run (``run_id``, ``finished_at``) that brought every listing of
    that partner in whole}, for each partner any applied run synced.

    A ``full`` run counts for each partner that did not fail in it, and so does a
    ``partners`` run (``sync --partner``) for the partners it synced.
    """
    cols, listings = SyncRun.__table__.c, SyncListing.__table__.c
    partners = SyncRunPartner.__table__.c
    broken = (
        select(listings.listing_id)
        .where(listings.run_id == partners.run_id, listings.partner_id == partners.partner_id)
        .where(listings.kind == ListingKind.FIND_BY_OWNER, listings.complete.is_(False))
    )
    rows = conn.execute(
        select(partners.partner_id, cols.run_id, cols.finished_at)
        .join(SyncRun.__table__, cols.run_id == partners.run_id)
        .where(cols.status.in_(APPLIED), cols.scope.in_([RunScope.FULL, RunScope.PARTNERS]))
        .where(cols.finished_at.is_not(None), partners.status != RunStatus.FAILED)
        .where(~broken.exists())
        .order_by(partners.partner_id, cols.run_id.desc())
    )
    newest: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row.partner_id not in newest:
            newest[int(row.partner_id)] = {
                "run_id": row.run_id,
                "finished_at": row.finished_at.astimezone(UTC),
            }
    return newest

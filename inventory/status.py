"""What ``zt-inventory status`` reports, as plain data: runs, listings, the snapshot's age."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from inventory.models import Customer, Device, SyncListing, SyncRun


def collect_status(conn: Any, limit: int) -> dict[str, Any]:
    """Runs, the last run's listings and the snapshot's age, as plain data.

    Args:
        conn: an open SQLAlchemy connection.
        limit: how many runs, newest first.

    Returns:
        ``{"snapshot": …, "last_run_listings": …, "runs": […]}``, ready for JSON.
    """
    cols = SyncRun.__table__.c
    fields = [
        "run_id", "trigger", "status", "started_at", "finished_at", "devices_seen",
        "devices_added", "devices_changed", "devices_removed", "devices_reappeared",
        "api_requests", "retries", "error",
    ]  # fmt: skip
    query = select(*(cols[f] for f in fields)).order_by(cols.run_id.desc()).limit(limit)
    runs = [dict(row._mapping) for row in conn.execute(query)]
    for run in runs:
        start, end = run["started_at"], run["finished_at"]
        run["duration_s"] = (end - start).total_seconds() if start and end else None
    listings: dict[str, Any] = {}
    if runs:
        lc = SyncListing.__table__.c
        rows = conn.execute(
            select(
                lc.listing_id, lc.kind, lc.section_type, lc.company_ids,
                lc.google_workspace_customer_ids, lc.total_size, lc.devices_seen, lc.complete,
                lc.error,
            ).where(lc.run_id == runs[0]["run_id"]).order_by(lc.listing_id)
        ).all()  # fmt: skip
        incomplete = [dict(r._mapping) for r in rows if not r.complete]
        listings = {
            "run_id": runs[0]["run_id"],
            "total": len(rows),
            "complete": len(rows) - len(incomplete),
            "devices_seen": sum(r.devices_seen or 0 for r in rows if r.kind == "find_by_owner"),
            "total_size": sum(r.total_size or 0 for r in rows if r.kind == "find_by_owner"),
            "incomplete": incomplete,
        }
    last_good = conn.execute(
        select(cols.run_id, cols.finished_at, cols.status)
        .where(cols.status.in_(("succeeded", "partial")))
        .order_by(cols.run_id.desc())
        .limit(1)
    ).first()
    snapshot: dict[str, Any] = {
        "devices_current": conn.execute(
            select(func.count()).select_from(Device).where(Device.removed_at.is_(None))
        ).scalar_one(),
        "customers_current": conn.execute(
            select(func.count()).select_from(Customer).where(Customer.removed_at.is_(None))
        ).scalar_one(),
        "run_id": None,
        "finished_at": None,
        "age_s": None,
    }
    if last_good is not None and last_good.finished_at is not None:
        snapshot["run_id"] = last_good.run_id
        snapshot["status"] = last_good.status
        snapshot["finished_at"] = last_good.finished_at
        snapshot["age_s"] = (datetime.now(UTC) - last_good.finished_at).total_seconds()
    return {"snapshot": snapshot, "last_run_listings": listings, "runs": runs}


def humanize_age(seconds: float) -> str:
    """``3 min``, ``2 h 5 min``, ``4 days``."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours = int(minutes // 60)
    if hours < 48:
        return f"{hours} h {int(minutes % 60)} min"
    return f"{hours // 24} days"

"""What ``zt-inventory status`` reports, as plain data: runs, listings, the snapshot's age."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from inventory.store import runs, snapshot

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def collect_status(conn: Connection, limit: int) -> dict[str, Any]:
    """Runs, the last run's listings and the snapshot's age, as plain data.

    Args:
        conn: an open SQLAlchemy connection.
        limit: how many runs, newest first.

    Returns:
        ``{"snapshot": …, "last_run_listings": …, "runs": […]}``, ready for JSON.
    """
    recent = runs.recent_runs(conn, limit)
    listings: dict[str, Any] = {}
    if recent:
        rows = runs.listings_of(conn, recent[0]["run_id"])
        incomplete = [r for r in rows if not r["complete"]]
        owner_rows = [r for r in rows if r["kind"] == runs.ListingKind.FIND_BY_OWNER]
        listings = {
            "run_id": recent[0]["run_id"],
            "total": len(rows),
            "complete": len(rows) - len(incomplete),
            "devices_seen": sum(r["devices_seen"] or 0 for r in owner_rows),
            "total_size": sum(r["total_size"] or 0 for r in owner_rows),
            "incomplete": incomplete,
        }
    last_good = runs.last_applied_run(conn)
    snap: dict[str, Any] = {
        "devices_current": snapshot.current_fleet_size(conn),
        "customers_current": snapshot.current_customer_count(conn),
        "run_id": None,
        "finished_at": None,
        "age_s": None,
    }
    if last_good is not None and last_good["finished_at"] is not None:
        snap["run_id"] = last_good["run_id"]
        snap["status"] = last_good["status"]
        snap["finished_at"] = last_good["finished_at"]
        snap["age_s"] = (datetime.now(UTC) - last_good["finished_at"]).total_seconds()
    return {"snapshot": snap, "last_run_listings": listings, "runs": recent}


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

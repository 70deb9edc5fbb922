"""What ``zt-inventory status`` reports, as plain data: runs, listings, the snapshot's age, and
whether the fleet is fresh enough (``--max-age``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from inventory.store import runs, snapshot

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def collect_status(conn: Connection, limit: int) -> dict[str, Any]:
    """Runs, the last run's listings and the snapshot's age, as plain data.

    Args:
        conn: an open SQLAlchemy connection.
        limit: how many runs, newest first.

    Returns:
        ``{"snapshot": …, "last_run_listings": …, "runs": […]}``, ready for JSON. The
        snapshot's ``run_id``, ``status``, ``scope`` and ``finished_at`` are those of the newest
        run readers see the result of; ``age_s`` is how long ago the newest succeeded ``full``
        run (``full_run_id``) finished: only such a run tells how fresh the whole fleet is.
        ``partners`` has each partner a run synced, with its newest run that brought all of
        its listings whole (a ``full`` run it did not fail in, or a ``sync --partner`` of it;
        None: none yet).
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
    full = runs.last_full_success(conn)
    snap: dict[str, Any] = {
        "devices_current": snapshot.current_fleet_size(conn),
        "customers_current": snapshot.current_customer_count(conn),
        "run_id": None,
        "finished_at": None,
        "full_run_id": None if full is None else full["run_id"],
        "full_finished_at": None if full is None else full["finished_at"],
        "age_s": None if full is None else _age_s(full["finished_at"]),
    }
    if last_good is not None and last_good["finished_at"] is not None:
        snap["run_id"] = last_good["run_id"]
        snap["status"] = last_good["status"]
        snap["scope"] = last_good["scope"]
        snap["finished_at"] = last_good["finished_at"]
    newest = runs.last_full_per_partner(conn)
    partners = []
    for partner_id in runs.partners_synced(conn):
        last = newest.get(partner_id)
        when = None if last is None else last["finished_at"]
        partners.append(
            {
                "partner_id": partner_id,
                "full_run_id": None if last is None else last["run_id"],
                "full_finished_at": when,
                "age_s": None if when is None else _age_s(when),
            }
        )
    return {"snapshot": snap, "last_run_listings": listings, "runs": recent, "partners": partners}


@dataclass(frozen=True)
class Freshness:
    """The answer of ``status --max-age``: has a ``full`` run succeeded within ``max_age_s``?"""

    fresh: bool
    max_age_s: float
    run_id: int | None = None  # the newest succeeded full run
    finished_at: datetime | None = None
    age_s: float | None = None


def check_freshness(conn: Connection, max_age_s: float) -> Freshness:
    """Whether the newest succeeded ``full`` run finished at most ``max_age_s`` seconds ago."""
    full = runs.last_full_success(conn)
    if full is None:
        return Freshness(fresh=False, max_age_s=max_age_s)
    age = _age_s(full["finished_at"])
    return Freshness(age <= max_age_s, max_age_s, full["run_id"], full["finished_at"], age)


def parse_duration(text: str) -> float:
    """Seconds in ``90m``, ``2h``, ``1d`` or ``30s`` (a number and ``s``, ``m``, ``h`` or ``d``).

    Raises:
        ValueError: not of that form, or not more than zero.
    """
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration; expected a number and s, m, h or d (2h)")
    seconds = float(match.group(1)) * DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a duration longer than zero")
    return seconds


def _age_s(finished_at: datetime) -> float:
    return (datetime.now(UTC) - finished_at).total_seconds()


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

"""What the CLI shows, built but not printed: rich tables, text lines and value formatting.

Functions here return renderables (``str`` lines and rich ``Table``s) for ``cli.py`` to print;
:class:`PlainProgress` writes through the ``logging`` handler the CLI installs.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from inventory.errors import first_line
from inventory.status import Freshness, humanize_age

if TYPE_CHECKING:
    from inventory.sync import Progress, SyncResult

log = logging.getLogger(__name__)

PROGRESS_LOG_S = 5.0  # plain (non-terminal) progress: one log line at most this often
STATUS_INCOMPLETE_SHOWN = 10  # incomplete listings named one per line by `status`


# --- values ------------------------------------------------------------------------------------


def json_default(value: Any) -> Any:
    """``json.dumps(default=…)`` for database values: dates, decimals, bytes."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def cell(value: Any) -> str:
    """One database value as table or CSV text ("" for NULL)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dict | list):
        return json.dumps(value, default=json_default)
    if isinstance(value, Decimal | bytes | bytearray | memoryview | date):
        return str(json_default(value))
    return str(value)


def natural_width(renderable: Any) -> int:
    """The columns ``renderable`` needs when nothing wraps it."""
    probe = Console(file=io.StringIO(), width=100_000)
    if isinstance(renderable, str):
        return len(renderable)
    return int(probe.measure(renderable).maximum)


# --- sync --------------------------------------------------------------------------------------


def progress_text(p: Mapping[str, Any]) -> str:
    """The live counters (``Progress.to_dict()``, or a running run's ``sync_runs.progress``)
    as one line: totals are the best known so far."""
    return (
        f"{p['phase']}: customers {p['customers_done']:,}/{p['customers_total']:,}, "
        f"listings {p['listings_done']:,}/{p['listings_total']:,}, "
        f"devices {p['devices_seen']:,}/{p['devices_expected']:,}, "
        f"requests {p['api_requests']:,}/{p['requests_expected']:,}, {p['retries']:,} retries"
        f"{pace_text(p)}"
    )


def pace_text(p: Mapping[str, Any]) -> str:
    """``, 9.8 requests/s (the quota allows 10.0), about 2 min left``; "" while unknown."""
    text = ""
    if p.get("rate"):
        text += f", {p['rate']:.1f} requests/s"
        if p.get("quota_rate"):
            text += f" (the quota allows {p['quota_rate']:.1f})"
    if p.get("eta_s") is not None:
        text += f", about {humanize_age(p['eta_s'])} left"
    return text


class PlainProgress:
    """Progress as log lines: at every phase change and every ``interval`` seconds."""

    def __init__(
        self, interval: float = PROGRESS_LOG_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.phase = ""
        self.last = 0.0

    def __call__(self, p: Progress) -> None:
        now = self.clock()
        if p.phase == self.phase and now - self.last < self.interval:
            return
        self.phase, self.last = p.phase, now
        log.info("%s", progress_text(p.to_dict()))


def summary_table(result: SyncResult) -> Table:
    """The one-screen summary of a run."""
    title = f"Sync run {result.run_id or '-'}: {result.status}"
    if result.dry_run:
        title = f"Dry run: {result.status} (nothing written)"
    # a title wider than the table would wrap: the table is at least as wide as its title
    table = Table(title=title, show_header=False, title_justify="left", min_width=len(title))
    table.add_column(style="bold")
    table.add_column(justify="right")
    complete = sum(1 for x in result.listings if x.complete)
    duration = f"{result.duration_s:.1f} s" if result.duration_s is not None else "-"
    verb = "would be " if result.dry_run else ""
    rows: list[tuple[str, Any]] = [
        ("duration", duration),
        ("customers", result.customers_seen),
        ("devices seen", result.devices_seen),
        (f"{verb}added", result.devices_added),
        (f"{verb}changed", result.devices_changed),
        (f"{verb}removed", result.devices_removed),
        (f"{verb}reappeared", result.devices_reappeared),
        ("listings complete", f"{complete}/{len(result.listings)}"),
        ("API requests", result.api_requests),
        ("retries", result.retries),
    ]
    if result.identifiers_looked_up:
        found = f"{result.identifiers_found}/{result.identifiers_looked_up}"
        rows.append(("identifiers found", found))
    elif any(x.kind == "find_by_identifier" for x in result.listings):
        rows.append(("identifiers found", "0 identifiers"))
    if result.unknown_fields:
        rows.append(("unknown API fields", ", ".join(sorted(result.unknown_fields))))
    if result.warnings:
        rows.append(("warnings", len(result.warnings)))
    if result.error:
        rows.append(("error", result.error))
    for key, value in rows:
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    return table


PREVIEW_KINDS = ("added", "changed", "reappeared", "removed")  # the order a preview shows


def preview_selection(result: SyncResult, limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` of a dry run's previewed changes, shared out among their kinds.

    Each kind gets an equal share, and what a kind cannot use goes to the others, so that a
    few removals show beside thousands of additions. In kind order, then by device id.
    """
    by_kind: dict[str, list[dict[str, Any]]] = {kind: [] for kind in PREVIEW_KINDS}
    for row in result.preview:
        by_kind.setdefault(str(row["change"]), []).append(row)
    take = dict.fromkeys(by_kind, 0)
    left = limit
    open_kinds = [kind for kind, rows in by_kind.items() if rows]
    while left > 0 and open_kinds:
        each = max(1, left // len(open_kinds))
        for kind in list(open_kinds):
            n = min(each, len(by_kind[kind]) - take[kind], left)
            take[kind] += n
            left -= n
            if take[kind] == len(by_kind[kind]):
                open_kinds.remove(kind)
            if left == 0:
                break
    return [row for kind, rows in by_kind.items() for row in rows[: take[kind]]]


def preview_items(result: SyncResult, limit: int) -> list[str | Table]:
    """A dry run's first changes as a table, and a line saying how many more there are.

    Args:
        result: the dry run; ``result.preview`` holds its previewed changes.
        limit: show at most this many (``--preview N``).
    """
    total = result.changes
    if not total:
        return ["No device would change."]
    shown = preview_selection(result, limit)
    items: list[str | Table] = []
    if shown:
        title = f"First {len(shown):,} of {total:,} changes"
        table = Table(title=title, title_justify="left", min_width=len(title))
        for name in ("change", "device_id", "imei", "serial_number", "owner_company_id"):
            table.add_column(name, justify="right" if name.endswith("id") else "left")
        for row in shown:
            table.add_row(
                row["change"],
                *(cell(row.get(k)) for k in ("device_id", "imei", "serial_number")),
                cell(row.get("owner_company_id")),
            )
        items.append(table)
    more = total - len(shown)
    if more > 0:
        counts = {
            "added": result.devices_added,
            "changed": result.devices_changed,
            "reappeared": result.devices_reappeared,
            "removed": result.devices_removed,
        }
        for row in shown:
            counts[str(row["change"])] -= 1
        kinds = ", ".join(f"{n:,} {kind}" for kind, n in counts.items() if n > 0)
        items.append(f"… and {more:,} more ({kinds}); `--preview N` shows more")
    return items


# --- status and sql ----------------------------------------------------------------------------


def status_items(data: dict[str, Any], where: str) -> list[str | Table]:
    """``collect_status`` data as text lines and the runs table, in print order.

    Args:
        data: what :func:`inventory.status.collect_status` returned.
        where: the (redacted) database URL.
    """
    lines: list[str | Table] = [f"Database: {where}"]
    snap = data["snapshot"]
    if not data["runs"]:
        lines.append("No sync has run yet; run `zt-inventory sync`.")
        return lines
    if snap["finished_at"] is None:
        lines.append("Snapshot: none yet (no run has succeeded); run `zt-inventory sync`.")
    else:
        scope = "" if snap["scope"] == "full" else f", {snap['scope']}"
        age = (datetime.now(UTC) - snap["finished_at"]).total_seconds()
        lines.append(
            f"Snapshot: {snap['devices_current']:,} current devices, "
            f"{snap['customers_current']:,} customers, from run {snap['run_id']} "
            f"({snap['status']}{scope}), finished {cell(snap['finished_at'])}, "
            f"{humanize_age(age)} ago"
        )
        if snap["full_run_id"] is None:
            lines.append(
                "Fleet: no full run has succeeded yet; only a `zt-inventory sync` of every "
                "customer (no --customer) tells how fresh the fleet is."
            )
        elif snap["full_run_id"] != snap["run_id"]:
            lines.append(
                f"Fleet: last synced in full by run {snap['full_run_id']}, finished "
                f"{cell(snap['full_finished_at'])}, {humanize_age(snap['age_s'])} ago"
            )
    partners = data.get("partners") or []
    if len(partners) > 1:  # one line per reseller account: when each was last synced whole
        for p in partners:
            if p["full_run_id"] is None:
                lines.append(
                    f"Partner {p['partner_id']}: never synced in full yet (see the warnings "
                    "of the last run, then `zt-inventory sync --partner "
                    f"{p['partner_id']}`)"
                )
                continue
            lines.append(
                f"Partner {p['partner_id']}: last synced in full by run {p['full_run_id']}, "
                f"finished {cell(p['full_finished_at'])}, {humanize_age(p['age_s'])} ago"
            )
    running = data["runs"][0]
    if running["status"] == "running" and running.get("progress"):
        started = (datetime.now(UTC) - running["started_at"]).total_seconds()
        lines.append(
            f"Run {running['run_id']} is running (started {humanize_age(started)} ago): "
            f"{progress_text(running['progress'])}"
        )
    lst = data["last_run_listings"]
    if lst and running["status"] != "running":
        lines.append(
            f"Last run {lst['run_id']}: {lst['complete']} of {lst['total']} listings complete, "
            f"{lst['devices_seen']:,} devices seen of {lst['total_size']:,} reported by totalSize"
        )
        for item in lst["incomplete"][:STATUS_INCOMPLETE_SHOWN]:
            owners = len(item["company_ids"] or [])
            owners += len(item["google_workspace_customer_ids"] or [])
            lines.append(
                f"  listing {item['listing_id']} ({item['kind']}, {item['section_type'] or '-'}, "
                f"{owners} owners) incomplete: {item['error'] or 'not finished'}"
            )
        more = len(lst["incomplete"]) - STATUS_INCOMPLETE_SHOWN
        if more > 0:
            lines.append(f"  … and {more} more incomplete listings")
    return [*lines, _runs_table(data["runs"])]


def _runs_table(runs: list[dict[str, Any]]) -> Table:
    table = Table(title="Last runs", title_justify="left")
    headers = [
        "run", "trigger", "scope", "status", "started", "duration", "seen", "added", "changed",
        "removed", "reappeared", "requests", "retries", "error",
    ]  # fmt: skip
    for name in headers:
        left = name in ("trigger", "scope", "status", "started", "error")
        table.add_column(name, justify="left" if left else "right")
    for run in runs:
        duration = f"{run['duration_s']:.1f} s" if run["duration_s"] is not None else "-"
        table.add_row(
            str(run["run_id"]), run["trigger"], _scope_text(run), run["status"],
            cell(run["started_at"]), duration,
            *(f"{run[k] or 0:,}" for k in (
                "devices_seen", "devices_added", "devices_changed", "devices_removed",
                "devices_reappeared", "api_requests", "retries",
            )),
            first_line(run["error"] or "")[:120],
        )  # fmt: skip
    return table


def _scope_text(run: dict[str, Any]) -> str:
    ids = run.get("scope_customer_ids") or []
    if run["scope"] == "customers" and ids:
        return f"customers ({len(ids)})" if len(ids) > 1 else f"customer {ids[0]}"
    return str(run["scope"])


def freshness_line(f: Freshness, limit: str) -> str:
    """The one line of ``status --max-age``: fresh or stale, and which run says so.

    Args:
        f: what :func:`inventory.status.check_freshness` found.
        limit: the maximum age as the user wrote it (``2h``).
    """
    if f.run_id is None or f.finished_at is None or f.age_s is None:
        return (
            f"stale: no full run has succeeded yet (max age {limit}); run `zt-inventory sync` "
            "without --customer"
        )
    when = f.finished_at.astimezone(UTC).isoformat(timespec="seconds")
    ran = f"full run {f.run_id} finished {when}, {humanize_age(f.age_s)} ago"
    if f.fresh:
        return f"fresh: {ran} (max age {limit})"
    return f"stale: the newest succeeded {ran}, more than the max age {limit}"

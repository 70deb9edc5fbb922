"""``zt-inventory reconcile FILE``: shipped devices (an identifiers CSV) against what is
registered, as a summary by state and by order, the rows that are not ok, and the orders'
devices the file does not name."""

from __future__ import annotations

import csv
import json
import logging
import shutil
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from inventory.cli import app
from inventory.cli.app import Failure, common_options, main
from inventory.cli.sync import _stop_on_signals  # one signal handler for every run
from inventory.errors import CancelledError
from inventory.sqlout import json_of, table_lines, text_of
from inventory.store.reconciliation import NOT_IN_FILE, ROW_COLUMNS

if TYPE_CHECKING:
    from inventory.sync.reconcile import Reconciliation

# columns a problems table shows even when empty; the others only when some row has a value
_ALWAYS = ("line_number", "order_number", "device_id", "company_id", "state")
NO_ORDER = "(none)"


@main.command()
@common_options
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False))
@app.format_option(
    "table: the summaries and the problems; csv: the rows that are not ok and the devices "
    "not in the file, as one table (the summary goes to stderr); json: everything."
)
@click.pass_context
def reconcile(ctx: click.Context, file: str, fmt: str) -> None:
    """Check a CSV of shipped devices against what is registered, and to whom.

    FILE has a header row naming any of imei, meid, serial_number, manufacturer, model,
    device_type, chrome_os_attested_device_id (the identifier columns) and the optional
    expected_company_id (the customer the device was shipped to) and order_number; one device
    a row. Each row is looked up with findByIdentifier, one call a row within api.concurrency
    and api.quota_per_100s, and nothing else is listed; the lookups are stored as a run of
    their own (view v_reconciliation). A row's state is ok (registered to
    expected_company_id, or to anyone when that is empty), wrong_customer, unclaimed (no
    zero-touch owner), not_registered or error (a malformed row: reported with its line and
    skipped). Devices of the snapshot whose ordernumber metadata names an order of the file
    but that the file does not name are listed as not_in_file.

    Exit status 0 when every row is ok, 1 otherwise; 2 when FILE is missing or unreadable or
    its header names no identifier column.

    \b
    Example:
        zt-inventory reconcile shipped-2026-03.csv
        zt-inventory reconcile shipped.csv --format csv > problems.csv
    """
    from inventory.sync.reconcile import run_reconcile

    settings = app.settings_of(ctx)
    tty = app.is_terminal(sys.stderr)
    app.setup_logging(ctx, logging.WARNING, rich=tty)
    with _stop_on_signals() as stop:
        if tty and fmt == "table":
            with _LookupBar(Console(stderr=True)) as bar:
                found = run_reconcile(settings, file, on_progress=bar, should_stop=stop.is_set)
        else:
            found = run_reconcile(settings, file, should_stop=stop.is_set)
    result = found.result
    if result.status == "failed":
        if isinstance(result.failure, CancelledError):
            raise Failure(["the reconcile was cancelled; no lookup was stored"])
        raise Failure([f"reconcile failed: {result.error}"])
    if fmt == "json":
        click.echo(json.dumps(_json(found), indent=2, ensure_ascii=False))
    elif fmt == "csv":
        click.echo(_summary_line(found), err=True)
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(ROW_COLUMNS)
        out.writerows([text_of(v) for v in row] for row in _problem_rows(found, ROW_COLUMNS))
    else:
        for line in _table(found):
            click.echo(line)
    ctx.exit(0 if found.all_ok else 1)


class _LookupBar:
    """A progress bar of rows looked up, on a terminal."""

    def __init__(self, console: Console) -> None:
        self.bars = RichProgress(
            TextColumn("looking up"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.bars.add_task("rows", total=None)

    def __enter__(self) -> _LookupBar:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def __call__(self, done: int, total: int) -> None:
        self.bars.update(self.task, completed=done, total=total)


def _summary_line(found: Reconciliation) -> str:
    """``ids.csv: 8 identifiers in run 5: 4 ok, …; 2 not_in_file``."""
    states = found.by_state()
    extra = states.pop(NOT_IN_FILE)
    counts = ", ".join(f"{n} {state}" for state, n in states.items())
    n = len(found.rows)
    return (
        f"{found.path}: {n} identifier{'' if n == 1 else 's'} in run {found.result.run_id}: "
        f"{counts}; {extra} not_in_file"
    )


def _problem_rows(found: Reconciliation, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """The rows that are not ok, then the devices not in the file, as tuples of ``columns``."""
    for row in found.rows:
        if row["state"] != "ok":
            yield tuple(row.get(c) for c in columns)
    for device in found.not_in_file:
        values = dict(device, state=NOT_IN_FILE)
        yield tuple(values.get(c) for c in columns)


def _table(found: Reconciliation) -> Iterator[str]:
    """The table format: what was looked up, by state, by order, then the problems."""
    result = found.result
    n = len(found.rows)
    yield (
        f"Reconciled {found.path} in run {result.run_id}: {n} identifier{'' if n == 1 else 's'}, "
        f"{result.api_requests} API requests, {result.retries} retries."
    )
    yield ""
    yield "By state:"
    states = list(found.by_state().items())
    yield from _without_count(table_lines(("state", "rows"), states, width=None, limit=None))
    by_order = found.by_order()
    if by_order:
        yield ""
        yield "By order:"
        names = list(next(iter(by_order.values())))
        rows = [
            (order or NO_ORDER, sum(v for k, v in counts.items() if k != NOT_IN_FILE))
            + tuple(counts.values())
            for order, counts in by_order.items()
        ]
        yield from _without_count(
            table_lines(("order_number", "rows", *names), rows, width=None, limit=None)
        )
    problems = [r for r in found.rows if r["state"] != "ok"]
    yield ""
    if problems:
        yield "Rows that are not ok:"
        yield from _rows_table(problems)
    else:
        yield "Every row is ok."
    if found.not_in_file:
        yield ""
        yield (
            "Devices whose ordernumber names an order of the file, but not in the file "
            "(not_in_file; from the snapshot of the last sync):"
        )
        yield from _rows_table([dict(d, state=NOT_IN_FILE) for d in found.not_in_file])


def _rows_table(rows: list[dict[str, Any]]) -> Iterator[str]:
    """Rows as a table of the columns that have a value in any of them."""
    columns = [c for c in ROW_COLUMNS if c in _ALWAYS or any(r.get(c) is not None for r in rows)]
    columns = [c for c in columns if any(c in r for r in rows)]
    width = shutil.get_terminal_size().columns if app.is_terminal(sys.stdout) else None
    values = [tuple(r.get(c) for c in columns) for r in rows]
    yield from table_lines(columns, values, width=width, limit=None)


def _without_count(lines: Iterator[str]) -> Iterator[str]:
    """A summary table's lines without the ``(N rows)`` line at the end."""
    held: str | None = None
    for line in lines:
        if held is not None:
            yield held
        held = line


def _json(found: Reconciliation) -> dict[str, Any]:
    result = found.result
    return {
        "file": found.path,
        "run_id": result.run_id,
        "status": str(result.status),
        "identifiers": len(found.rows),
        "api_requests": result.api_requests,
        "retries": result.retries,
        "by_state": found.by_state(),
        "by_order": found.by_order(),
        "rows": [{k: json_of(v) for k, v in r.items()} for r in found.rows if r["state"] != "ok"],
        NOT_IN_FILE: [{k: json_of(v) for k, v in d.items()} for d in found.not_in_file],
        "warnings": result.warnings,
    }

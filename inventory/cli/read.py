"""The commands that read or prepare the database: ``init``, ``status``, ``sql`` and
``datasette-metadata``."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from inventory.cli import app
from inventory.cli.app import common_options, main
from inventory.datasette_metadata import datasette_metadata
from inventory.display import freshness_line, json_default, status_items
from inventory.errors import SchemaMismatchError, first_line
from inventory.readonly import read_engine, run_read_only
from inventory.sqlout import json_row, table_lines, text_of
from inventory.status import check_freshness, collect_status, parse_duration
from inventory.store import database_label, make_engine, sqlite_path

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

STATUS_RUNS = 10
TERMINAL_ROWS = 50  # sql --format table on a terminal: rows shown before "N more" (then csv)
Row = tuple[Any, ...]


# --- init --------------------------------------------------------------------------------------


@main.command()
@common_options
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create or upgrade the database to the newest schema (idempotent).

    A SQLite file whose schema is behind is backed up beside itself first.

    \b
    Example:
        zt-inventory init --database-url sqlite:///zt-inventory.db
    """
    settings = app.settings_of(ctx)
    app.setup_logging(ctx)
    url = settings.database.url
    engine = make_engine(url)
    try:
        try:
            before, after, backup = app.db_module().upgrade(engine)
        except app.alembic_error() as exc:
            raise SchemaMismatchError(
                f"database {database_label(url)} is at a schema this zt-inventory does not know "
                f"({first_line(str(exc))}); upgrade zt-inventory"
            ) from None
    finally:
        engine.dispose()
    where = database_label(url)
    if before is None:
        click.echo(f"Created the zt-inventory schema (revision {after}) in {where}.")
    elif before == after:
        click.echo(f"{where} is already at the newest schema (revision {after}); nothing to do.")
    else:
        click.echo(f"Upgraded {where} from revision {before} to {after}.")
    if backup is not None:
        click.echo(f"Backup of the previous database: {backup}")


# --- status ------------------------------------------------------------------------------------


@main.command()
@common_options
@click.option(
    "--limit",
    "-n",
    default=STATUS_RUNS,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="How many runs to show.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option(
    "--max-age",
    metavar="DURATION",
    help="Only check freshness: exit 1 unless a full run (every customer) succeeded within "
    "DURATION (90m, 2h, 1d; s, m, h or d), and print one line saying which run.",
)
@click.pass_context
def status(ctx: click.Context, limit: int, as_json: bool, max_age: str | None) -> None:
    """Show the last runs, their counts and errors, and how stale the snapshot is.

    With --max-age, a freshness check for cron and monitors: one line, exit 0 when a full run
    (no --customer) succeeded within DURATION, else exit 1.

    \b
    Example:
        zt-inventory status --limit 5
        zt-inventory status --max-age 2h || echo "zero-touch inventory is stale"
    """
    settings = app.settings_of(ctx)
    app.setup_logging(ctx)
    if max_age is not None:
        _check_freshness(ctx, settings.database.url, max_age, as_json)
        return
    with _reading(settings.database.url) as conn:
        data = collect_status(conn, limit)
    where = database_label(settings.database.url)
    if as_json:
        click.echo(json.dumps({"database": where, **data}, indent=2, default=json_default))
        return
    app.print_items(status_items(data, where))


@contextmanager
def _reading(url: str) -> Iterator[Connection]:
    """A connection of a read-only, revision-checked engine, disposed of afterwards."""
    engine = read_engine(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _check_freshness(ctx: click.Context, url: str, max_age: str, as_json: bool) -> None:
    try:
        max_age_s = parse_duration(max_age)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--max-age'") from None
    with _reading(url) as conn:
        fresh = check_freshness(conn, max_age_s)
    if as_json:
        click.echo(json.dumps(asdict(fresh), default=json_default))
    else:
        click.echo(freshness_line(fresh, max_age))
    ctx.exit(0 if fresh.fresh else 1)


# --- sql ---------------------------------------------------------------------------------------


@main.command()
@common_options
@click.argument("statement")
@app.format_option(
    "Output format. On a terminal, table shows the first rows and says how many more "
    "there are; csv and json always print every row."
)
@click.pass_context
def sql(ctx: click.Context, statement: str, fmt: str) -> None:
    """Run read-only SQL on the database and print the rows.

    The database refuses writes itself (SQLite opened read-only, PostgreSQL in a read-only
    transaction). STATEMENT - reads the statement from stdin. Values print the same from
    SQLite and PostgreSQL: timestamps in ISO 8601 UTC, JSON as compact text (nested in --format
    json, where integers beyond 2^53 are strings), UTF-8 CSV.

    \b
    Example:
        zt-inventory sql "SELECT company_name, devices FROM v_customer_device_counts
                          ORDER BY devices DESC LIMIT 10"
        zt-inventory sql --format csv "SELECT * FROM v_devices" > devices.csv
    """
    settings = app.settings_of(ctx)
    app.setup_logging(ctx)
    if statement == "-":
        statement = sys.stdin.read()
    if not statement.strip():
        raise click.UsageError("STATEMENT is empty")
    with run_read_only(settings.database.url, statement) as (columns, rows):
        if not columns:
            click.echo("(the statement returned no rows)", err=True)
            return
        # UTF-8 whatever the locale says: CSV and JSON files are read back as UTF-8
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
        sys.stdout.flush()
        try:
            _write_rows(out, fmt, columns, rows)
        finally:
            out.flush()
            out.detach()


def _write_rows(out: TextIO, fmt: str, columns: list[str], rows: Iterator[Row]) -> None:
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([text_of(v) for v in row] for row in rows)
    elif fmt == "json":
        out.write("[")
        for n, row in enumerate(rows):
            out.write(("," if n else "") + "\n  " + json_row(columns, row))
        out.write("\n]\n")
    else:
        terminal = app.is_terminal(sys.stdout)
        width = shutil.get_terminal_size().columns if terminal else None
        limit = TERMINAL_ROWS if terminal else None
        lines = table_lines(columns, rows, width=width, limit=limit)
        while chunk := list(islice(lines, 500)):  # one write per 500 lines
            out.write("\n".join(chunk) + "\n")


# --- datasette-metadata ------------------------------------------------------------------------


@main.command("datasette-metadata")
@common_options
@click.pass_context
def datasette_metadata_command(ctx: click.Context) -> None:
    """Print Datasette metadata for the SQLite snapshot: titles, facets, canned queries.

    Column descriptions, sensible facets, the private tables hidden, and the README's SQL
    recipes as canned queries, as JSON for `datasette --metadata`.

    \b
    Example:
        datasette zt-inventory.db --metadata <(zt-inventory datasette-metadata)
        zt-inventory datasette-metadata --database-url sqlite:///zt-demo.db > metadata.json
    """
    settings = app.settings_of(ctx)
    path = sqlite_path(settings.database.url)
    if path is None:
        raise click.UsageError(
            "Datasette opens SQLite files and database.url is not one; point a BI tool at "
            "PostgreSQL instead, or pass --database-url sqlite:///FILE"
        )
    # Datasette names a database after its file, without the extension
    metadata = datasette_metadata(Path(path).stem)
    click.echo(json.dumps(metadata, indent=2, ensure_ascii=False))

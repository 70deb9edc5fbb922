"""The commands that read or prepare the database: ``init``, ``status`` and ``sql``."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from typing import Any

import click

from inventory.cli import app
from inventory.cli.app import common_options, main
from inventory.display import cell, json_default, rows_table, status_items
from inventory.errors import SchemaMismatchError, first_line
from inventory.readonly import read_engine, run_read_only
from inventory.redact import redact_url
from inventory.status import collect_status
from inventory.store import make_engine

STATUS_RUNS = 10


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
                f"database {redact_url(url)} is at a schema this zt-inventory does not know "
                f"({first_line(str(exc))}); upgrade zt-inventory"
            ) from None
    finally:
        engine.dispose()
    where = redact_url(url)
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
@click.pass_context
def status(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Show the last runs, their counts and errors, and how stale the snapshot is.

    \b
    Example:
        zt-inventory status --limit 5
    """
    settings = app.settings_of(ctx)
    app.setup_logging(ctx)
    engine = read_engine(settings.database.url)
    try:
        with engine.connect() as conn:
            data = collect_status(conn, limit)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(data, indent=2, default=json_default))
        return
    app.print_items(status_items(data, redact_url(settings.database.url)))


# --- sql ---------------------------------------------------------------------------------------


@main.command()
@common_options
@click.argument("statement")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.pass_context
def sql(ctx: click.Context, statement: str, fmt: str) -> None:
    """Run read-only SQL on the database and print the rows.

    The database refuses writes itself (SQLite opened read-only, PostgreSQL in a read-only
    transaction). STATEMENT - reads the statement from stdin.

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
        if fmt == "csv":
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(columns)
            for row in rows:
                writer.writerow([cell(v) for v in row])
        elif fmt == "json":
            _write_json_rows(columns, rows)
        else:
            app.print_items(rows_table(columns, rows))


def _write_json_rows(columns: list[str], rows: Iterator[tuple[Any, ...]]) -> None:
    out = sys.stdout
    out.write("[")
    for n, row in enumerate(rows):
        text = json.dumps(dict(zip(columns, row, strict=True)), default=json_default)
        out.write(("," if n else "") + "\n  " + text)
    out.write("\n]\n")

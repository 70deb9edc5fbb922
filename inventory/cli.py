"""The ``zt-inventory`` command line: the only module that prints or exits.

Every command takes ``--config PATH``, ``--database-url URL`` and ``--verbose`` (before or after
the command name). Library errors become one ``Error: …`` line on stderr and an exit code
(SPEC: 0 success, 1 the run failed, 2 bad usage or configuration); ``--verbose`` adds the
traceback and debug logs.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any, TextIO

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichProgress
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from inventory import __version__
from inventory.config import Settings, load_settings, require_for_sync
from inventory.display import (
    PlainProgress,
    cell,
    json_default,
    natural_width,
    rows_table,
    status_items,
    summary_table,
)
from inventory.errors import ConfigError, InventoryError, SchemaMismatchError, first_line
from inventory.readonly import read_engine, require_database_file, run_read_only, scrub
from inventory.status import collect_status
from inventory.store import make_engine, redact_url

if TYPE_CHECKING:
    from inventory.sync import Progress, SyncResult

STATUS_RUNS = 10


# --- common options and error handling --------------------------------------------------------


@dataclass
class Common:
    """Options every command takes, from the group or the command (the command wins)."""

    config: str | None = None
    database_url: str | None = None
    verbose: bool = False
    url: str | None = None  # the database URL in use, for error messages


def _common(ctx: click.Context) -> Common:
    root = ctx.find_root()
    if not isinstance(root.obj, Common):
        root.obj = Common()
    return root.obj


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is not None and value is not False:
        setattr(_common(ctx), str(param.name), value)


def common_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--config``, ``--database-url`` and ``--verbose``, stored in :class:`Common`."""
    options = [
        click.option(
            "--config",
            metavar="PATH",
            expose_value=False,
            callback=_remember,
            help="Config file (default: ./zt-inventory.toml when present).",
        ),
        click.option(
            "--database-url",
            metavar="URL",
            expose_value=False,
            callback=_remember,
            help="Database URL; overrides database.url and ZT_INVENTORY_DATABASE_URL.",
        ),
        click.option(
            "--verbose",
            "-v",
            is_flag=True,
            default=False,
            expose_value=False,
            callback=_remember,
            help="Show debug logs and tracebacks.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


class Failure(click.ClickException):
    """One or more ``Error: …`` lines on stderr, then exit 1 (the run or the database failed)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines

    def show(self, file: Any = None) -> None:
        for line in self.lines:
            click.echo(f"Error: {line}", err=True)


class BadConfig(Failure):
    """Like :class:`Failure`, for bad usage or configuration: exit 2."""

    exit_code = 2


def failure(lines: list[str], exit_code: int = 1) -> Failure:
    """The exception that prints ``lines`` as ``Error:`` lines and exits with ``exit_code``."""
    return BadConfig(lines) if exit_code == 2 else Failure(lines)


def database_error(exc: SQLAlchemyError, url: str | None) -> str:
    """One line for a database error, naming the (redacted) database."""
    where = redact_url(url) if url else "the database"
    orig = getattr(exc, "orig", None)
    detail = scrub(first_line(str(orig if orig is not None else exc)), url)
    if (isinstance(exc, DBAPIError) and exc.connection_invalidated) or _is_connect_error(exc):
        return f"cannot connect to {where}: {detail}; check database.url and that it is reachable"
    return f"database error on {where}: {detail}"


def _is_connect_error(exc: SQLAlchemyError) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return any(
        word in text
        for word in ("connection", "unable to open database", "could not translate host")
    )


class Group(click.Group):
    """A click group that turns library errors into one-line errors and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # `zt-inventory sql … | head`: the reader left; stop quietly, as other tools do.
            with suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(1) from None
        except Exception as exc:
            common = _common(ctx)
            if common.verbose:
                traceback.print_exc(file=sys.stderr)
            raise _failure(exc, common.url) from exc


def _failure(exc: Exception, url: str | None) -> Failure:
    if isinstance(exc, ConfigError):
        return failure(exc.errors, exc.exit_code)
    if isinstance(exc, InventoryError):
        return failure([str(exc)], exc.exit_code)
    if isinstance(exc, SQLAlchemyError):
        return Failure([database_error(exc, url)])
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return Failure([f"{exc.strerror or exc}{where}"])
    return Failure(
        [
            f"internal error: {type(exc).__name__}: {first_line(str(exc))}; run again with "
            "--verbose for the traceback and report it"
        ]
    )


def _settings(ctx: click.Context) -> Settings:
    common = _common(ctx)
    settings = load_settings(
        common.config, database_url=common.database_url, explicit=common.config is not None
    )
    common.url = settings.database.url
    return settings


class _DropSyncFailure(logging.Filter):
    """The CLI reports a failed run itself, as one ``Error:`` line; drop the log's copy."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "inventory.sync" and record.msg == "sync failed: %s")


def _setup_logging(
    ctx: click.Context,
    level: int = logging.WARNING,
    *,
    rich: bool = False,
    also: tuple[str, ...] = (),
) -> None:
    """Send ``inventory`` logs (and ``also`` loggers' warnings) to stderr for this command.

    The handler is removed when the command ends, so nothing leaks into a caller's process.
    """
    verbose = _common(ctx).verbose
    handler: logging.Handler
    if rich:
        handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
        )
    handler.addFilter(_DropSyncFailure())
    logger = logging.getLogger("inventory")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else level)
    others = [logging.getLogger(name) for name in also]
    for other in others:
        other.addHandler(handler)

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        for other in others:
            other.removeHandler(handler)

    ctx.call_on_close(restore)


def _is_terminal(stream: TextIO) -> bool:
    """True when ``stream`` is an interactive terminal (tests patch this)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _console_for(stream: TextIO, content_width: int = 0) -> Console:
    if _is_terminal(stream):
        return Console(file=stream)
    # Not a terminal: no wrapping or truncating at 80 columns.
    return Console(file=stream, width=max(80, content_width), no_color=True, highlight=False)


def _print(items: list[Any], stream: TextIO | None = None) -> None:
    """Print text lines and tables; off a terminal, as wide as they need, never wrapped."""
    stream = stream or sys.stdout
    width = max((natural_width(item) for item in items), default=80)
    console = _console_for(stream, width)
    for item in items:
        if isinstance(item, str):
            console.print(item, markup=False, highlight=False)
        else:
            console.print(item)


def _db() -> ModuleType:
    """``inventory.db``, imported on first use: Alembic costs half a second at start-up."""
    from inventory import db

    return db


def _alembic_error() -> type[Exception]:
    from alembic.util import CommandError

    return CommandError


# --- the group ---------------------------------------------------------------------------------


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zt-inventory")
@common_options
def main() -> None:
    """Keep a SQL copy of a zero-touch reseller's device inventory.

    zt-inventory pages through the Android Device Provisioning Partner API and writes what it
    finds into SQLite or PostgreSQL. Exit codes: 0 success, 1 the run failed, 2 bad usage or
    configuration.

    \b
    Example:
        zt-inventory demo
        zt-inventory init --config zt-inventory.toml
        zt-inventory sync && zt-inventory status
    """


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
    settings = _settings(ctx)
    _setup_logging(ctx)
    url = settings.database.url
    engine = make_engine(url)
    try:
        try:
            before, after, backup = _db().upgrade(engine)
        except _alembic_error() as exc:
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


# --- sync --------------------------------------------------------------------------------------


class LiveProgress:
    """Progress bars on a terminal: customers, listings, devices against totalSize."""

    def __init__(self, console: Console) -> None:
        self.bars = RichProgress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.customers: TaskID = self.bars.add_task("customers", total=None, note="")
        self.listings: TaskID = self.bars.add_task("listings", total=None, note="")
        self.devices: TaskID = self.bars.add_task("devices", total=None, note="")

    def __enter__(self) -> LiveProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def __call__(self, p: Progress) -> None:
        bars = self.bars
        bars.update(self.customers, completed=p.customers_done, total=p.customers_total or None)
        bars.update(
            self.listings, completed=p.listings_done, total=p.listings_total or None, note=p.phase
        )
        bars.update(
            self.devices,
            completed=p.devices_seen,
            total=p.devices_expected or None,
            note=f"{p.api_requests} requests, {p.retries} retries",
        )


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM ask the run to stop (nothing is applied); a second SIGINT aborts."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        click.echo("Stopping: the run is abandoned, nothing is applied…", err=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@main.command()
@common_options
@click.option("--dry-run", is_flag=True, help="Fetch and report what would change; write nothing.")
@click.option(
    "--allow-mass-removal",
    is_flag=True,
    help="Apply even when more than sync.max_removed_fraction of the devices would be removed.",
)
@click.option(
    "--customer",
    "customers",
    multiple=True,
    type=click.IntRange(1, 2**63 - 1),
    metavar="ID",
    help="Sync only this customer (company id); repeatable. Default: sync.customers, else all.",
)
@click.option(
    "--identifiers",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="CSV of identifiers to look up with findByIdentifier (default: sync.identifiers_file).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.pass_context
def sync(
    ctx: click.Context,
    dry_run: bool,
    allow_mass_removal: bool,
    customers: tuple[int, ...],
    identifiers: str | None,
    as_json: bool,
) -> None:
    """Run one sync: fetch the inventory from the API and apply it in one transaction.

    Exit status 0 only when the run succeeded; 1 when it failed or was partial.

    \b
    Example:
        zt-inventory sync
        zt-inventory sync --dry-run --customer 1234567 --json
    """
    from inventory.sync import run_sync

    settings = _settings(ctx)
    tty = _is_terminal(sys.stderr) and not as_json
    _setup_logging(ctx, logging.WARNING if as_json or tty else logging.INFO, rich=tty)
    require_for_sync(settings)
    require_database_file(settings.database.url)
    kwargs: dict[str, Any] = {
        "trigger": "manual",
        "dry_run": dry_run,
        "allow_mass_removal": allow_mass_removal,
        "customers": list(customers) or None,
        "identifiers_file": identifiers,
    }
    with _stop_on_signals() as stop:
        if tty:
            with LiveProgress(Console(stderr=True)) as live:
                result = run_sync(settings, on_progress=live, should_stop=stop.is_set, **kwargs)
        else:
            on_progress = None if as_json else PlainProgress()
            result = run_sync(settings, on_progress=on_progress, should_stop=stop.is_set, **kwargs)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    elif _is_terminal(sys.stdout):
        Console().print(summary_table(result))
    else:
        _print_plain_summary(result)
    if result.status == "succeeded":
        return
    if result.status == "partial":
        incomplete = [x for x in result.listings if not x.complete]
        raise Failure(
            [
                f"the run was partial: {len(incomplete)} of {len(result.listings)} listings did "
                "not arrive whole, and their customers' devices were left as they were; see "
                "`zt-inventory status`, then sync again"
            ]
        )
    if (result.error or "").rsplit(": ", 1)[-1] == "cancelled":
        raise Failure(["the sync was cancelled; nothing was applied"])
    raise Failure([f"sync failed: {result.error}"])


def _print_plain_summary(result: SyncResult) -> None:
    from inventory.scheduler import summary_line

    prefix = "dry run (nothing written): " if result.dry_run else ""
    click.echo(prefix + summary_line(result))
    for listing in result.listings:
        if not listing.complete and listing.error:
            click.echo(f"  listing {listing.listing_id} incomplete: {listing.error}")
    if result.identifiers_looked_up:
        click.echo(
            f"  identifiers: {result.identifiers_found} of {result.identifiers_looked_up} found"
        )


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
    settings = _settings(ctx)
    _setup_logging(ctx)
    engine = read_engine(settings.database.url)
    try:
        with engine.connect() as conn:
            data = collect_status(conn, limit)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(data, indent=2, default=json_default))
        return
    _print(status_items(data, redact_url(settings.database.url)))


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
    settings = _settings(ctx)
    _setup_logging(ctx)
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
            _print(rows_table(columns, rows))


def _write_json_rows(columns: list[str], rows: Iterator[tuple[Any, ...]]) -> None:
    out = sys.stdout
    out.write("[")
    for n, row in enumerate(rows):
        text = json.dumps(dict(zip(columns, row, strict=True)), default=json_default)
        out.write(("," if n else "") + "\n  " + text)
    out.write("\n]\n")


# --- emulator, demo, schedule ------------------------------------------------------------------


@main.command()
@common_options
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--devices",
    default=10_000,
    show_default=True,
    type=click.IntRange(0, 10**8),
    help="Devices in the generated fleet (per partner).",
)
@click.option(
    "--customers",
    default=100,
    show_default=True,
    type=click.IntRange(0, 10**6),
    help="Customers in the generated fleet (per partner).",
)
@click.option("--seed", default=7, show_default=True, type=int, help="The fleet's seed.")
@click.option(
    "--partner-id",
    default=1234567,
    show_default=True,
    type=click.IntRange(1),
    help="The reseller partner id it answers for (the first one, with --partners).",
)
@click.option(
    "--partners",
    default=1,
    show_default=True,
    type=click.IntRange(1, 80),
    help="Serve N reseller partners, ids --partner-id upwards, a few customers and devices shared.",
)
@click.option(
    "--auth",
    type=click.Choice(["anonymous", "token"]),
    default="anonymous",
    show_default=True,
    help="token: require bearer tokens from the emulator's OAuth endpoint.",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="Write a service-account key file for this emulator there (implies --auth token).",
)
@click.option("--latency", default=0.0, type=click.FloatRange(0), help="Seconds per request.")
@click.option("--quota", default=0, type=click.IntRange(0), help="Requests per quota window.")
@click.option(
    "--quota-window",
    default=100.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Quota window in seconds.",
)
@click.option("--fail-every", default=0, type=click.IntRange(0), help="Every Kth request: 429.")
@click.option("--error-rate", default=0.0, type=click.FloatRange(0, 1), help="Share of 5xx.")
@click.option("--drop-rate", default=0.0, type=click.FloatRange(0, 1), help="Share dropped.")
@click.option(
    "--token-ttl", default=3600.0, type=click.FloatRange(1), help="Token lifetime in seconds."
)
@click.option(
    "--owners",
    type=click.Choice(["union", "intersect", "reject"]),
    default="union",
    show_default=True,
    help="findByOwner naming companies and Workspace ids: either, both, or 400.",
)
@click.option(
    "--max-ids-per-request",
    default=0,
    type=click.IntRange(0),
    help="Most ids one findByOwner may name; beyond it 400 (0: no cap).",
)
@click.option(
    "--page-tokens",
    type=click.Choice(["keyset", "offset"]),
    default="keyset",
    show_default=True,
    help="offset: tokens count items, so changes between pages skip or repeat one.",
)
@click.option(
    "--total-size",
    type=click.Choice(["distinct", "per_owner"]),
    default="distinct",
    show_default=True,
    help="per_owner: totalSize sums each named owner's count (overlaps count twice).",
)
@click.option(
    "--churn-every",
    default=0,
    type=click.IntRange(0),
    help="Every Nth findByOwner, a device of its listing leaves it (0: never).",
)
@click.pass_context
def emulator(
    ctx: click.Context,
    port: int,
    devices: int,
    customers: int,
    seed: int,
    partner_id: int,
    partners: int,
    auth: str,
    key_file: str | None,
    latency: float,
    quota: int,
    quota_window: float,
    fail_every: int,
    error_rate: float,
    drop_rate: float,
    token_ttl: float,
    owners: str,
    max_ids_per_request: int,
    page_tokens: str,
    total_size: str,
    churn_every: int,
) -> None:
    """Serve the built-in API emulator on 127.0.0.1 until Ctrl-C or SIGTERM.

    It generates a fleet (the same seed gives the same fleet), prints the settings that point
    zt-inventory at it, and how many devices a default sync lists (the rest are unclaimed,
    SIM-lock only, or claimed by Workspace accounts of no customer). Fault options make it
    misbehave like the real API under load. The emulator keeps no database: --database-url is
    refused.

    Where Google's discovery document leaves behaviour open, options pick one reading (the
    defaults are the emulator's usual ones): --owners (findByOwner naming both companies and
    Workspace ids lists devices matching either, both, or answers 400), --max-ids-per-request
    (a cap on the ids one findByOwner names), --page-tokens (offset tokens skip or repeat a
    device when the fleet changes between pages), --total-size (per_owner counts a device once
    per named owner it matches) and --churn-every (every Nth findByOwner, a device of its own
    listing leaves it: watch offset tokens skip devices). Answers are pretty-printed JSON unless
    a request says prettyPrint=false, and gzipped when it accepts gzip and its User-Agent
    contains "gzip", as Google's are. --partners serves several reseller accounts.

    \b
    Example:
        zt-inventory emulator --port 8080 --devices 100000 --customers 500 --fail-every 50
        # in another shell: the three exports it prints, then
        zt-inventory init --database-url sqlite:///emulated.db
        zt-inventory sync --database-url sqlite:///emulated.db
        # a server whose page tokens are offsets, changing under a paging sync
        zt-inventory emulator --page-tokens offset --churn-every 20
    """
    import errno

    from inventory.emulator import Behaviour, FaultConfig, coverage, run_server_forever

    if _common(ctx).database_url:
        raise click.UsageError(
            "--database-url does not apply to the emulator: it keeps no database; pass it to "
            "init, sync, status or sql instead"
        )
    _setup_logging(ctx, logging.INFO)
    faults = FaultConfig(
        latency_s=latency,
        quota_requests=quota,
        quota_window_s=quota_window,
        fail_every=fail_every,
        error_rate=error_rate,
        drop_rate=drop_rate,
        token_ttl_s=token_ttl,
        seed=seed,
    )
    behaviour = Behaviour(
        owners=owners,
        max_ids_per_request=max_ids_per_request,
        page_tokens=page_tokens,
        total_size=total_size,
        churn_every=churn_every,
    )
    credentials = str(Path(key_file).resolve()) if key_file else "anonymous"

    def ready(server: Any) -> None:
        fleet = server.emulator.fleet
        ids = fleet.partner_ids
        if len(ids) == 1:
            who = f"{devices:,} devices, {customers:,} customers, partner {partner_id}"
        else:
            who = (
                f"{len(ids)} partners ({', '.join(map(str, ids))}), {devices:,} devices and "
                f"{customers:,} customers each"
            )
        click.echo(
            f"Emulator: {who}, serving on {server.url} (Ctrl-C stops it). "
            "Point zt-inventory at it with:"
        )
        click.echo(
            f"  export ZT_INVENTORY_PARTNER_ID={partner_id} "
            f"ZT_INVENTORY_API_ENDPOINT={server.url} "
            f"ZT_INVENTORY_AUTH_CREDENTIALS={credentials}"
        )
        if len(ids) > 1:
            click.echo(f"  (or one [[partners]] table per id: {', '.join(map(str, ids))})")
        for pid in ids:
            seen = coverage(fleet, pid)
            click.echo(
                f"Partner {pid}: {seen.devices:,} devices; a default sync lists {seen.listed:,}, "
                f"those claimed in {seen.section} by its customers or their Workspace accounts. "
                f"Not listed: {seen.unlisted:,} unclaimed or SIM-lock only (findByOwner lists "
                f"only the section asked for), {seen.workspace_only:,} claimed by Workspace "
                "accounts of no customer (name them in sync.google_workspace_customer_ids)."
            )
        changed = behaviour.changed()
        if changed:
            click.echo("Behaviour: " + ", ".join(f"{k}={v}" for k, v in changed.items()))

    stop = threading.Event()
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if in_main else None
    try:
        with suppress(KeyboardInterrupt):
            run_server_forever(
                devices=devices,
                customers=customers,
                seed=seed,
                port=port,
                faults=faults,
                partner_id=partner_id,
                auth="token" if key_file else auth,
                service_account_key=key_file,
                ready=ready,
                stop=stop,
                behaviour=behaviour,
                partners=partners,
            )
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise failure(
            [f"port {port} on 127.0.0.1 is already in use; pick another --port (0: any free one)"],
            2,
        ) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    click.echo("Emulator stopped.", err=True)


@main.command()
@common_options
@click.option(
    "--devices",
    default=5000,
    show_default=True,
    type=click.IntRange(100, 200_000),
    help="Devices in the generated fleet.",
)
@click.option(
    "--customers",
    default=60,
    show_default=True,
    type=click.IntRange(3, 10_000),
    help="Customers in the generated fleet.",
)
@click.option("--seed", default=7, show_default=True, type=int, help="The fleet's seed.")
@click.pass_context
def demo(ctx: click.Context, devices: int, customers: int, seed: int) -> None:
    """Try it without Google: emulate a fleet, sync it into ./zt-demo.db, show example queries.

    Needs no config and no network beyond 127.0.0.1. --config is ignored; --database-url
    may name another SQLite file (replaced) or an empty PostgreSQL database.

    \b
    Example:
        zt-inventory demo
        zt-inventory sql --database-url sqlite:///zt-demo.db "SELECT * FROM v_devices LIMIT 5"
    """
    from inventory.demo import DEMO_URL, run_demo

    common = _common(ctx)
    _setup_logging(ctx)
    url = common.database_url or DEMO_URL
    common.url = url
    run_demo(
        url,
        devices=devices,
        customers=customers,
        seed=seed,
        console=_console_for(sys.stdout, 120),
    )


@main.command()
@common_options
@click.option("--no-initial-run", is_flag=True, help="Wait for the first trigger time.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics on this port (0: any free port; the log names it).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address of the metrics server (0.0.0.0 for every interface).",
)
@click.pass_context
def schedule(
    ctx: click.Context, no_initial_run: bool, metrics_port: int | None, metrics_host: str
) -> None:
    """Run sync on the [schedule] trigger until SIGINT/SIGTERM (a long-running service).

    Never two runs at once; missed runs are coalesced; a stop abandons a run in progress with
    nothing applied. One log line per run.

    \b
    Example:
        zt-inventory schedule --config /etc/zt-inventory.toml --metrics-port 9464
    """
    from inventory.scheduler import SyncService

    settings = _settings(ctx)
    _setup_logging(ctx, logging.INFO, also=("apscheduler",))
    require_for_sync(settings)
    engine = read_engine(settings.database.url)
    engine.dispose()
    service = SyncService(
        settings,
        initial_run=not no_initial_run,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )
    try:
        service.serve()
    except OSError as exc:
        if metrics_port is None:
            raise
        raise Failure(
            [
                f"cannot serve metrics on {metrics_host}:{metrics_port}: "
                f"{exc.strerror or exc}; pick another --metrics-port"
            ]
        ) from None

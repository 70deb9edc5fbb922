"""The ``zt-inventory`` command group and what its commands share: common options, errors as
one line and an exit code, logging, and printing.

Every command takes ``--config PATH``, ``--database-url URL`` and ``--verbose`` (before or after
the command name). Library errors become one ``Error: …`` line on stderr and an exit code
(SPEC: 0 success, 1 the run failed, 2 bad usage or configuration, 75 another sync holds the
writer lock, 130 cancelled by SIGINT); ``--verbose`` adds the traceback and debug logs.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

import click
from rich.console import Console
from rich.logging import RichHandler
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from inventory import __version__
from inventory.config import ENV_PREFIX, Settings, load_settings
from inventory.display import (
    natural_width,
)
from inventory.errors import (
    ConfigError,
    InventoryError,
    SchemaMismatchError,
    first_line,
)
from inventory.redact import redact_url, scrub

if TYPE_CHECKING:
    pass

STATUS_RUNS = 10


# --- common options and error handling --------------------------------------------------------


@dataclass
class Common:
    """Options every command takes, from the group or the command (the command wins)."""

    config: str | None = None
    database_url: str | None = None
    verbose: bool = False
    url: str | None = None  # the database URL in use, for error messages
    url_origin: str | None = None  # the environment variable that set it, if one did
    console: Console | None = None  # the terminal console of rich logs, shared with live bars


def options_of(ctx: click.Context) -> Common:
    root = ctx.find_root()
    if not isinstance(root.obj, Common):
        root.obj = Common()
    return root.obj


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is not None and value is not False:
        setattr(options_of(ctx), str(param.name), value)


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


def format_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--format table|csv|json`` (default table), passed as ``fmt``."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "csv", "json"]),
        default="table",
        show_default=True,
        help=help_text,
    )


class Failure(click.ClickException):
    """One or more ``Error: …`` lines on stderr, then exit 1 (the run or the database failed),
    or another exit code of SPEC's."""

    def __init__(self, lines: list[str], exit_code: int = 1, prefix: str = "Error") -> None:
        super().__init__("; ".join(lines))
        self.lines = lines
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it on the class
        self.prefix = prefix

    def show(self, file: Any = None) -> None:
        for line in self.lines:
            click.echo(f"{self.prefix}: {line}", err=True)


class BadConfig(Failure):
    """Like :class:`Failure`, for bad usage or configuration: exit 2."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines, 2)


def failure(lines: list[str], exit_code: int = 1) -> Failure:
    """The exception that prints ``lines`` as ``Error:`` lines and exits with ``exit_code``."""
    return BadConfig(lines) if exit_code == 2 else Failure(lines, exit_code)


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
            common = options_of(ctx)
            if common.verbose:
                traceback.print_exc(file=sys.stderr)
            raise _failure(exc, common.url, common.url_origin) from exc


def _failure(exc: Exception, url: str | None, origin: str | None = None) -> Failure:
    # an error about the database names the environment variable that chose it
    chosen_by = f"; database.url is set by {origin}" if origin else ""
    if isinstance(exc, ConfigError):
        return failure(exc.errors, exc.exit_code)
    if isinstance(exc, SchemaMismatchError):
        return failure([f"{exc}{chosen_by}"], exc.exit_code)
    if isinstance(exc, InventoryError):
        return failure([str(exc)], exc.exit_code)
    if isinstance(exc, SQLAlchemyError):
        return Failure([database_error(exc, url) + chosen_by])
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return Failure([f"{exc.strerror or exc}{where}"])
    return Failure(
        [
            f"internal error: {type(exc).__name__}: {first_line(str(exc))}; run again with "
            "--verbose for the traceback and report it"
        ]
    )


def settings_of(ctx: click.Context) -> Settings:
    common = options_of(ctx)
    settings = load_settings(
        common.config, database_url=common.database_url, explicit=common.config is not None
    )
    common.url = settings.database.url
    origin = settings.origins.get("database.url")
    common.url_origin = origin if origin and origin.startswith(ENV_PREFIX) else None
    return settings


def setup_logging(
    ctx: click.Context,
    level: int = logging.WARNING,
    *,
    rich: bool = False,
    also: tuple[str, ...] = (),
) -> None:
    """Send ``inventory`` logs (and ``also`` loggers' warnings) to stderr for this command.

    The handler is removed when the command ends, so nothing leaks into a caller's process.
    """
    verbose = options_of(ctx).verbose
    handler: logging.Handler
    if rich:
        # Live progress bars must print through this same console: a line that another
        # console writes to the terminal is erased by the bars' next refresh.
        console = options_of(ctx).console = Console(stderr=True)
        handler = RichHandler(console=console, show_path=False, show_time=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
        )
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


def stderr_console(ctx: click.Context) -> Console:
    """The console on stderr that logs print through (live progress bars share it)."""
    return options_of(ctx).console or Console(stderr=True)


def is_terminal(stream: TextIO) -> bool:
    """True when ``stream`` is an interactive terminal (tests patch this)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def console_for(stream: TextIO, content_width: int = 0) -> Console:
    if is_terminal(stream):
        return Console(file=stream)
    # Not a terminal: no wrapping or truncating at 80 columns.
    return Console(file=stream, width=max(80, content_width), no_color=True, highlight=False)


def print_items(items: list[Any], stream: TextIO | None = None) -> None:
    """Print text lines and tables; off a terminal, as wide as they need, never wrapped."""
    stream = stream or sys.stdout
    width = max((natural_width(item) for item in items), default=80)
    console = console_for(stream, width)
    for item in items:
        if isinstance(item, str):
            console.print(item, markup=False, highlight=False)
        else:
            console.print(item)


def db_module() -> ModuleType:
    """``inventory.db``, imported on first use: Alembic costs half a second at start-up."""
    from inventory import db

    return db


def alembic_error() -> type[Exception]:
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
    configuration, 75 another sync holds the writer lock (try later), 130 cancelled.

    \b
    Example:
        zt-inventory demo
        zt-inventory init --config zt-inventory.toml
        zt-inventory sync && zt-inventory status
    """

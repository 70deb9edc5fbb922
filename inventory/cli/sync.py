"""``zt-inventory sync``: one run, with progress on a terminal and a summary at the end."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichProgress

from inventory.cli import app
from inventory.cli.app import Failure, common_options, main
from inventory.display import (
    PlainProgress,
    pace_text,
    preview_items,
    preview_selection,
    summary_table,
)
from inventory.identifiers import COLUMNS
from inventory.signals import on_signals

CANCELLED_EXIT = 130  # SPEC: cancelled by SIGINT (128 + 2, as shells report it)

if TYPE_CHECKING:
    from inventory.sync import Progress, SyncResult


# --- sync --------------------------------------------------------------------------------------

PREVIEW = 20  # a dry run shows this many changes unless --preview says otherwise
MAX_PREVIEW = 10_000


class LiveProgress:
    """Progress bars on a terminal: customers, listings, devices and requests against their
    best-known totals (never shrinking), with the rate and the time left."""

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
        self.requests: TaskID = self.bars.add_task("requests", total=None, note="")

    def __enter__(self) -> LiveProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def __call__(self, p: Progress) -> None:
        bars, data = self.bars, p.to_dict()
        bars.update(self.customers, completed=p.customers_done, total=p.customers_total or None)
        bars.update(
            self.listings, completed=p.listings_done, total=p.listings_total or None, note=p.phase
        )
        bars.update(self.devices, completed=p.devices_seen, total=p.devices_expected or None)
        bars.update(
            self.requests,
            completed=p.api_requests,
            total=p.requests_expected or None,
            note=f"{p.retries} retries{pace_text(data)}",
        )


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM ask the run to stop (nothing is applied); a second SIGINT aborts."""
    stop = threading.Event()

    def handler(signum: signal.Signals) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        click.echo("Stopping: the run is abandoned, nothing is applied…", err=True)

    with on_signals(handler):
        yield stop


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
    "--partner",
    "partners",
    multiple=True,
    type=click.IntRange(1, 2**63 - 1),
    metavar="ID",
    help="Sync only this configured partner (reseller account); repeatable. Default: every "
    "[[partners]] table (or [partner] id). The others' devices are left as they were.",
)
@click.option(
    "--identifiers",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="CSV of identifiers to look up with findByIdentifier (default: sync.identifiers_file): "
    f"a header row naming any of {', '.join(COLUMNS)}, then one device a row. A malformed row "
    "is reported with its line, stored with its error and skipped (the run is partial).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option(
    "--preview",
    type=click.IntRange(0, MAX_PREVIEW),
    metavar="N",
    help=f"With --dry-run: show the first N changes (default {PREVIEW}), shared among added, "
    "changed, reappeared and removed; --json lists the same.",
)
@click.pass_context
def sync(
    ctx: click.Context,
    dry_run: bool,
    allow_mass_removal: bool,
    customers: tuple[int, ...],
    partners: tuple[int, ...],
    identifiers: str | None,
    as_json: bool,
    preview: int | None,
) -> None:
    """Run one sync: fetch the inventory from the API and apply it in one transaction.

    Exit status 0 only when the run succeeded; 1 when it failed or was partial; 75 when
    another sync holds the writer lock (try later). A dry run shows its first changes.

    \b
    Example:
        zt-inventory sync
        zt-inventory sync --dry-run --preview 50
        zt-inventory sync --dry-run --customer 1234567 --json
        zt-inventory sync --partner 1234567
    """
    from inventory.sync import run_sync

    if preview is not None and not dry_run:
        raise click.UsageError("--preview shows what a --dry-run would change; add --dry-run")
    preview = PREVIEW if preview is None else preview
    settings = app.settings_of(ctx)
    tty = app.is_terminal(sys.stderr) and not as_json
    app.setup_logging(ctx, logging.WARNING if as_json or tty else logging.INFO, rich=tty)
    kwargs: dict[str, Any] = {
        "trigger": "manual",
        "dry_run": dry_run,
        "allow_mass_removal": allow_mass_removal,
        "customers": list(customers) or None,
        "partners": list(partners) or None,
        "identifiers_file": identifiers,
        "preview_limit": preview,
    }
    with _stop_on_signals() as stop:
        if tty:
            with LiveProgress(app.stderr_console(ctx)) as live:
                result = run_sync(settings, on_progress=live, should_stop=stop.is_set, **kwargs)
        else:
            on_progress = None if as_json else PlainProgress()
            result = run_sync(settings, on_progress=on_progress, should_stop=stop.is_set, **kwargs)
    if dry_run:  # the first changes, the same in the table and in JSON
        result.preview = preview_selection(result, preview)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    elif app.is_terminal(sys.stdout):
        app.print_items([summary_table(result)])
    else:
        _print_plain_summary(result)
    if dry_run and not as_json and result.status != "failed":
        app.print_items(preview_items(result, preview))
    if result.status == "succeeded":
        return
    if result.status == "partial":
        raise Failure([f"the run was partial: {_partial_reason(result)}"])
    if result.status == "cancelled":  # SIGINT or SIGTERM: a stop, not an error
        raise Failure(["the run was stopped; nothing was applied"], CANCELLED_EXIT, "Cancelled")
    raise Failure([f"sync failed: {result.error}"])


def _partial_reason(result: SyncResult) -> str:
    """What made a run partial, and what to do: one line."""
    failed = [p for p in result.partners if p.status == "failed"]
    if failed:
        ids = ", ".join(str(p.partner_id) for p in failed)
        return (
            f"partner {ids} could not be synced ({failed[0].error}); its customers and devices "
            "were left as they were and the other partners applied; sync again"
        )
    incomplete = [x for x in result.listings if not x.complete]
    owners = [x for x in incomplete if x.kind == "find_by_owner"]
    listed = {x.partner_id for x in owners}
    vendors = [p for p in result.partners if p.status == "partial" and p.partner_id not in listed]
    if owners:
        return (
            f"{len(owners)} of {len(result.listings)} listings did not arrive whole, and their "
            "customers' devices were left as they were; see `zt-inventory status`, then sync "
            "again"
        )
    if vendors and not incomplete:
        return (
            f"the vendors of partner {vendors[0].partner_id} could not be listed and were left "
            "as they were (see the warnings); the devices were synced"
        )
    if incomplete:
        return (
            f"{incomplete[0].error} in the identifiers file, skipped (see the warnings and "
            "identifier_lookups.error); the rest was synced"
        )
    return (
        "some devices missing from their listings could not be checked before their removal, "
        "and were left as they were (see the warnings); sync again"
    )


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
    elif any(x.kind == "find_by_identifier" for x in result.listings):
        click.echo("  identifiers: 0 identifiers in the file")

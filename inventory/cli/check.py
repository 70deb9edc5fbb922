"""``zt-inventory check``: ask the configured account what the sync assumes about the API."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import click

from inventory.cli import app
from inventory.cli.app import Failure, common_options, main

if TYPE_CHECKING:
    from inventory.config import PartnerSettings


@main.command()
@common_options
@click.pass_context
def check(ctx: click.Context) -> None:
    """Check, with a few API calls, what the sync assumes about the configured account.

    One line per check, ok, FAILED or skipped, with what it found: a token and its scope, the
    partner id, customers.list's page size, whether findByOwner naming several companies (or
    Workspace accounts) counts what they count alone, what a request naming a company and a
    Workspace account answers (the sync never sends one), how many ids one request may name
    (against api.max_ids_per_request), and whether page tokens read a listing twice alike.
    Nothing is written. Exit status 1 when a check failed, 2 for bad configuration.

    \b
    Example:
        zt-inventory init && zt-inventory check && zt-inventory sync
    """
    from inventory.check import run_checks

    settings = app.settings_of(ctx)
    app.setup_logging(ctx, logging.WARNING)  # a retry storm or a long wait still shows

    def heading(partner: PartnerSettings) -> None:
        click.echo(
            f"Checking partner {partner.id} at {settings.api.endpoint} "
            f"({partner.section_types[0]}):"
        )

    report = run_checks(
        settings, on_partner=heading, on_finding=lambda finding: click.echo(finding.line())
    )
    counts = {o: sum(1 for f in report.findings if f.outcome == o) for o in ("ok", "FAILED")}
    skipped = len(report.findings) - sum(counts.values())
    click.echo(
        f"{len(report.findings)} checks in {report.requests} API requests: {counts['ok']} ok, "
        f"{counts['FAILED']} failed, {skipped} skipped"
    )
    if report.failed:
        names = ", ".join(f.name for f in report.failed)
        raise Failure([f"{len(report.failed)} of {len(report.findings)} checks failed: {names}"])

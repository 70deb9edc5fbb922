"""The long-running commands: ``schedule`` (the service), ``emulator`` and ``demo``."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

import click

from inventory.cli import app
from inventory.cli.app import Failure, common_options, main
from inventory.config import require_for_sync
from inventory.readonly import read_engine
from inventory.signals import on_signals

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
@click.option(
    "--skew",
    default=1.1,
    show_default=True,
    type=click.FloatRange(0),
    help="Zipf exponent of devices per customer (0: near-even).",
)
@click.option("--even", is_flag=True, help="Every customer gets the same share of devices.")
@click.option(
    "--unclaimed-share",
    default=0.03,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of devices with no claim.",
)
@click.option(
    "--chrome-share",
    type=click.FloatRange(0, 1),
    help="Share of devices that are Chrome OS devices (default: by model, about 0.08).",
)
@click.option(
    "--workspace-alone-share",
    type=click.FloatRange(0, 1),
    help="Claim every Chrome OS device for a customer's Workspace account: this share "
    "without the company, the rest with it.",
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
    skew: float,
    even: bool,
    unclaimed_share: float,
    chrome_share: float | None,
    workspace_alone_share: float | None,
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
    contains "gzip", as Google's are. --partners serves several reseller accounts. --skew,
    --even, --unclaimed-share, --chrome-share and --workspace-alone-share shape the fleet.

    Beside the API it answers GET /_emulator/stats (JSON: requests by method and status,
    bytes sent, arrival times) and POST /_emulator/reset; neither is part of Google's API.

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

    if app.options_of(ctx).database_url:
        raise click.UsageError(
            "--database-url does not apply to the emulator: it keeps no database; pass it to "
            "init, sync, status or sql instead"
        )
    app.setup_logging(ctx, logging.INFO)
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
    try:
        with suppress(KeyboardInterrupt), on_signals(lambda _sig: stop.set(), (signal.SIGTERM,)):
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
                skew=skew,
                even=even,
                unclaimed_share=unclaimed_share,
                chrome_share=chrome_share,
                workspace_alone_share=workspace_alone_share,
            )
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise app.failure(
            [f"port {port} on 127.0.0.1 is already in use; pick another --port (0: any free one)"],
            2,
        ) from None
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

    common = app.options_of(ctx)
    app.setup_logging(ctx)
    url = common.database_url or DEMO_URL
    common.url = url
    run_demo(
        url,
        devices=devices,
        customers=customers,
        seed=seed,
        console=app.console_for(sys.stdout, 120),
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

    settings = app.settings_of(ctx)
    app.setup_logging(ctx, logging.INFO, also=("apscheduler",))
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

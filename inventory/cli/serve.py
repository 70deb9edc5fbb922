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
    help="Devices in the generated fleet.",
)
@click.option(
    "--customers",
    default=100,
    show_default=True,
    type=click.IntRange(0, 10**6),
    help="Customers in the generated fleet.",
)
@click.option("--seed", default=7, show_default=True, type=int, help="The fleet's seed.")
@click.option(
    "--partner-id",
    default=1234567,
    show_default=True,
    type=click.IntRange(1),
    help="The reseller partner id it answers for.",
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
@click.pass_context
def emulator(
    ctx: click.Context,
    port: int,
    devices: int,
    customers: int,
    seed: int,
    partner_id: int,
    auth: str,
    key_file: str | None,
    latency: float,
    quota: int,
    quota_window: float,
    fail_every: int,
    error_rate: float,
    drop_rate: float,
    token_ttl: float,
) -> None:
    """Serve the built-in API emulator on 127.0.0.1 until Ctrl-C or SIGTERM.

    It generates a fleet (the same seed gives the same fleet) and prints the settings that
    point zt-inventory at it. Fault options make it misbehave like the real API under load.

    \b
    Example:
        zt-inventory emulator --port 8080 --devices 100000 --customers 500 --fail-every 50
        # in another shell: the three exports it prints, then
        zt-inventory init --database-url sqlite:///emulated.db
        zt-inventory sync --database-url sqlite:///emulated.db
    """
    from inventory.emulator import FaultConfig, run_server_forever

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
    credentials = str(Path(key_file).resolve()) if key_file else "anonymous"

    def ready(server: Any) -> None:
        click.echo(
            f"Emulator: {devices:,} devices, {customers:,} customers, partner {partner_id}, "
            f"serving on {server.url} (Ctrl-C stops it). Point zt-inventory at it with:"
        )
        click.echo(
            f"  export ZT_INVENTORY_PARTNER_ID={partner_id} "
            f"ZT_INVENTORY_API_ENDPOINT={server.url} "
            f"ZT_INVENTORY_AUTH_CREDENTIALS={credentials}"
        )

    stop = threading.Event()
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
        )
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

"""The long-running service: ``sync`` on the ``[schedule]`` trigger with APScheduler 3.x.

Only wiring lives here. One job, run on a one-thread executor with ``max_instances=1`` (never
two runs at once), ``coalesce=True`` (runs missed while the host slept or a run overran collapse
into one) and ``misfire_grace_time`` (a run that fires late still runs). SIGINT and SIGTERM set
a stop flag that the running sync polls through ``should_stop``: a run still fetching is
abandoned with nothing applied, a run already merging finishes; then the service exits.
Each run ends with exactly one log line. A tick that finds another instance writing the
database (two instances on one PostgreSQL database keep the service available) is skipped with
one INFO line and counted in ``zt_inventory_runs_skipped_total``, never as a failed run.
``--metrics-port`` serves Prometheus metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_SCHEDULER_STARTED, SchedulerEvent  # type: ignore[import-untyped,unused-ignore]
from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped,unused-ignore]
from apscheduler.schedulers.base import STATE_STOPPED  # type: ignore[import-untyped,unused-ignore]
from apscheduler.schedulers.blocking import BlockingScheduler  # type: ignore[import-untyped,unused-ignore]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped,unused-ignore]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped,unused-ignore]
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from inventory.errors import InventoryError, LockedError, first_line
from inventory.signals import STOP_SIGNALS, on_signals
from inventory.store import database_label, make_engine, runs, snapshot
from inventory.sync import SyncResult, run_sync

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped,unused-ignore]

    from inventory.config import Settings

log = logging.getLogger("inventory.scheduler")

JOB_ID = "sync"
MISFIRE_GRACE_S = 15 * 60  # a run that fires up to 15 min late (busy host, suspend) still runs
STOP_WAIT_S = 120.0  # how long shutdown waits for a run that is merging to finish
STATUSES = tuple(str(s) for s in runs.RunStatus if s != runs.RunStatus.RUNNING)
# a run's one log line: a stopped run is no error (SPEC: cancelled is logged as a warning)
LOG_LEVELS = {runs.RunStatus.SUCCEEDED: logging.INFO, runs.RunStatus.CANCELLED: logging.WARNING}

SyncFunction = Callable[..., SyncResult]


def build_trigger(settings: Settings) -> BaseTrigger:
    """The APScheduler trigger of ``[schedule]``: ``cron`` or ``interval_minutes``.

    ``cron`` is read in the host's local time zone, like crontab.
    """
    minutes = settings.schedule.interval_minutes
    if minutes is not None:
        return IntervalTrigger(seconds=minutes * 60)
    return CronTrigger.from_crontab(settings.schedule.cron or "0 * * * *")


def describe_trigger(settings: Settings) -> str:
    """``[schedule]`` as words for the start-up log line."""
    minutes = settings.schedule.interval_minutes
    if minutes is not None:
        return f"every {minutes:g} min"
    return f"cron {settings.schedule.cron!r}"


class Metrics:
    """The Prometheus metrics of the service, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.last_success = Gauge(
            "zt_inventory_last_success_timestamp_seconds",
            "Unix time when the last succeeded full run finished: how fresh the fleet is "
            "(a --customer run does not count; 0: none yet)",
            registry=r,
        )
        self.partner_last_success = Gauge(
            "zt_inventory_partner_last_success_timestamp_seconds",
            "Unix time when the last run that brought every listing of a partner whole finished "
            "(a full run, or a sync --partner of it)",
            ["partner"],
            registry=r,
        )
        self.last_run = Gauge(
            "zt_inventory_last_run_timestamp_seconds",
            "Unix time when the last run finished",
            registry=r,
        )
        self.last_duration = Gauge(
            "zt_inventory_last_run_duration_seconds", "Duration of the last run", registry=r
        )
        self.last_status = Gauge(
            "zt_inventory_last_run_status",
            "1 for the status of the last run (succeeded, partial or failed), else 0",
            ["status"],
            registry=r,
        )
        self.devices_current = Gauge(
            "zt_inventory_devices_current",
            "Devices in the newest snapshot (removed_at IS NULL)",
            registry=r,
        )
        self.runs = Counter(
            "zt_inventory_runs", "Runs since the service started, by status", ["status"], registry=r
        )
        self.requests = Counter(
            "zt_inventory_api_requests", "API requests sent since the service started", registry=r
        )
        self.retries = Counter(
            "zt_inventory_api_retries", "API requests retried since the service started", registry=r
        )
        self.skipped = Counter(
            "zt_inventory_runs_skipped",
            "Scheduled runs skipped because another instance was writing the database",
            registry=r,
        )
        for status in STATUSES:
            self.last_status.labels(status=status).set(0)
            self.runs.labels(status=status)

    def observe(self, result: SyncResult, devices_current: int | None) -> None:
        """Record one finished run."""
        finished = result.finished_at or datetime.now(UTC)
        status = result.status if result.status in STATUSES else "failed"
        self.last_run.set(finished.timestamp())
        self.last_duration.set(result.duration_s or 0.0)
        for name in STATUSES:
            self.last_status.labels(status=name).set(1 if name == status else 0)
        self.runs.labels(status=status).inc()
        self.requests.inc(result.api_requests)
        self.retries.inc(result.retries)
        if result.fleet_fresh:
            self.last_success.set(finished.timestamp())
        for partner_id in result.partners_fresh:
            self.partner_last_success.labels(partner=str(partner_id)).set(finished.timestamp())
        if devices_current is not None:
            self.devices_current.set(devices_current)

    def observe_failure(self, duration_s: float) -> None:
        """Record a run that could not start or crashed (no ``SyncResult``)."""
        self.last_run.set(time.time())
        self.last_duration.set(duration_s)
        for name in STATUSES:
            self.last_status.labels(status=name).set(1 if name == "failed" else 0)
        self.runs.labels(status="failed").inc()


class SyncService:
    """``sync`` on a schedule until told to stop.

    Args:
        settings: validated settings (``[schedule]`` picks the trigger).
        initial_run: run once at start-up, before the first trigger time.
        metrics_port: serve Prometheus metrics on this port (0: any free port); None: off.
        metrics_host: the address the metrics server binds.
        sync: the sync function (``run_sync``; tests inject a fake).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        initial_run: bool = True,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        sync: SyncFunction = run_sync,
    ) -> None:
        self.settings = settings
        self.initial_run = initial_run
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.metrics = Metrics()
        self.stop_event = threading.Event()
        self.runs = 0  # runs started (a crash counts; a tick skipped for the lock does not)
        self.skipped = 0
        self._sync = sync
        self._running = threading.Lock()
        self._shutdown_lock = threading.Lock()
        self._metrics_server: WSGIServer | None = None
        self.scheduler = BlockingScheduler(executors={"default": ThreadPoolExecutor(max_workers=1)})
        self.scheduler.add_listener(self._on_started, EVENT_SCHEDULER_STARTED)

    # --- one run ---------------------------------------------------------------------------

    def run_once(self) -> SyncResult | None:
        """Run one sync now and log one line about it; never raises.

        Returns:
            The run's result, or None when it could not start, crashed, or the service is
            stopping.
        """
        if self.stop_event.is_set():
            return None
        with self._running:
            started = time.monotonic()
            try:
                result = self._sync(
                    self.settings, trigger="schedule", should_stop=self.stop_event.is_set
                )
            except LockedError:
                # Another instance (or a manual sync) is writing: this one stands by, and the
                # next trigger tries again. Not a failure: no run of this instance happened.
                self.skipped += 1
                self.metrics.skipped.inc()
                log.info(
                    "skipped: another zt-inventory instance is syncing %s%s",
                    database_label(self.settings.database.url),
                    self._next_run_note(),
                )
                return None
            except InventoryError as exc:
                self.runs += 1
                log.error("scheduled sync did not run: %s", exc)
                self.metrics.observe_failure(time.monotonic() - started)
                return None
            except Exception as exc:  # the service outlives one bad run
                self.runs += 1
                log.error("scheduled sync crashed: %s", _describe(exc))
                log.debug("details", exc_info=True)
                self.metrics.observe_failure(time.monotonic() - started)
                return None
            self.runs += 1
            self.metrics.observe(result, self._devices_current())
            log.log(
                LOG_LEVELS.get(result.status, logging.ERROR),
                "%s",
                summary_line(result) + self._next_run_note(),
            )
            return result

    def _devices_current(self) -> int | None:
        try:
            engine = make_engine(self.settings.database.url)
            try:
                with engine.connect() as conn:
                    return snapshot.current_fleet_size(conn)
            finally:
                engine.dispose()
        except Exception as exc:  # metrics never stop the service
            log.debug("could not count current devices: %s", _describe(exc))
            return None

    def _next_run_note(self) -> str:
        if self.stop_event.is_set():
            return "; stopping"
        job = self.scheduler.get_job(JOB_ID) if self.scheduler.state != STATE_STOPPED else None
        when = getattr(job, "next_run_time", None)
        return f"; next run {when.isoformat(timespec='seconds')}" if when else ""

    def load_initial_metrics(self) -> None:
        """Seed the gauges from the database, so a fresh service reports the last success."""
        try:
            engine = make_engine(self.settings.database.url)
            try:
                with engine.connect() as conn:
                    last = runs.last_full_success(conn)
                    partners = runs.last_full_per_partner(conn)
            finally:
                engine.dispose()
        except Exception as exc:
            log.debug("could not read the last run: %s", _describe(exc))
            return
        if last is not None:
            self.metrics.last_success.set(last["finished_at"].timestamp())
        for partner_id, newest in partners.items():
            gauge = self.metrics.partner_last_success.labels(partner=str(partner_id))
            gauge.set(newest["finished_at"].timestamp())
        current = self._devices_current()
        if current is not None:
            self.metrics.devices_current.set(current)

    # --- the service -----------------------------------------------------------------------

    def start_metrics(self) -> int | None:
        """Start the metrics server if asked; returns the port it listens on."""
        if self.metrics_port is None:
            return None
        self.load_initial_metrics()
        server, _thread = start_http_server(
            self.metrics_port, addr=self.metrics_host, registry=self.metrics.registry
        )
        self._metrics_server = server
        port = int(server.server_port)
        log.info("metrics on http://%s:%d/metrics", self.metrics_host, port)
        return port

    def serve(self, *, install_signal_handlers: bool = True) -> None:
        """Run until :meth:`stop` (SIGINT/SIGTERM when handlers are installed)."""
        signals = STOP_SIGNALS if install_signal_handlers else ()
        with on_signals(lambda sig: self.stop(sig.name), signals):
            try:
                self._serve()
            finally:
                if self._metrics_server is not None:
                    self._metrics_server.shutdown()
                    self._metrics_server.server_close()

    def _serve(self) -> None:
        self.start_metrics()
        first = datetime.now(UTC) if self.initial_run else None
        kwargs: dict[str, Any] = {"next_run_time": first} if first else {}
        self.scheduler.add_job(
            self.run_once,
            build_trigger(self.settings),
            id=JOB_ID,
            name="zt-inventory sync",
            max_instances=1,  # never two runs at once (the writer lock would refuse it)
            coalesce=True,  # runs missed while one overran or the host slept: run once
            misfire_grace_time=MISFIRE_GRACE_S,
            **kwargs,
        )
        log.info(
            "schedule started (%s%s) on %s",
            describe_trigger(self.settings),
            ", first run now" if self.initial_run else "",
            database_label(self.settings.database.url),
        )
        if not self.stop_event.is_set():
            self.scheduler.start()
        # A run may still be on the executor's thread: let it abandon or finish.
        if self._running.acquire(timeout=STOP_WAIT_S):
            self._running.release()
        else:
            log.error("the running sync did not stop within %.0f s", STOP_WAIT_S)
        skipped = f", {self.skipped} skipped (another instance was syncing)" if self.skipped else ""
        log.info("schedule stopped after %d run(s)%s", self.runs, skipped)

    def stop(self, reason: str = "stop requested") -> None:
        """Ask the service to stop: a running sync is abandoned or finishes, then serve returns.

        Safe to call from a signal handler or any thread.
        """
        if self.stop_event.is_set():
            return
        log.info("%s: stopping (a run in progress is abandoned with nothing applied)", reason)
        self.stop_event.set()
        # Shut the scheduler down from a thread of its own: the signal handler may have
        # interrupted the scheduler's main loop while it held its locks.
        threading.Thread(target=self._shutdown_scheduler, daemon=True).start()

    def _shutdown_scheduler(self) -> None:
        with self._shutdown_lock:
            if self.scheduler.state != STATE_STOPPED:
                self.scheduler.shutdown(wait=False)

    def _on_started(self, _event: SchedulerEvent) -> None:
        # A stop that came before the scheduler was running found nothing to shut down.
        if self.stop_event.is_set():
            self._shutdown_scheduler()


def summary_line(result: SyncResult) -> str:
    """One line about a finished run, for logs."""
    run = f"run {result.run_id}" if result.run_id else "dry run" if result.dry_run else "run"
    duration = f"{result.duration_s:.1f} s" if result.duration_s is not None else "?"
    line = (
        f"sync {run} {result.status} in {duration}: {result.devices_seen} seen, "
        f"{result.devices_added} added, {result.devices_changed} changed, "
        f"{result.devices_removed} removed, {result.devices_reappeared} reappeared; "
        f"{result.api_requests} requests, {result.retries} retries"
    )
    if result.error:
        line += f"; error: {result.error}"
    return line


def _describe(exc: BaseException) -> str:
    first = first_line(str(getattr(exc, "orig", None) or exc))
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def run_schedule(
    settings: Settings,
    *,
    initial_run: bool = True,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> int:
    """Run the scheduled service in the foreground until SIGINT or SIGTERM.

    Returns:
        The number of runs started.
    """
    service = SyncService(
        settings,
        initial_run=initial_run,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )
    service.serve()
    return service.runs

"""The scheduled service: APScheduler wiring, clean stops, one log line per run, metrics.

The headline test runs ``zt-inventory schedule`` in a subprocess against an emulator served
on loopback, lets it sync at least twice on a 1.2 s interval, stops it with SIGTERM in the
middle of a slow run and checks the exit status and that the database is consistent. It is
the only test here that waits for real time; the others drive ``SyncService`` in-process.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from click.testing import CliRunner
from prometheus_client import generate_latest
from sqlalchemy import insert, text

from inventory.cli import main
from inventory.config import load_settings
from inventory.emulator import Emulator, generate_fleet, serve
from inventory.errors import ConfigError, LockedError
from inventory.models import SyncRun
from inventory.scheduler import MISFIRE_GRACE_S, SyncService, build_trigger, summary_line
from inventory.store import make_engine
from inventory.store.runs import RunScope
from inventory.sync import SyncResult
from tests.syncutil import staging_tables

ROOT = Path(__file__).resolve().parent.parent
PARTNER = 1234567


def settings_for(
    tmp_path: Path, endpoint: str = "http://127.0.0.1:9", schedule: str = "interval_minutes = 60"
) -> Any:
    config = tmp_path / "zt-inventory.toml"
    config.write_text(
        f'[partner]\nid = "{PARTNER}"\n[auth]\ncredentials = "anonymous"\n'
        f'[api]\nendpoint = "{endpoint}"\nquota_per_100s = 0\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "inventory.db"}"\n'
        f"[schedule]\n{schedule}\n",
        encoding="utf-8",
    )
    return load_settings(config, environ={})


def result(status: str = "succeeded", run_id: int = 3, error: str | None = None) -> SyncResult:
    start = datetime.now(UTC)
    return SyncResult(
        run_id, status, "schedule", False, start, start + timedelta(seconds=2),
        devices_seen=10, devices_added=4, api_requests=12, retries=1, error=error,
    )  # fmt: skip


def metric(service: SyncService, name: str) -> float:
    exposition = generate_latest(service.metrics.registry).decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", exposition, re.MULTILINE)
    assert match, f"{name} not in {exposition}"
    return float(match.group(1))


# --- triggers and one run ------------------------------------------------------------------------


def test_build_trigger(tmp_path: Path) -> None:
    interval = build_trigger(settings_for(tmp_path, schedule="interval_minutes = 0.02"))
    assert isinstance(interval, IntervalTrigger)
    assert interval.interval == timedelta(seconds=1.2)
    cron = build_trigger(settings_for(tmp_path, schedule='cron = "7 */2 * * 1-5"'))
    assert isinstance(cron, CronTrigger)
    assert str(cron.fields[cron.FIELD_NAMES.index("minute")]) == "7"
    assert str(cron.fields[cron.FIELD_NAMES.index("hour")]) == "*/2"


def test_a_run_logs_one_line_and_updates_the_metrics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[dict[str, Any]] = []

    def fake(_settings: object, **kwargs: Any) -> SyncResult:
        calls.append(kwargs)
        return result()

    service = SyncService(settings_for(tmp_path), sync=fake)
    with caplog.at_level(logging.INFO, logger="inventory.scheduler"):
        assert service.run_once() is not None
    assert calls[0]["trigger"] == "schedule"
    assert calls[0]["should_stop"]() is False
    lines = [r.getMessage() for r in caplog.records if r.name == "inventory.scheduler"]
    assert len(lines) == 1
    assert lines[0].startswith("sync run 3 succeeded in 2.0 s: 10 seen, 4 added")
    assert metric(service, "zt_inventory_last_run_duration_seconds") == 2.0
    assert metric(service, "zt_inventory_last_success_timestamp_seconds") > 0
    assert metric(service, 'zt_inventory_last_run_status{status="succeeded"}') == 1
    assert metric(service, 'zt_inventory_runs_total{status="succeeded"}') == 1
    assert metric(service, "zt_inventory_api_requests_total") == 12
    assert metric(service, "zt_inventory_api_retries_total") == 1


def test_a_failed_run_keeps_the_last_success(tmp_path: Path) -> None:
    outcomes = iter([result(), result("failed", 4, "HTTP 503")])
    service = SyncService(settings_for(tmp_path), sync=lambda *_a, **_k: next(outcomes))
    service.run_once()
    success = metric(service, "zt_inventory_last_success_timestamp_seconds")
    service.run_once()
    assert metric(service, "zt_inventory_last_success_timestamp_seconds") == success
    assert metric(service, 'zt_inventory_last_run_status{status="failed"}') == 1
    assert metric(service, 'zt_inventory_last_run_status{status="succeeded"}') == 0
    assert "error: HTTP 503" in summary_line(result("failed", 4, "HTTP 503"))


def test_only_a_full_run_moves_the_last_success(tmp_path: Path) -> None:
    customers = result(run_id=5)
    customers.scope, customers.scope_customer_ids = RunScope.CUSTOMERS, [42]
    service = SyncService(settings_for(tmp_path), sync=lambda *_a, **_k: customers)
    service.run_once()
    assert metric(service, "zt_inventory_last_success_timestamp_seconds") == 0
    assert metric(service, 'zt_inventory_last_run_status{status="succeeded"}') == 1


def test_a_fresh_service_reports_the_newest_full_success(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    assert (
        CliRunner().invoke(main, ["init", "--database-url", settings.database.url]).exit_code == 0
    )
    full_at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    engine = make_engine(settings.database.url)
    with engine.begin() as conn:
        for scope, finished in (("full", full_at), ("customers", full_at + timedelta(hours=1))):
            conn.execute(
                insert(SyncRun).values(
                    started_at=finished, finished_at=finished, status="succeeded",
                    trigger="schedule", scope=scope,
                )
            )  # fmt: skip
    engine.dispose()
    service = SyncService(settings)
    service.load_initial_metrics()
    assert metric(service, "zt_inventory_last_success_timestamp_seconds") == full_at.timestamp()


@pytest.mark.parametrize("error", [ConfigError("bad key file"), RuntimeError("boom")])
def test_a_run_that_raises_is_logged_and_the_service_lives_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    def fake(*_args: object, **_kwargs: object) -> SyncResult:
        raise error

    service = SyncService(settings_for(tmp_path), sync=fake)
    with caplog.at_level(logging.INFO, logger="inventory.scheduler"):
        assert service.run_once() is None
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert str(error) in line
    assert metric(service, 'zt_inventory_runs_total{status="failed"}') == 1


def test_a_tick_that_finds_another_instance_writing_is_skipped_not_failed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The standby of two instances on one database: one INFO line, its own counter, and the
    run metrics as they were."""

    def locked(*_args: object, **_kwargs: object) -> SyncResult:
        raise LockedError("another zt-inventory sync is writing …")

    settings = settings_for(tmp_path)
    service = SyncService(settings, sync=locked)
    with caplog.at_level(logging.INFO, logger="inventory.scheduler"):
        assert service.run_once() is None
        assert service.run_once() is None
    where = settings.database.url
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"skipped: another zt-inventory instance is syncing {where}"),
    ] * 2
    assert metric(service, "zt_inventory_runs_skipped_total") == 2
    for status in ("succeeded", "partial", "failed"):
        assert metric(service, f'zt_inventory_runs_total{{status="{status}"}}') == 0
        assert metric(service, f'zt_inventory_last_run_status{{status="{status}"}}') == 0
    assert metric(service, "zt_inventory_last_run_timestamp_seconds") == 0
    assert (service.runs, service.skipped) == (0, 2)


def test_no_run_starts_once_stopping(tmp_path: Path) -> None:
    called: list[bool] = []
    service = SyncService(settings_for(tmp_path), sync=lambda *_a, **_k: called.append(True))
    service.stop_event.set()
    assert service.run_once() is None
    assert called == []


# --- the scheduler loop in-process ---------------------------------------------------------------


def test_initial_run_then_stop_during_a_run(tmp_path: Path) -> None:
    seen: list[bool] = []

    def fake(_settings: object, *, should_stop: Any, **_kwargs: Any) -> SyncResult:
        seen.append(should_stop())
        service.stop("test")  # as SIGTERM would, while this run is in progress
        seen.append(should_stop())  # the run now sees it must stop
        return result("failed", 1, "cancelled")

    service = SyncService(settings_for(tmp_path), sync=fake, metrics_port=0)
    service.serve(install_signal_handlers=False)  # returns once the run has ended
    assert seen == [False, True]
    assert service.runs == 1
    job = service.scheduler.get_job("sync")
    assert job is None or job.max_instances == 1


def test_no_initial_run_waits_for_the_trigger(tmp_path: Path) -> None:
    service = SyncService(
        settings_for(tmp_path), initial_run=False, sync=lambda *_a, **_k: pytest.fail("ran")
    )
    started = threading.Event()
    service.scheduler.add_listener(lambda _e: started.set(), EVENT_SCHEDULER_STARTED)
    thread = threading.Thread(target=service.serve, kwargs={"install_signal_handlers": False})
    thread.start()
    try:
        assert started.wait(10)
        job = service.scheduler.get_job("sync")
        assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (
            1,
            True,
            MISFIRE_GRACE_S,
        )
        assert job.next_run_time > datetime.now(UTC) + timedelta(minutes=59)
    finally:
        service.stop("test")
        thread.join(10)
    assert not thread.is_alive()
    assert service.runs == 0


def test_a_stop_before_start_returns_at_once(tmp_path: Path) -> None:
    service = SyncService(settings_for(tmp_path), sync=lambda *_a, **_k: pytest.fail("ran"))
    service.stop("test")
    service.serve(install_signal_handlers=False)
    assert service.runs == 0


# --- the command ---------------------------------------------------------------------------------


def test_schedule_needs_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings_for(tmp_path)
    result = CliRunner().invoke(main, ["schedule"])
    assert result.exit_code == 2
    assert "run `zt-inventory init` first" in result.stderr


def test_schedule_reports_a_busy_metrics_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    monkeypatch.chdir(tmp_path)
    settings_for(tmp_path)
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["schedule", "--metrics-port", str(port)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith(
        f"Error: cannot serve metrics on 127.0.0.1:{port}: "
    )


# --- the real thing, in a subprocess -------------------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[tuple[Emulator, str]]:
    fleet = generate_fleet(devices=200, customers=6, seed=11, partner_id=PARTNER)
    emu = Emulator(fleet, auth="anonymous")
    with serve(emu) as server:
        yield emu, server.url


def _lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def _wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def test_schedule_runs_on_its_interval_and_stops_cleanly_on_sigterm(
    tmp_path: Path, emulator: tuple[Emulator, str]
) -> None:
    emu, url = emulator
    settings = settings_for(tmp_path, endpoint=url, schedule="interval_minutes = 0.02")
    db_url = settings.database.url
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--database-url", db_url]).exit_code == 0
    engine = make_engine(db_url)

    def scalar(sql: str) -> Any:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()

    proc = subprocess.Popen(
        [sys.executable, "-m", "inventory", "schedule", "--config", str(settings.source),
         "--metrics-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True)
    reader.start()
    log: list[str] = []
    try:

        def metrics_port() -> int | None:
            while not lines.empty():
                log.append(lines.get())
                found = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", log[-1])
                if found:
                    return int(found.group(1))
            return None

        port = _wait_for("the metrics server", metrics_port)
        _wait_for(
            "two scheduled runs",
            lambda: scalar("SELECT COUNT(*) FROM sync_runs WHERE status = 'succeeded'") >= 2,
        )
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        devices = scalar("SELECT COUNT(*) FROM devices WHERE removed_at IS NULL")
        assert devices > 0
        assert re.search(r"^zt_inventory_last_success_timestamp_seconds [1-9]", metrics, re.M)
        assert f"zt_inventory_devices_current {float(devices)}" in metrics
        assert re.search(r'^zt_inventory_runs_total\{status="succeeded"\} [1-9]', metrics, re.M)
        assert re.search(r"^zt_inventory_api_requests_total [1-9]", metrics, re.M)
        assert "zt_inventory_last_run_duration_seconds" in metrics

        # Slow the API down so that the next run is still fetching when SIGTERM arrives.
        snapshot = scalar("SELECT COUNT(*) FROM device_versions")
        emu.faults.latency_s = 0.4
        emu.move_device(
            int(next(d for d in emu.iter_devices() if d.get("claims"))["deviceId"]),
            int(list(emu.iter_customers())[-1]["companyId"]),
        )
        _wait_for("a run in progress", lambda: scalar(
            "SELECT COUNT(*) FROM sync_runs WHERE status = 'running'"
        ))  # fmt: skip
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
        emu.faults.latency_s = 0.0
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    while not lines.empty():
        log.append(lines.get())
    text_log = "".join(log)
    assert "Traceback" not in text_log
    # consistent: nothing half-applied, nothing left running, staging empty
    assert scalar("SELECT COUNT(*) FROM sync_runs WHERE status = 'running'") == 0
    last = scalar("SELECT error FROM sync_runs ORDER BY run_id DESC LIMIT 1")
    assert last is not None
    assert "cancelled" in last
    assert scalar("SELECT COUNT(*) FROM device_versions") == snapshot
    assert scalar("SELECT COUNT(*) FROM devices WHERE removed_at IS NULL") == devices
    assert staging_tables(engine) == []
    # one log line per run
    runs = scalar("SELECT COUNT(*) FROM sync_runs")
    assert (
        len(re.findall(r" sync run \d+ (succeeded|failed|partial|cancelled) in ", text_log)) == runs
    )
    assert "schedule stopped after" in text_log
    engine.dispose()


def test_each_partners_last_full_run_is_a_metric(tmp_path: Path) -> None:
    """A run whose second partner failed moves the first partner's gauge, not the second's,
    and not the fleet's."""
    from inventory.store.runs import PartnerResult

    whole = result(run_id=6)
    whole.partners = [PartnerResult(1, "succeeded"), PartnerResult(2, "succeeded")]
    half = result("partial", run_id=7)
    half.finished_at = whole.started_at + timedelta(hours=1)
    half.partners = [PartnerResult(1, "succeeded"), PartnerResult(2, "failed", error="403")]
    outcomes = iter([whole, half])
    service = SyncService(settings_for(tmp_path), sync=lambda *_a, **_k: next(outcomes))
    service.run_once()
    first = metric(service, 'zt_inventory_partner_last_success_timestamp_seconds{partner="2"}')
    service.run_once()
    gauge = "zt_inventory_partner_last_success_timestamp_seconds"
    assert metric(service, f'{gauge}{{partner="1"}}') == half.finished_at.timestamp()
    assert metric(service, f'{gauge}{{partner="2"}}') == first
    assert metric(service, "zt_inventory_last_success_timestamp_seconds") == first

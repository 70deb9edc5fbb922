"""Transient API faults: the result equals the emulator's fleet exactly, and every retry counts.

SPEC "What a sync guarantees" 5: 429, 500, 502, 503, 504, connection errors and timeouts are
retried with backoff, honouring Retry-After; a run whose retries run out fails and applies
nothing. Faults come from a seeded ``Flaky`` transport (every kind, with and without
Retry-After, in delta-seconds and HTTP-date form), from the emulator's own fault injection
(compared with its request log), and over a loopback socket with real timeouts and drops.
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from inventory.emulator import Emulator, FaultConfig, generate_fleet, serve
from inventory.store import make_engine
from inventory.sync import run_sync
from tests.helpers.reliability import fresh_database, owned_by
from tests.syncutil import (
    FakeSleep,
    assert_equals_fleet,
    expected_devices,
    settings_for,
    snapshot,
    staging_tables,
    sync,
)

RETRY_AFTER_S = 30  # far above the first backoff steps (0.5 s * 2**attempt), so it shows
FAULT_RATE = 0.2
STATUS_KINDS = ("500", "502", "503", "504", "429", "429-ra", "503-ra", "429-date")
TRANSPORT_KINDS = ("drop", "connect", "read-timeout", "connect-timeout", "pool-timeout")


class Flaky(httpx.BaseTransport):
    """Answers a seeded ``rate`` of API calls with a fault, cycling through ``kinds``.

    ``slow_s`` delays every call that passes (really sleeps: a slow, but not too slow, API).
    The token endpoint is left alone. ``injected`` counts the faults by kind.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport,
        kinds: tuple[str, ...],
        *,
        rate: float = FAULT_RATE,
        seed: int = 0,
        slow_s: float = 0.0,
    ) -> None:
        self.inner = inner
        self.kinds = kinds
        self.rate = rate
        self.rng = random.Random(seed)
        self.slow_s = slow_s
        self.injected: Counter[str] = Counter()
        self.passed = 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return self.inner.handle_request(request)
        with self.lock:
            kind = None
            if self.rng.random() < self.rate:
                kind = self.kinds[sum(self.injected.values()) % len(self.kinds)]
                self.injected[kind] += 1
            else:
                self.passed += 1
        if kind is None:
            if self.slow_s:
                time.sleep(self.slow_s)
            return self.inner.handle_request(request)
        return fault(kind, request)


def fault(kind: str, request: httpx.Request) -> httpx.Response:
    """The response (or exception) of one fault ``kind``."""
    if kind == "drop":
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
    if kind == "connect":
        raise httpx.ConnectError("[Errno 111] Connection refused")
    if kind == "read-timeout":
        raise httpx.ReadTimeout("The read operation timed out")
    if kind == "connect-timeout":
        raise httpx.ConnectTimeout("timed out")
    if kind == "pool-timeout":
        raise httpx.PoolTimeout("no connection available")
    status = int(kind.split("-")[0])
    headers = {}
    if kind.endswith("-ra"):
        headers["Retry-After"] = str(RETRY_AFTER_S)
    elif kind.endswith("-date"):
        when = datetime.now(UTC) + timedelta(seconds=RETRY_AFTER_S + 10)
        headers["Retry-After"] = email.utils.format_datetime(when, usegmt=True)
    canonical = {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}.get(status, "INTERNAL")
    body = {"error": {"code": status, "message": "injected", "status": canonical}}
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.fixture
def emu() -> Emulator:
    return Emulator(generate_fleet(devices=400, customers=20, seed=31, partner_id=7_000_000_031))


def _run_row(engine: Engine, run_id: int | None) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM sync_runs WHERE run_id = :r"), {"r": run_id})
        return dict(row.mappings().one())


def _staging_rows(engine: Engine) -> int:
    return len(staging_tables(engine))


@pytest.mark.parametrize(
    ("kinds", "slow_s"),
    [
        (STATUS_KINDS, 0.0),
        (TRANSPORT_KINDS, 0.0),
        (STATUS_KINDS + TRANSPORT_KINDS, 0.002),
    ],
    ids=["statuses", "connections-and-timeouts", "everything-and-slow"],
)
def test_a_fifth_of_calls_failing_ends_in_the_exact_fleet(
    emu: Emulator, engine: Engine, db_url: str, kinds: tuple[str, ...], slow_s: float
) -> None:
    flaky = Flaky(emu.transport(), kinds, seed=len(kinds), slow_s=slow_s)
    sleep = FakeSleep()
    settings = settings_for(emu, db_url, api={"page_size": 5, "max_retries": 8})
    result = sync(emu, settings, transport=flaky, sleep=sleep)
    assert result.ok, result.error
    assert_equals_fleet(engine, expected_devices(emu))
    injected = sum(flaky.injected.values())
    assert set(flaky.injected) == set(kinds), "every kind of fault must have happened"
    share = injected / (injected + flaky.passed)
    assert 0.12 < share < 0.3, share
    # Every fault is one retry, counted in the result and in sync_runs.
    assert result.retries == injected
    assert _run_row(engine, result.run_id)["retries"] == injected
    assert result.api_requests == injected + flaky.passed
    # Retry-After (delta-seconds or HTTP date) is honoured; without it, backoff stays short.
    with_header = sum(n for k, n in flaky.injected.items() if k.endswith(("-ra", "-date")))
    assert len(sleep.calls) == injected
    assert sum(1 for s in sleep.calls if s >= RETRY_AFTER_S - 1) == with_header


def test_the_emulators_faults_are_each_one_retry(
    emu: Emulator, engine: Engine, db_url: str
) -> None:
    """500/503 (error_rate), drops (drop_rate) and 429 + Retry-After (fail_every): ~20 %."""
    emu.faults = FaultConfig(error_rate=0.1, drop_rate=0.05, fail_every=20, retry_after_s=5, seed=9)
    sleep = FakeSleep()
    result = sync(emu, settings_for(emu, db_url, api={"page_size": 8}), sleep=sleep)
    assert result.ok, result.error
    assert_equals_fleet(engine, expected_devices(emu))
    faulted = Counter(r.fault for r in emu.request_log if r.fault)
    assert set(faulted) == {"error_rate", "drop_rate", "fail_every"}
    total = sum(faulted.values())
    assert 0.1 < total / len(emu.request_log) < 0.35
    assert result.retries == total == _run_row(engine, result.run_id)["retries"]
    assert result.api_requests == len(emu.request_log)
    assert sum(1 for s in sleep.calls if s >= 5) >= faulted["fail_every"]


@pytest.mark.slow
def test_slow_responses_and_real_timeouts_over_loopback(engine: Engine, db_url: str) -> None:
    """Every response is slow; every 6th is slower than api.timeout_s and is retried."""
    slow = Counter[str]()
    lock = threading.Lock()

    def latency(_seconds: float) -> None:
        with lock:
            slow["calls"] += 1
            too_slow = slow["calls"] % 6 == 0
            slow["timeouts"] += too_slow
        time.sleep(1.6 if too_slow else 0.01)

    emu = Emulator(
        generate_fleet(devices=400, customers=10, seed=5, partner_id=7_000_000_005),
        faults=FaultConfig(latency_s=1.0),
        sleep=latency,
    )
    with serve(emu, host="127.0.0.1", port=0) as server:
        settings = settings_for(
            emu, db_url, endpoint=server.url, api={"page_size": 50, "timeout_s": 0.8}
        )
        result = run_sync(settings, sleep=FakeSleep())
    assert result.ok, result.error
    assert_equals_fleet(engine, expected_devices(emu))
    assert slow["timeouts"] >= 2
    assert result.retries == slow["timeouts"]
    assert _run_row(engine, result.run_id)["retries"] == slow["timeouts"]


@pytest.mark.slow
def test_dropped_connections_over_loopback(engine: Engine, db_url: str) -> None:
    emu = Emulator(
        generate_fleet(devices=400, customers=10, seed=6, partner_id=7_000_000_006),
        faults=FaultConfig(drop_rate=0.2, seed=4),
    )
    with serve(emu, host="127.0.0.1", port=0) as server:
        settings = settings_for(emu, db_url, endpoint=server.url, api={"page_size": 20})
        result = run_sync(settings, sleep=FakeSleep())
    assert result.ok, result.error
    assert_equals_fleet(engine, expected_devices(emu))
    drops = sum(1 for r in emu.request_log if r.fault == "drop_rate")
    assert drops >= 3
    assert result.retries == drops


class FailOnePage(httpx.BaseTransport):
    """Every attempt at the 3rd token-carrying page of one customer's listing fails."""

    def __init__(self, inner: httpx.BaseTransport, company: int, kind: str) -> None:
        self.inner = inner
        self.company = str(company)
        self.kind = kind
        self.tokens: list[str] = []
        self.attempts = 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(":findByOwner"):
            body = json.loads(request.content)
            token = body.get("pageToken")
            if self.company in body.get("customerId", []) and token:
                with self.lock:
                    if token not in self.tokens:
                        self.tokens.append(token)
                    doomed = self.tokens.index(token) == 2
                    self.attempts += doomed
                if doomed:
                    return fault(self.kind, request)
        return self.inner.handle_request(request)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Emulator, Engine, str]]:
    """One database and emulator for cases that each start by catching up (fewer PG setups)."""
    with fresh_database(request.param, tmp_path_factory.mktemp("faults")) as url:
        engine = make_engine(url)
        fleet = generate_fleet(devices=400, customers=20, seed=31, partner_id=7_000_000_031)
        try:
            yield Emulator(fleet), engine, url
        finally:
            engine.dispose()


@pytest.mark.parametrize("kind", ["503", "429-ra", "drop", "read-timeout"])
def test_retries_exhausted_mid_listing_leave_its_owners_as_they_were(
    shared: tuple[Emulator, Engine, str], kind: str
) -> None:
    """A listing that exhausts its retries is incomplete: its owners' devices stay as they
    were, the other listings apply, and the run is partial (SPEC v0.2 "Runs")."""
    emu, engine, db_url = shared
    settings = settings_for(emu, db_url, api={"page_size": 20, "max_retries": 3})
    assert sync(emu, settings).ok
    big = max(
        (int(c["companyId"]) for c in emu.iter_customers()), key=lambda c: len(owned_by(emu, c))
    )
    owned = owned_by(emu, big)
    assert len(owned) > 100
    before = {d: r for d, r in _raw(engine).items() if d in set(owned)}
    emu.set_metadata(owned[-1], {"k": "v"})  # in the listing that breaks: not applied
    other = next(int(c["companyId"]) for c in emu.iter_customers() if int(c["companyId"]) != big)
    added = emu.add_device(company_id=other)  # applied, unless other shares big's listing
    flaky = FailOnePage(emu.transport(), big, kind)
    sleep = FakeSleep()
    result = sync(emu, settings, transport=flaky, sleep=sleep)
    assert result.status == "partial", result.error
    broken = [x for x in result.listings if not x.complete]
    assert len(broken) == 1
    assert big in broken[0].company_ids
    assert "gave up after 4 attempts" in (broken[0].error or ""), broken[0].error
    assert flaky.attempts == 4
    after = _raw(engine)
    assert {d: after.get(d) for d in owned} == before
    assert staging_tables(engine) == []
    row = _run_row(engine, result.run_id)
    assert row["status"] == "partial"
    assert row["retries"] >= 3
    if kind.endswith("-ra"):
        assert sum(1 for s in sleep.calls if s >= RETRY_AFTER_S) == 3
    assert (added in after) == (other not in broken[0].company_ids)
    # The next run, without faults, applies everything.
    assert sync(emu, settings).ok
    assert_equals_fleet(engine, expected_devices(emu))


def _raw(engine: Engine) -> dict[int, Any]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT device_id, raw FROM devices WHERE removed_at IS NULL"))
        return {r[0]: r[1] for r in rows}


def test_every_call_failing_fails_fast_and_applies_nothing(
    emu: Emulator, engine: Engine, db_url: str
) -> None:
    settings = settings_for(emu, db_url, api={"max_retries": 2})
    assert sync(emu, settings).ok
    before = snapshot(engine)
    emu.set_metadata(next(iter(expected_devices(emu))), {"changed": "yes"})
    flaky = Flaky(emu.transport(), ("503-ra", "drop", "500"), rate=1.0)
    result = bounded_sync(emu, settings, flaky)
    assert result.status == "failed"
    assert "gave up after 3 attempts" in (result.error or "")
    assert sum(flaky.injected.values()) == 3  # customers.list: three attempts, then stop
    assert snapshot(engine) == before
    assert _staging_rows(engine) == 0


def bounded_sync(emu: Emulator, settings: Any, transport: httpx.BaseTransport) -> Any:
    from tests.helpers.reliability import bounded

    return bounded(lambda: sync(emu, settings, transport=transport), 60)


def test_a_dropped_token_request_is_retried(engine: Engine, db_url: str, tmp_path: Path) -> None:
    from inventory.emulator import write_service_account_key

    emu = Emulator(
        generate_fleet(devices=100, customers=5, seed=3, partner_id=7_000_000_003),
        auth="token",
        faults=FaultConfig(faults_on_token=True, script=["drop"]),
    )
    key = write_service_account_key(tmp_path / "key.json", "http://emulator.test/token")
    result = sync(emu, settings_for(emu, db_url, credentials=str(key)))
    assert result.ok, result.error
    assert result.retries == 1
    assert_equals_fleet(engine, expected_devices(emu))

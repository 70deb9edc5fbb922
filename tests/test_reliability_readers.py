"""Readers never see a half-written snapshot (SPEC "What a sync guarantees" 1).

A writer thread runs a loop of syncs; before each it moves a block of devices between two
customers (the direction alternates), removes some, adds some and changes metadata, and records
what the snapshot of that run must look like. A reader on its own connection (SQLite: WAL;
PostgreSQL: a REPEATABLE READ transaction per check) checks, in one read transaction, that
``sync_runs`` and the data agree: the per-customer counts of ``v_customer_device_counts`` are
exactly those expected after the newest succeeded run, and add up to ``v_devices``, the current
rows of ``devices``, the open versions and the zero-touch claims. Per-customer counts only ever
take the "before" or the "after" value when the merge is atomic; a negative control shows that
the reader does catch a merge whose statements commit one by one.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError

from inventory.emulator import Emulator, generate_fleet
from inventory.store import make_engine
from inventory.sync import merge
from tests.helpers.reliability import owned_by
from tests.syncutil import (
    assert_equals_fleet,
    commit_now,
    expected_devices,
    settings_for,
    sync,
)

ZT = "SECTION_TYPE_ZERO_TOUCH"
ROUNDS = 5
MOVED_PER_ROUND = 120


def _expected_counts(emu: Emulator) -> dict[int, int]:
    counts = {int(c["companyId"]): 0 for c in emu.iter_customers()}
    for device in expected_devices(emu).values():
        for claim in device.get("claims", []):
            if claim.get("sectionType") == ZT:
                counts[int(claim["ownerCompanyId"])] += 1
    return counts


class Writer(threading.Thread):
    """Syncs ``rounds`` times, mutating the fleet before each run after the first."""

    def __init__(self, emu: Emulator, db_url: str, rounds: int) -> None:
        super().__init__(daemon=True)
        self.emu = emu
        self.settings = settings_for(emu, db_url, sync={"max_removed_fraction": 1.0})
        self.rounds = rounds
        # succeeded runs -> (per-customer counts, current devices) that snapshot must show
        self.expected: dict[int, tuple[dict[int, int], int]] = {0: ({}, 0)}
        self.error: BaseException | None = None
        self.done = threading.Event()
        counts = _expected_counts(emu)
        big = sorted(counts, key=lambda c: -counts[c])
        self.a, self.b, self.c = big[0], big[1], big[2]

    def mutate(self, round_no: int) -> None:
        emu = self.emu
        source, target = (self.a, self.b) if round_no % 2 else (self.b, self.a)
        for device in owned_by(emu, source)[:MOVED_PER_ROUND]:
            emu.move_device(device, target)
        for device in owned_by(emu, self.c)[:2]:
            emu.remove_device(device)
        for _ in range(3):
            emu.add_device(company_id=self.c)
        for device in owned_by(emu, target)[:20]:
            emu.set_metadata(device, {"round": str(round_no)})

    def run(self) -> None:
        try:
            for round_no in range(1, self.rounds + 1):
                if round_no > 1:
                    self.mutate(round_no)
                self.expected[round_no] = (
                    _expected_counts(self.emu),
                    len(expected_devices(self.emu)),
                )
                result = sync(self.emu, self.settings)
                assert result.ok, result.error
        except BaseException as exc:  # reported on the test's thread
            self.error = exc
        finally:
            self.done.set()


@pytest.fixture
def emu() -> Emulator:
    fleet = generate_fleet(
        devices=1000, customers=6, seed=51, partner_id=7_000_000_051, workspace_share=0.0
    )
    return Emulator(fleet)


@contextlib.contextmanager
def _read_transaction(engine: Engine) -> Iterator[Connection]:
    if engine.dialect.name == "postgresql":
        options = {"isolation_level": "REPEATABLE READ"}
        with engine.connect().execution_options(**options) as conn, conn.begin():
            yield conn
    else:
        with engine.begin() as conn:  # BEGIN: one WAL snapshot for every statement below
            yield conn


def check_once(engine: Engine, expected: dict[int, tuple[dict[int, int], int]]) -> tuple[int, str]:
    """One consistent read; returns (succeeded runs, problem or "")."""
    with _read_transaction(engine) as conn:
        runs = conn.execute(text("SELECT COUNT(*) FROM sync_runs WHERE status = 'succeeded'"))
        k = int(runs.scalar_one())
        counts = {
            int(r[0]): int(r[1])
            for r in conn.execute(text("SELECT company_id, devices FROM v_customer_device_counts"))
        }
        view = conn.execute(text("SELECT COUNT(*) FROM v_devices")).scalar_one()
        current = conn.execute(
            text("SELECT COUNT(*) FROM devices WHERE removed_at IS NULL")
        ).scalar_one()
        open_versions = conn.execute(
            text("SELECT COUNT(*) FROM device_versions WHERE valid_to IS NULL AND NOT removed")
        ).scalar_one()
        claims = conn.execute(
            text("SELECT COUNT(*) FROM device_claims WHERE section_type = :s"), {"s": ZT}
        ).scalar_one()
    want = expected.get(k)
    if want is None:
        return k, f"run {k} succeeded before its expectation was recorded"
    want_counts, want_total = want
    if counts != want_counts:
        diff = {c: (counts.get(c), want_counts.get(c)) for c in set(counts) | set(want_counts)}
        diff = {c: v for c, v in diff.items() if v[0] != v[1]}
        return k, f"after {k} runs, per-customer counts (seen, expected) differ: {diff}"
    totals = {
        "sum of v_customer_device_counts": sum(counts.values()),
        "v_devices": view,
        "current devices": current,
        "open versions": open_versions,
        "zero-touch claims": claims,
    }
    if set(totals.values()) != {want_total}:
        return k, f"after {k} runs, expected {want_total} devices everywhere: {totals}"
    return k, ""


def read_while_writing(db_url: str, writer: Writer) -> tuple[int, Counter[int], list[str]]:
    engine = make_engine(db_url)
    seen: Counter[int] = Counter()
    problems: list[str] = []
    checks = 0
    try:
        writer.start()
        while not writer.done.is_set() or checks == 0:
            k, problem = check_once(engine, writer.expected)
            checks += 1
            seen[k] += 1
            if problem and len(problems) < 5:
                problems.append(problem)
        writer.join()
        k, problem = check_once(engine, writer.expected)  # and after the last run
        seen[k] += 1
        if problem:
            problems.append(problem)
    finally:
        engine.dispose()
    return checks, seen, problems


@pytest.mark.slow
def test_a_reader_never_sees_a_half_written_snapshot(
    emu: Emulator, engine: Engine, db_url: str
) -> None:
    writer = Writer(emu, db_url, ROUNDS)
    checks, seen, problems = read_while_writing(db_url, writer)
    assert writer.error is None, writer.error
    assert problems == []
    assert checks >= 30, "the reader must have checked many times while the syncs ran"
    assert len(seen) >= ROUNDS // 2, f"the reader must have seen several snapshots: {seen}"
    assert max(seen) == ROUNDS
    assert_equals_fleet(engine, expected_devices(emu))
    # The moves really do change the counts each round: a mix would have shown.
    firsts = {k: writer.expected[k][0].get(writer.a) for k in range(1, ROUNDS + 1)}
    assert len(set(firsts.values())) == 2


@pytest.mark.slow
def test_the_reader_catches_a_merge_that_is_not_atomic(
    emu: Emulator, engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Negative control: each merge statement in its own transaction, a pause between them."""
    original = merge.apply

    def split_apply(conn: Connection, run_id: int, *rest: Any) -> None:
        class OwnTransactions:
            def execute(self, *args: Any, **kwargs: Any) -> Any:
                result = conn.execute(*args, **kwargs)
                commit_now(conn)
                time.sleep(0.03)
                return result

        original(OwnTransactions(), run_id, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(merge, "apply", split_apply)
    writer = Writer(emu, db_url, 3)
    _checks, _seen, problems = read_while_writing(db_url, writer)
    assert writer.error is None, writer.error
    assert problems, "a non-atomic merge must be caught by the reader"


READER_TIMEOUT_S = 0.2  # a blocked reader fails fast instead of waiting for the commit


def _counts_now(engine: Engine, db_url: str) -> dict[int, int]:
    """Per-customer counts read at once, by a reader that will not wait for a lock."""
    sql = "SELECT company_id, devices FROM v_customer_device_counts"
    if engine.dialect.name == "sqlite":
        # as BI tools and the sqlite3 shell open the file: their own connection and timeout
        path = make_url(db_url).database
        reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=READER_TIMEOUT_S)
        try:
            return {int(c): int(n) for c, n in reader.execute(sql)}
        except sqlite3.OperationalError as exc:
            pytest.fail(f"the reader was blocked by the writer's open transaction: {exc}")
        finally:
            reader.close()
    timeout = int(READER_TIMEOUT_S * 1000)
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SET lock_timeout = {timeout}")
        conn.exec_driver_sql(f"SET statement_timeout = {10 * timeout}")
        try:
            return {int(c): int(n) for c, n in conn.execute(text(sql))}
        except OperationalError as exc:
            pytest.fail(f"the reader was blocked by the writer's open transaction: {exc}")


def test_a_reader_is_not_blocked_while_the_merge_transaction_is_open(
    emu: Emulator, engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC guarantee 1, "readers are never blocked": the sync is held inside its merge
    transaction, every change written but not committed, and a reader with a short busy
    timeout must read the previous snapshot at once.

    The writer's page cache is made small, so that its changes go to the database file before
    the commit, as a large merge's do: in SQLite's rollback-journal mode that takes the
    exclusive lock and shuts readers out until the commit; in WAL mode they go to the WAL
    and readers go on reading.
    """
    writer = Writer(emu, db_url, rounds=1)
    assert sync(emu, writer.settings).ok
    before = _expected_counts(emu)
    writer.mutate(2)
    after = _expected_counts(emu)
    assert after != before
    inside, release = threading.Event(), threading.Event()
    original = merge.apply

    def held_open(conn: Connection, run_id: int, *rest: Any) -> None:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA cache_size = 10")  # pages: the changes spill
        original(conn, run_id, *rest)
        inside.set()
        assert release.wait(30), "the test never let the merge commit"

    monkeypatch.setattr(merge, "apply", held_open)
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(sync(emu, writer.settings)))
    thread.start()
    try:
        assert inside.wait(60), "the sync never reached its merge"
        seen = _counts_now(engine, db_url)
    finally:
        release.set()
        thread.join(60)
    assert seen == before
    assert len(results) == 1
    assert results[0].ok, results[0].error
    assert _counts_now(engine, db_url) == after

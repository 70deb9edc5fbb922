"""Crash safety: a sync killed with SIGKILL anywhere leaves the old snapshot or the new one.

Each case syncs the crash fleet, changes it (tests/helpers/reliability.py), then runs the next
sync in a child process (tests/helpers/crash_child.py) that kills itself at one point: while
customers are listed, while devices are listed, after N staging transactions, inside a staging
transaction, before and after removals are staged, after k statements of the merge
transaction, after the merge committed, between runs. Afterwards, on SQLite and PostgreSQL:

- the database is whole: SQLite's checks of its file and foreign keys, and on both databases
  the relations readers rely on (``history_is_consistent``: every claim and metadata row
  belongs to a current device, a device has at most one open version and a current one exactly
  one, a device whose last version is a removal has ``removed_at`` set);
- the writer lock is free at once: the next run is not blocked by the dead one;
- what readers see equals the previous snapshot exactly, or (only once the merge committed)
  the new one, never a mix, and the history is internally consistent;
- the next sync completes and equals the emulator exactly;
- the killed run's ``sync_runs`` row is closed as failed ("abandoned") by the next run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from inventory.errors import LockedError
from inventory.store import WriterLock, make_engine
from tests.helpers.reliability import (
    REPO,
    crash_emulator,
    history_is_consistent,
    projection,
)
from tests.syncutil import (
    assert_equals_fleet,
    expected_devices,
    settings_for,
    snapshot,
    staging_tables,
    sync,
)

CHILD = REPO / "tests" / "helpers" / "crash_child.py"
LOCK_GRACE_S = 3.0  # the dead process's lock must be free within this (PG notices the EOF)

# point -> the snapshot readers must see after the kill
POINTS = {
    "open-run": "old",
    "customers-request": "old",
    "customers-staged": "old",
    "listing-page": "old",
    "staging-flush": "old",
    "in-flush": "old",
    "before-removals": "old",
    "after-removals": "old",
    "merge-1": "old",
    "merge-7": "old",
    "merge-end": "old",
    "before-commit": "old",
    "after-commit": "new",
    "between-runs": "new",
    "first-run-merge": "old",  # the very first run dies inside its merge: the empty database
}


def _settings(emu: Any, db_url: str) -> Any:
    return settings_for(
        emu, db_url, api={"page_size": 20, "concurrency": 2}, sync={"max_removed_fraction": 1.0}
    )


def _integrity(engine: Engine) -> None:
    """The database is whole. A killed client cannot damage PostgreSQL's files (the server
    lives on, and enforces the foreign keys itself); a killed SQLite writer could, so its file
    is checked too. On both, the relations between the tables readers see are checked."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalars().all() == ["ok"]
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    assert history_is_consistent(engine) == []


def _lock_free_after(db_url: str) -> int:
    """Attempts until the writer lock could be taken (fails after LOCK_GRACE_S)."""
    engine = make_engine(db_url)
    start = time.monotonic()
    attempts = 0
    try:
        while True:
            attempts += 1
            try:
                with WriterLock(engine):
                    return attempts
            except LockedError:
                if time.monotonic() - start > LOCK_GRACE_S:
                    pytest.fail(f"the killed run's lock still blocks after {LOCK_GRACE_S} s")
                time.sleep(0.02)
    finally:
        engine.dispose()


def _runs(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT run_id, status, error FROM sync_runs ORDER BY run_id"))
        return [dict(r._mapping) for r in rows]


class CrashServer:
    """One ``crash_child.py --serve`` process per test worker: it forks a child per kill."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._stderr = log.open("w", encoding="utf-8")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=REPO,
            env=env,
        )

    def kill_at(self, db_url: str, point: str, stage: int, *, non_atomic: bool = False) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        job = {"url": db_url, "point": point, "stage": stage, "non_atomic": non_atomic}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the crash server died: {self.log.read_text(encoding='utf-8')[-3000:]}"
        answer = json.loads(line)
        assert answer["signal"] == signal.SIGKILL, (
            f"the child was not killed at {point} ({answer}): "
            f"{self.log.read_text(encoding='utf-8')[-3000:]}"
        )

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self._stderr.close()


@pytest.fixture(scope="module")
def crash_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashServer]:
    server = CrashServer(tmp_path_factory.mktemp("crash") / "children.log")
    try:
        yield server
    finally:
        server.close()


def _diff(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    return [table for table in want if got[table] != want[table]]


@pytest.mark.slow
@pytest.mark.parametrize("point", list(POINTS))
def test_sigkill_leaves_the_old_or_the_new_snapshot(
    point: str, engine: Engine, db_url: str, crash_server: CrashServer
) -> None:
    first_run = point == "first-run-merge"
    if not first_run:
        old_emu = crash_emulator(0)
        first = sync(old_emu, _settings(old_emu, db_url))
        assert first.ok, first.error
    old_view, old_full = projection(engine), snapshot(engine)
    runs_before = _runs(engine)

    crash_server.kill_at(db_url, point, 0 if first_run else 1)

    _integrity(engine)
    attempts = _lock_free_after(db_url)
    if engine.dialect.name == "sqlite":
        assert attempts == 1  # flock dies with its process: free at once
    killed_view, killed_full = projection(engine), snapshot(engine)
    runs_killed = _runs(engine)
    assert len(runs_killed) == len(runs_before) + 1
    killed_run = runs_killed[-1]

    # The next run starts at once, completes and equals the emulator exactly.
    new_emu = crash_emulator(0 if first_run else 1)
    recovery = sync(new_emu, _settings(new_emu, db_url))
    assert recovery.ok, recovery.error
    assert_equals_fleet(engine, expected_devices(new_emu))
    assert history_is_consistent(engine) == []
    new_view = projection(engine)

    # Old or new, never a mix; which one depends on whether the merge had committed.
    changed = _diff(new_view, old_view)
    if not first_run:
        assert changed == list(old_view), f"the mutations must change every table: {changed}"
    if POINTS[point] == "old":
        assert not _diff(killed_view, old_view), f"a mix: {_diff(killed_view, old_view)} changed"
        assert killed_full == old_full  # not one row of the old snapshot was touched
        assert killed_run["status"] == "running"
        closed = next(r for r in _runs(engine) if r["run_id"] == killed_run["run_id"])
        assert closed["status"] == "failed"
        assert "abandoned" in (closed["error"] or "")
    else:
        assert not _diff(killed_view, new_view), f"a mix: {_diff(killed_view, new_view)} differ"
        assert killed_run["status"] == "succeeded"
        assert (recovery.devices_added, recovery.devices_changed, recovery.devices_removed) == (
            0,
            0,
            0,
        )
    assert [r["status"] for r in _runs(engine) if r["status"] == "running"] == []
    assert staging_tables(engine) == []


@pytest.mark.slow
def test_the_check_notices_a_mix_when_the_merge_is_not_atomic(
    engine: Engine, db_url: str, crash_server: CrashServer
) -> None:
    """Negative control: a merge whose statements commit one by one, killed halfway, is a mix."""
    old_emu = crash_emulator(0)
    assert sync(old_emu, _settings(old_emu, db_url)).ok
    old_view = projection(engine)
    crash_server.kill_at(db_url, "merge-7", 1, non_atomic=True)
    killed_view = projection(engine)
    new_emu = crash_emulator(1)
    assert sync(new_emu, _settings(new_emu, db_url)).ok
    new_view = projection(engine)
    assert _diff(killed_view, old_view)
    assert _diff(killed_view, new_view)

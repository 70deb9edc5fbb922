"""``zt-inventory sql`` refuses every kind of write, on a synced database of each kind.

Each statement goes through the CLI (``sql --database-url URL "…"``): exit status 1, exactly
one ``Error:`` line and nothing else on stderr, and afterwards not one row of any table (nor a
sequence, nor a file the statement names) has changed. tests/test_cli.py checks ten writes on
an empty database; these are more kinds, on a populated one, compared table by table.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from inventory.cli import main
from inventory.emulator import Emulator, generate_fleet
from inventory.store import make_engine
from tests.helpers.reliability import REPO, dump_all, fresh_database
from tests.syncutil import FakeSleep, settings_for, sync

BOTH = [
    "INSERT INTO sync_runs (started_at, status, trigger) VALUES ('2024-01-01', 'x', 'manual')",
    "INSERT INTO device_metadata (device_id, key, value) SELECT device_id, 'k', 'v' FROM devices",
    "INSERT INTO customers SELECT * FROM customers ON CONFLICT (company_id) DO NOTHING",
    "UPDATE devices SET model = 'x'",
    "DELETE FROM device_claims",
    "DROP TABLE device_metadata",
    "DROP VIEW v_customer_device_counts",
    "CREATE TABLE scratch (x INTEGER)",
    "CREATE INDEX ix_scratch ON devices (model)",
    "CREATE VIEW v_scratch AS SELECT 1 AS one",
    "ALTER TABLE devices ADD COLUMN scratch INTEGER",
    "ALTER TABLE sync_runs RENAME TO sync_runs_old",
    "SELECT 1; DELETE FROM sync_runs",  # a second statement smuggled in
    "WITH x AS (SELECT 1) DELETE FROM sync_listings",
]
SQLITE = [
    "REPLACE INTO sync_runs (run_id, started_at, status, trigger) "
    "VALUES (1, '2024-01-01', 'x', 'manual')",
    "CREATE TRIGGER tr AFTER UPDATE ON devices BEGIN DELETE FROM devices; END",
    "ATTACH DATABASE '{tmp}/attached.db' AS other",
    "PRAGMA user_version = 7",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA incremental_vacuum",
    "VACUUM",
    "VACUUM INTO '{tmp}/copy.db'",
    "REINDEX",
    "ANALYZE",
    "SELECT load_extension('{tmp}/evil')",
    "BEGIN IMMEDIATE",
]
POSTGRES = [
    "TRUNCATE devices CASCADE",
    "CREATE TEMP TABLE scratch (x int)",
    "CREATE FUNCTION f() RETURNS int AS 'SELECT 1' LANGUAGE sql",
    "CREATE SEQUENCE scratch_seq",
    "COMMENT ON TABLE devices IS 'scratch'",
    "GRANT ALL ON devices TO PUBLIC",
    "COPY devices TO '{tmp}/copy.csv'",
    "COPY devices TO PROGRAM 'touch {tmp}/program-ran'",
    "COPY device_metadata FROM '{tmp}/rows.csv'",
    "WITH gone AS (DELETE FROM device_claims RETURNING device_id) SELECT count(*) FROM gone",
    "WITH up AS (UPDATE devices SET model = 'x' RETURNING 1) SELECT count(*) FROM up",
    "DO $$ BEGIN DELETE FROM sync_runs; END $$",
    "SELECT nextval('sync_runs_run_id_seq')",
    "SELECT setval('sync_runs_run_id_seq', 1000)",
    "SELECT lo_import('/etc/hostname')",
    "SELECT set_config('transaction_read_only', 'off', false)",
    "SET ROLE postgres; DELETE FROM sync_runs",
    "COMMIT; DELETE FROM sync_runs",
    "REINDEX TABLE devices",
    "CLUSTER devices USING pk_devices",
    "VACUUM FULL devices",
    "LOCK TABLE devices IN ACCESS EXCLUSIVE MODE",
]


@dataclass
class Target:
    url: str
    kind: str


@contextlib.contextmanager
def _populated(kind: str, directory: Path) -> Iterator[Target]:
    with fresh_database(kind, directory) as url:
        emu = Emulator(generate_fleet(devices=200, customers=6, seed=71, partner_id=7_000_000_071))
        assert sync(emu, settings_for(emu, url), sleep=FakeSleep()).ok
        yield Target(url, kind)


@pytest.fixture(scope="module")
def sqlite_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with _populated("sqlite", tmp_path_factory.mktemp("sql")) as target:
        yield target


@pytest.fixture(scope="module")
def postgres_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with _populated("postgresql", tmp_path_factory.mktemp("sql")) as target:
        yield target


def _state(target: Target) -> dict[str, Any]:
    engine = make_engine(target.url)
    try:
        state = dump_all(engine)
        with engine.connect() as conn:
            if target.kind == "postgresql":
                state["sequence"] = conn.execute(
                    text("SELECT last_value, is_called FROM sync_runs_run_id_seq")
                ).all()
                state["catalog"] = conn.execute(
                    text(
                        "SELECT relname, relkind FROM pg_class c JOIN pg_namespace n "
                        "ON n.oid = c.relnamespace WHERE nspname = 'public' ORDER BY 1"
                    )
                ).all()
                state["functions"] = conn.execute(
                    text("SELECT COUNT(*) FROM pg_proc WHERE proname = 'f'")
                ).all()
                state["comment"] = conn.execute(
                    text("SELECT obj_description('devices'::regclass)")
                ).all()
                state["large_objects"] = conn.execute(
                    text("SELECT COUNT(*) FROM pg_largeobject_metadata")
                ).all()
            else:
                state["schema"] = conn.execute(text("SELECT * FROM sqlite_master")).all()
                state["user_version"] = conn.execute(text("PRAGMA user_version")).all()
                state["journal_mode"] = conn.execute(text("PRAGMA journal_mode")).all()
        return state
    finally:
        engine.dispose()


def _check(exit_code: int, stderr: str, stdout: str) -> None:
    assert exit_code == 1, (stdout, stderr)
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("Error: "), stderr
    assert "Traceback" not in stderr + stdout
    assert stdout == "", stdout


@pytest.mark.parametrize("statement", BOTH + SQLITE)
def test_sqlite_refuses_the_write(sqlite_target: Target, statement: str, tmp_path: Path) -> None:
    refuses(sqlite_target, statement, tmp_path)


@pytest.mark.parametrize("statement", BOTH + POSTGRES)
def test_postgres_refuses_the_write(
    postgres_target: Target, statement: str, tmp_path: Path
) -> None:
    refuses(postgres_target, statement, tmp_path)


def refuses(target: Target, statement: str, tmp_path: Path) -> None:
    """Exit 1, one ``Error:`` line, no row, sequence, schema object or file changed."""
    (tmp_path / "rows.csv").write_text("1\tk\tv\n", encoding="utf-8")
    files = sorted(tmp_path.iterdir())
    before = _state(target)
    sql = statement.format(tmp=tmp_path)
    result = CliRunner().invoke(main, ["sql", "--database-url", target.url, sql])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    _check(result.exit_code, result.stderr, result.stdout)
    assert _state(target) == before
    assert sorted(tmp_path.iterdir()) == files, "the statement must not create files"


def test_temporary_objects_on_sqlite_vanish_with_the_connection(tmp_path: Path) -> None:
    """SQLite allows CREATE TEMP … on a read-only file: it writes no database, and is gone."""
    with fresh_database("sqlite", tmp_path) as url:
        target = Target(url, "sqlite")
        before = _state(target)
        for statement in ("CREATE TEMP TABLE scratch (x)", "CREATE TEMP VIEW tv AS SELECT 1"):
            result = CliRunner().invoke(main, ["sql", "--database-url", url, statement])
            assert result.exit_code == 0
        assert _state(target) == before
        result = CliRunner().invoke(main, ["sql", "--database-url", url, "SELECT * FROM scratch"])
        assert result.exit_code == 1
        assert "no such table: scratch" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_console_script_refuses_too(kind: str, request: pytest.FixtureRequest) -> None:
    target = request.getfixturevalue("sqlite_target" if kind == "sqlite" else "postgres_target")
    for statement in ("DELETE FROM devices", "DROP TABLE sync_runs"):
        console_refuses(target, statement)


def console_refuses(target: Target, statement: str) -> None:
    before = _state(target)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZT_INVENTORY_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "inventory", "sql", "--database-url", target.url, statement],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )
    _check(proc.returncode, proc.stderr, proc.stdout)
    assert "read-only" in proc.stderr
    assert _state(target) == before


def test_at_least_ten_kinds_on_each_database() -> None:
    assert len(BOTH + SQLITE) >= 10
    assert len(BOTH + POSTGRES) >= 10
    assert len(set(BOTH + SQLITE + POSTGRES)) == len(BOTH + SQLITE + POSTGRES)

"""Every command through click's runner (and ``emulator`` through a subprocess).

Errors are one ``Error: …`` line with the right exit code; ``sql`` is read-only because the
database refuses writes (SQLite opened read-only, PostgreSQL in a read-only transaction).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, insert, inspect, select, text

from inventory import cli, db, display
from inventory.cli import main
from inventory.datasette_metadata import RECIPES, TABLES
from inventory.emulator import Emulator, LoopbackServer, generate_fleet, serve
from inventory.models import Device, SyncListing, SyncRun
from inventory.status import humanize_age, parse_duration
from inventory.store import WriterLock, make_engine
from inventory.sync import SyncResult

PARTNER = 1234567
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def run(*args: str, input: str | None = None) -> Result:  # noqa: A002 - click's name
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def one_error(result: Result) -> str:
    """The single ``Error:`` line of a failed command (and no traceback)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output
    return errors[0]


@pytest.fixture
def emulator() -> Iterator[tuple[Emulator, LoopbackServer]]:
    fleet = generate_fleet(devices=300, customers=8, seed=3, partner_id=PARTNER)
    emu = Emulator(fleet, auth="anonymous")
    with serve(emu) as server:
        yield emu, server


def write_config(path: Path, endpoint: str, url: str, extra: str = "") -> Path:
    path.write_text(
        f'[partner]\nid = "{PARTNER}"\n[auth]\ncredentials = "anonymous"\n'
        f'[api]\nendpoint = "{endpoint}"\nquota_per_100s = 0\n'
        f'[database]\nurl = "{url}"\n{extra}',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def synced_config(tmp_path: Path, db_url: str, emulator: tuple[Emulator, LoopbackServer]) -> Path:
    """A config pointing at the emulator and an initialised database of each kind."""
    config = write_config(tmp_path / "zt-inventory.toml", emulator[1].url, db_url)
    assert run("init").exit_code == 0
    return config


def zero_touch_ids(emu: Emulator) -> list[int]:
    """The devices a zero-touch sync sees: zero-touch claims of a customer or its Workspace."""
    workspaces = {
        c["googleWorkspaceAccount"]["customerId"]
        for c in emu.iter_customers()
        if c.get("googleWorkspaceAccount", {}).get("customerId")
    }
    return [
        int(d["deviceId"])
        for d in emu.iter_devices()
        if any(
            c.get("sectionType") == "SECTION_TYPE_ZERO_TOUCH"
            and (c.get("ownerCompanyId") or c.get("googleWorkspaceCustomerId") in workspaces)
            for c in d.get("claims", [])
        )
    ]


def count(url: str, query: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(query)).scalar_one())
    finally:
        engine.dispose()


# --- help --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_has_help_with_an_example(name: str) -> None:
    result = run(name, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.stdout
    assert f"zt-inventory {name}" in result.stdout
    for option in ("--config", "--database-url", "--verbose"):
        assert option in result.stdout


def test_group_help_lists_every_command_and_version() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for name in ("init", "sync", "schedule", "sql", "status", "emulator", "demo"):
        assert name in result.stdout
    version = run("--version")
    assert version.exit_code == 0
    assert version.stdout.startswith("zt-inventory, version")


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "inventory", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0
    assert "Keep a SQL copy" in proc.stdout


# --- init --------------------------------------------------------------------------------------


def test_init_creates_the_schema_and_is_idempotent(db_url: str) -> None:
    first = run("init", "--database-url", db_url)
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("Created the zt-inventory schema (revision ")
    second = run("init", "--database-url", db_url)
    assert second.exit_code == 0
    assert "is already at the newest schema" in second.stdout
    assert count(db_url, "SELECT COUNT(*) FROM devices") == 0


def test_init_reports_the_upgrade_and_its_backup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "upgrade", lambda _e: ("0000", "0001", Path("x.db.bak-0000")))
    result = run("init", "--database-url", "sqlite:///x.db")
    assert result.exit_code == 0
    assert result.stdout == (
        "Upgraded sqlite:///x.db from revision 0000 to 0001.\n"
        "Backup of the previous database: x.db.bak-0000\n"
    )


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert run("init", "--database-url", url).exit_code == 0
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff9999'"))
    engine.dispose()
    result = run("init", "--database-url", url)
    assert result.exit_code == 2
    assert "does not know" in one_error(result)
    result = run("status", "--database-url", url)
    assert result.exit_code == 2
    assert "newer than this zt-inventory knows" in one_error(result)


def test_unreachable_postgres_is_one_line_without_the_password() -> None:
    result = run("init", "--database-url", "postgresql+psycopg://zt:hunter2@127.0.0.1:1/inv")
    assert result.exit_code == 1
    line = one_error(result)
    assert line.startswith("Error: cannot connect to postgresql+psycopg://zt:***@127.0.0.1:1/inv")
    assert "hunter2" not in result.output


def test_verbose_adds_the_traceback() -> None:
    result = run("--verbose", "init", "--database-url", "postgresql+psycopg://zt@127.0.0.1:1/x")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("Error: cannot connect")


def test_sqlite_in_a_missing_directory(tmp_path: Path) -> None:
    result = run("init", "--database-url", f"sqlite:///{tmp_path}/no/such/dir/x.db")
    assert result.exit_code == 1
    assert "unable to open database file" in one_error(result)


def test_an_unexpected_error_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_engine: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(db, "upgrade", boom)
    result = run("init", "--database-url", "sqlite:///x.db")
    assert result.exit_code == 1
    assert one_error(result) == (
        "Error: internal error: RuntimeError: boom; run again with --verbose for the "
        "traceback and report it"
    )


# --- sql ---------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'inventory.db'}"
    assert run("init", "--database-url", url).exit_code == 0
    return url


def check_formats(url: str) -> None:
    query = "SELECT 1 AS n, 'a%b' AS s, NULL AS z"
    as_csv = run("sql", query, "--format", "csv", "--database-url", url)
    assert as_csv.exit_code == 0, as_csv.output
    assert as_csv.stdout == "n,s,z\n1,a%b,\n"
    as_json = run("sql", query, "--format", "json", "--database-url", url)
    assert json.loads(as_json.stdout) == [{"n": 1, "s": "a%b", "z": None}]
    table = run("sql", query, "--database-url", url)
    assert table.exit_code == 0
    assert "a%b" in table.stdout
    assert table.stdout.rstrip().endswith("(1 row)")
    no_rows = run("sql", "SAVEPOINT s", "--database-url", url)
    assert no_rows.exit_code == 0
    assert no_rows.stderr == "(the statement returned no rows)\n"


def test_sql_formats(sqlite_db: str) -> None:
    check_formats(sqlite_db)


def test_sql_reads_the_statement_from_stdin(sqlite_db: str) -> None:
    result = run("sql", "-", "--format", "csv", "--database-url", sqlite_db, input="SELECT 2 AS x")
    assert result.stdout == "x\n2\n"


def test_sql_syntax_error_is_one_line(sqlite_db: str) -> None:
    result = run("sql", "SELEC 1", "--database-url", sqlite_db)
    assert result.exit_code == 1
    assert one_error(result) == 'Error: the query failed: near "SELEC": syntax error'


def test_sql_needs_an_existing_sqlite_file(tmp_path: Path) -> None:
    result = run("sql", "SELECT 1", "--database-url", f"sqlite:///{tmp_path / 'none.db'}")
    assert result.exit_code == 2
    assert "does not exist; run `zt-inventory init` first" in one_error(result)
    assert not (tmp_path / "none.db").exists()


SQLITE_WRITES = [
    "INSERT INTO sync_runs (started_at, status, trigger) VALUES ('2024-01-01', 'x', 'manual')",
    "UPDATE devices SET name = 'x'",
    "DELETE FROM sync_runs",
    "DROP TABLE devices",
    "CREATE TABLE t (x INTEGER)",
    "CREATE INDEX ix_t ON devices (name)",
    "ATTACH DATABASE '{tmp}/other.db' AS other",
    "PRAGMA user_version = 7",
    "VACUUM INTO '{tmp}/copy.db'",
    "REINDEX",
]


@pytest.mark.parametrize("statement", SQLITE_WRITES)
def test_sql_refuses_writes_on_sqlite(sqlite_db: str, tmp_path: Path, statement: str) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run("sql", statement.format(tmp=tmp_path), "--database-url", sqlite_db)
    assert result.exit_code == 1
    assert one_error(result).startswith("Error: the sql command is read-only: ")
    assert result.stderr.count("\n") == 1
    assert count(sqlite_db, "SELECT COUNT(*) FROM sync_runs") == 0
    assert count(sqlite_db, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('t', 'ix_t')") == 0
    assert count(sqlite_db, "SELECT COUNT(*) FROM devices") == 0
    assert count(sqlite_db, "PRAGMA user_version") == 0
    after = {p.name for p in tmp_path.iterdir()}
    assert "other.db" not in after
    assert "copy.db" not in after
    assert set(before) >= after - {"inventory.db-wal", "inventory.db-shm"}


POSTGRES_WRITES = [
    ("INSERT INTO sync_runs (started_at, status, trigger) VALUES (now(), 'x', 'manual')", True),
    ("UPDATE devices SET name = 'x'", True),
    ("DELETE FROM sync_runs", True),
    ("DROP TABLE devices", True),
    ("CREATE TABLE t (x int)", True),
    ("CREATE TEMP TABLE t (x int)", True),
    ("COPY devices TO '{copy}'", True),
    ("WITH gone AS (DELETE FROM sync_runs RETURNING run_id) SELECT count(*) FROM gone", True),
    ("SELECT nextval('sync_runs_run_id_seq')", True),
    # the classic escape from a read-only transaction: refused because only one statement runs
    ("COMMIT; BEGIN READ WRITE; CREATE TABLE t (x int); COMMIT", False),
]


def test_sql_on_postgres(postgres_url: str) -> None:
    # One database for every check (each in its own CLI call and connection): creating
    # PostgreSQL databases is what makes tests slow.
    result = run("sql", "SELECT 1", "--database-url", postgres_url)
    assert result.exit_code == 2
    assert "has no zt-inventory schema; run `zt-inventory init` first" in one_error(result)
    assert run("init", "--database-url", postgres_url).exit_code == 0
    check_formats(postgres_url)
    for statement, refused_as_write in POSTGRES_WRITES:
        # the server writes COPY files on its own host: this one, in the tests
        copy_target = Path(f"/tmp/zt-inventory-copy-{uuid.uuid4().hex}.csv")
        result = run("sql", statement.format(copy=copy_target), "--database-url", postgres_url)
        assert result.exit_code == 1, statement
        line = one_error(result)
        if refused_as_write:
            assert line.startswith("Error: the sql command is read-only: "), (statement, line)
        else:
            assert "cannot insert multiple commands" in line, (statement, line)
        assert not copy_target.exists(), statement
    assert count(postgres_url, "SELECT COUNT(*) FROM sync_runs") == 0
    assert count(postgres_url, "SELECT COUNT(*) FROM pg_tables WHERE tablename = 't'") == 0
    assert count(postgres_url, "SELECT COUNT(*) FROM devices") == 0
    assert count(postgres_url, "SELECT last_value FROM sync_runs_run_id_seq") == 1
    result = run("sql", "COPY devices TO STDOUT", "--database-url", postgres_url)
    assert result.exit_code == 1
    assert "use a SELECT with --format csv" in one_error(result)


# --- sync and status ---------------------------------------------------------------------------


def test_sync_then_status(synced_config: Path, db_url: str) -> None:
    result = run("sync")
    assert result.exit_code == 0, result.output
    devices = count(db_url, "SELECT COUNT(*) FROM devices WHERE removed_at IS NULL")
    assert devices > 0
    assert result.stdout.startswith("sync run 1 succeeded in ")
    assert f"{devices} seen, {devices} added" in result.stdout
    assert "customers:" in result.stderr  # plain progress lines off a terminal
    status = run("status")
    assert status.exit_code == 0, status.output
    assert f"Snapshot: {devices:,} current devices, 8 customers, from run 1" in status.stdout
    assert "listings complete" in status.stdout
    assert "Last runs" in status.stdout
    data = json.loads(run("status", "--json").stdout)
    assert data["snapshot"]["devices_current"] == devices
    assert data["runs"][0]["status"] == "succeeded"
    assert data["last_run_listings"]["complete"] == data["last_run_listings"]["total"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sync_json_and_idempotence(synced_config: Path) -> None:
    first = run("sync", "--json")
    assert first.exit_code == 0
    summary = json.loads(first.stdout)
    assert summary["status"] == "succeeded"
    assert summary["devices_added"] > 0
    second = json.loads(run("sync", "--json").stdout)
    assert second["run_id"] == summary["run_id"] + 1
    assert (second["devices_added"], second["devices_changed"], second["devices_removed"]) == (
        0,
        0,
        0,
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sync_dry_run_writes_nothing(synced_config: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dry.db'}"
    assert run("init", "--database-url", url).exit_code == 0
    result = run("sync", "--dry-run", "--database-url", url)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("dry run (nothing written): ")
    assert count(url, "SELECT COUNT(*) FROM devices") == 0
    assert count(url, "SELECT COUNT(*) FROM sync_runs") == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sync_one_customer_and_identifiers(
    synced_config: Path, emulator: tuple[Emulator, LoopbackServer], tmp_path: Path
) -> None:
    emu = emulator[0]
    device = next(d for d in emu.iter_devices() if d["deviceIdentifier"].get("imei"))
    customer = int(next(emu.iter_customers())["companyId"])
    ident = tmp_path / "shipped.csv"
    ident.write_text(f"imei\n{device['deviceIdentifier']['imei']}\n990000862471854\n")
    result = run("sync", "--json", "--customer", str(customer), "--identifiers", str(ident))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    owner_listings = [x for x in summary["listings"] if x["kind"] == "find_by_owner"]
    assert [x["company_ids"] for x in owner_listings] == [[customer]]
    assert (summary["identifiers_looked_up"], summary["identifiers_found"]) == (2, 1)


def test_sync_failure_is_one_line(tmp_path: Path) -> None:
    fleet = generate_fleet(devices=20, customers=2, seed=1, partner_id=PARTNER)
    with serve(Emulator(fleet, auth="token")) as server:  # anonymous requests get 401
        write_config(tmp_path / "zt-inventory.toml", server.url, "sqlite:///inv.db")
        assert run("init").exit_code == 0
        result = run("sync")
    assert result.exit_code == 1
    line = one_error(result)
    assert line.startswith("Error: sync failed: ")
    assert "401" in line
    assert count("sqlite:///inv.db", "SELECT COUNT(*) FROM sync_runs WHERE status = 'failed'") == 1


def test_sync_refuses_while_another_run_holds_the_lock(synced_config: Path, db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with WriterLock(engine):
            result = run("sync")
    finally:
        engine.dispose()
    assert result.exit_code == 1
    assert "another zt-inventory sync is writing" in one_error(result)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sync_stops_before_a_mass_removal(
    synced_config: Path, db_url: str, emulator: tuple[Emulator, LoopbackServer]
) -> None:
    assert run("sync").exit_code == 0
    emu = emulator[0]
    ids = zero_touch_ids(emu)
    for device_id in ids[: len(ids) // 2]:
        emu.remove_device(device_id)
    result = run("sync")
    assert result.exit_code == 1
    assert "--allow-mass-removal" in one_error(result)
    assert count(db_url, "SELECT COUNT(*) FROM devices WHERE removed_at IS NOT NULL") == 0
    forced = run("sync", "--allow-mass-removal")
    assert forced.exit_code == 0, forced.output
    assert (
        count(db_url, "SELECT COUNT(*) FROM devices WHERE removed_at IS NOT NULL") == len(ids) // 2
    )


def test_sync_needs_the_schema_and_does_not_create_the_file(
    tmp_path: Path, emulator: tuple[Emulator, LoopbackServer]
) -> None:
    write_config(tmp_path / "zt-inventory.toml", emulator[1].url, "sqlite:///missing.db")
    result = run("sync")
    assert result.exit_code == 2
    assert "run `zt-inventory init` first" in one_error(result)
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sync_on_a_terminal_shows_progress_and_a_summary_table(
    synced_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.app, "is_terminal", lambda _stream: True)
    result = run("sync")
    assert result.exit_code == 0, result.output
    assert "Sync run 1: succeeded" in result.stdout
    assert "listings complete" in result.stdout
    assert "devices" in result.stderr  # the live progress bars


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_cancelled_sync_applies_nothing(
    synced_config: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib
    import threading

    @contextlib.contextmanager
    def already_stopped() -> Iterator[threading.Event]:
        stop = threading.Event()
        stop.set()
        yield stop

    monkeypatch.setattr(cli.sync, "_stop_on_signals", already_stopped)
    result = run("sync")
    assert result.exit_code == 1
    assert one_error(result) == "Error: the sync was cancelled; nothing was applied"
    assert count(db_url, "SELECT COUNT(*) FROM devices") == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_partial_run_exits_1(synced_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inventory import sync as sync_module
    from inventory.sync import ListingResult

    def partial(*_args: object, **_kwargs: object) -> SyncResult:
        now = datetime.now(UTC)
        listings = [
            ListingResult(1, "find_by_owner", "SECTION_TYPE_ZERO_TOUCH", [1], [], 5, 5, 1, True),
            ListingResult(2, "find_by_owner", "SECTION_TYPE_ZERO_TOUCH", [2], [], 5, 3, 1, False),
        ]
        listings[1].error = "counted 3 devices but totalSize said 5"
        return SyncResult(7, "partial", "manual", False, now, now, listings=listings)

    monkeypatch.setattr(sync_module, "run_sync", partial)
    result = run("sync")
    assert result.exit_code == 1
    assert "the run was partial: 1 of 2 listings" in one_error(result)
    assert "listing 2 incomplete: counted 3 devices but totalSize said 5" in result.stdout


def test_status_shows_incomplete_listings_errors_and_age(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert run("init", "--database-url", url).exit_code == 0
    now = datetime.now(UTC)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(SyncRun).values(
                started_at=now - timedelta(hours=3, minutes=1),
                finished_at=now - timedelta(hours=3),
                status="succeeded",
                trigger="schedule",
                devices_seen=10,
                devices_added=10,
            )
        )
        conn.execute(
            insert(SyncRun).values(
                started_at=now - timedelta(minutes=5),
                finished_at=now,
                status="failed",
                trigger="manual",
                error="HTTP 403 on findByOwner",
            )
        )
        conn.execute(
            insert(SyncListing),
            [
                {"run_id": 2, "section_type": "SECTION_TYPE_ZERO_TOUCH", "company_ids": [1, 2],
                 "google_workspace_customer_ids": [], "total_size": 5, "devices_seen": 3,
                 "complete": False, "error": "counted 3 devices but totalSize said 5"},
            ],
        )  # fmt: skip
        conn.execute(
            insert(Device),
            [
                {"device_id": 1, "partner_id": PARTNER, "raw": {}, "content_hash": "x",
                 "first_seen_at": now, "last_changed_at": now},
            ],
        )  # fmt: skip
    engine.dispose()
    result = run("status", "--database-url", url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Snapshot: 1 current devices, 0 customers, from run 1 (succeeded)" in out
    assert "3 h 0 min ago" in out
    assert "Last run 2: 0 of 1 listings complete, 3 devices seen of 5 reported by totalSize" in out
    assert "listing 1 (find_by_owner, SECTION_TYPE_ZERO_TOUCH, 2 owners) incomplete: " in out
    assert "HTTP 403 on findByOwner" in out
    assert "schedule" in out


def test_status_of_an_empty_database(sqlite_db: str) -> None:
    result = run("status", "--database-url", sqlite_db)
    assert result.exit_code == 0
    assert "No sync has run yet" in result.stdout


def test_humanize_age() -> None:
    assert humanize_age(5) == "5 s"
    assert humanize_age(600) == "10 min"
    assert humanize_age(3 * 3600 + 120) == "3 h 2 min"
    assert humanize_age(5 * 86400) == "5 days"


def test_plain_progress_logs_on_phase_change_and_interval() -> None:
    from inventory.sync import Progress

    clock = iter([0.0, 1.0, 2.0, 10.0]).__next__
    seen: list[str] = []
    progress = display.PlainProgress(interval=5, clock=clock)
    display.log.info = lambda _fmt, text: seen.append(text)  # type: ignore[method-assign]
    try:
        p = Progress(phase="customers")
        progress(p)  # first: logged
        progress(p)  # same phase, 1 s later: quiet
        p.phase = "devices"
        progress(p)  # phase change: logged
        progress(p)  # 8 s later: logged
    finally:
        del display.log.info
    assert len(seen) == 3
    assert seen[1].startswith("devices: customers 0/0")


# --- emulator ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_emulator_command_serves_until_stopped(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "inventory", "emulator", "--port", "0", "--devices", "40",
         "--customers", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Emulator: 40 devices, 3 customers, partner 1234567, serving on ")
        url = first.split("serving on ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        exports = proc.stdout.readline()
        assert f"ZT_INVENTORY_API_ENDPOINT={url}" in exports
        response = httpx.get(f"{url}/v1/partners/{PARTNER}/customers", timeout=10)
        assert response.status_code == 200
        assert len(response.json()["customers"]) == 3
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0
        assert proc.stderr is not None
        assert "Emulator stopped." in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sync_counts_match_the_emulator(
    synced_config: Path, db_url: str, emulator: tuple[Emulator, LoopbackServer]
) -> None:
    assert run("sync").exit_code == 0
    expected = len(zero_touch_ids(emulator[0]))
    engine = make_engine(db_url)
    with engine.connect() as conn:
        current = conn.execute(
            select(func.count()).select_from(Device).where(Device.removed_at.is_(None))
        ).scalar_one()
    engine.dispose()
    assert current == expected


# --- freshness: status --max-age and run scopes ----------------------------------------------


def test_only_a_full_run_makes_the_fleet_fresh(
    synced_config: Path, emulator: tuple[Emulator, LoopbackServer], db_url: str
) -> None:
    customer = int(next(emulator[0].iter_customers())["companyId"])
    assert run("sync", "--customer", str(customer)).exit_code == 0
    stale = run("status", "--max-age", "1d")
    assert stale.exit_code == 1
    assert stale.stdout == (
        "stale: no full run has succeeded yet (max age 1d); run `zt-inventory sync` without "
        "--customer\n"
    )
    status = run("status")
    assert "from run 1 (succeeded, customers)" in status.stdout
    assert "Fleet: no full run has succeeded yet" in status.stdout
    assert f"customer {customer}" in status.stdout
    assert run("sync").exit_code == 0
    assert run("sync", "--customer", str(customer)).exit_code == 0
    fresh = run("status", "--max-age", "90m")
    assert fresh.exit_code == 0, fresh.output
    assert fresh.stdout.startswith("fresh: full run 2 finished ")
    assert fresh.stdout.endswith(" s ago (max age 90m)\n")
    assert "Fleet: last synced in full by run 2" in run("status").stdout
    data = json.loads(run("status", "--json").stdout)
    assert (data["snapshot"]["run_id"], data["snapshot"]["full_run_id"]) == (3, 2)
    assert [r["scope"] for r in data["runs"]] == ["customers", "full", "customers"]
    assert data["runs"][0]["scope_customer_ids"] == [customer]
    assert json.loads(run("status", "--max-age", "2h", "--json").stdout)["run_id"] == 2
    assert count(db_url, "SELECT COUNT(*) FROM sync_runs WHERE scope_customer_ids IS NULL") == 1


def test_status_max_age_says_when_the_full_run_is_too_old(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert run("init", "--database-url", url).exit_code == 0
    now = datetime.now(UTC)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(SyncRun).values(
                started_at=now - timedelta(hours=3, minutes=1),
                finished_at=now - timedelta(hours=3),
                status="succeeded",
                trigger="schedule",
            )
        )
    engine.dispose()
    result = run("status", "--database-url", url, "--max-age", "2h")
    assert result.exit_code == 1
    assert result.stdout.startswith("stale: the newest succeeded full run 1 finished ")
    assert result.stdout.endswith(", 3 h 0 min ago, more than the max age 2h\n")
    assert run("status", "--database-url", url, "--max-age", "1d").exit_code == 0
    assert run("status", "--database-url", url, "--max-age", "181m").exit_code == 0


@pytest.mark.parametrize("bad", ["2", "2 hours", "h", "0m", "-1h", "1w"])
def test_status_max_age_refuses_what_is_no_duration(sqlite_db: str, bad: str) -> None:
    result = run("status", "--database-url", sqlite_db, "--max-age", bad)
    assert result.exit_code == 2
    assert "Invalid value for '--max-age'" in result.stderr


def test_parse_duration() -> None:
    assert [parse_duration(t) for t in ("90m", "2h", "1d", "30s", "1.5h")] == [
        5400, 7200, 86400, 30, 5400,
    ]  # fmt: skip


# --- datasette-metadata -----------------------------------------------------------------------


def test_datasette_metadata_names_the_database_after_its_file(sqlite_db: str) -> None:
    result = run("datasette-metadata", "--database-url", sqlite_db)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    tables = data["databases"]["inventory"]["tables"]
    assert tables["v_devices"]["facets"] == ["company_name", "manufacturer", "model", "device_type"]
    assert tables["alembic_version"] == {"hidden": True}
    assert set(data["databases"]["inventory"]["queries"]) == {r.name for r in RECIPES}


def test_datasette_metadata_describes_real_columns_and_its_queries_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'snap.db'}"
    assert run("init", "--database-url", url).exit_code == 0
    engine = make_engine(url)
    try:
        insp = inspect(engine)
        for table, meta in TABLES.items():
            names = {c["name"] for c in insp.get_columns(table)}
            assert set(meta.get("columns", {})) <= names, table
            assert set(meta.get("facets", [])) <= names, table
        with engine.connect() as conn:
            for recipe in RECIPES:  # Datasette binds its form's fields as text
                params = {p: "1" for p in ("imei", "company_id", "at") if f":{p}" in recipe.sql}
                conn.execute(text(recipe.sql), params).all()
    finally:
        engine.dispose()


def test_datasette_metadata_needs_sqlite(postgres_url: str) -> None:
    result = run("datasette-metadata", "--database-url", postgres_url)
    assert result.exit_code == 2
    assert "Datasette opens SQLite files" in result.stderr


def test_the_readme_shows_the_recipes_and_the_datasette_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "datasette zt-demo.db --metadata <(zt-inventory datasette-metadata" in readme
    for recipe in RECIPES:
        assert recipe.sql in readme, recipe.name

"""Every command through click's runner (and ``emulator`` through a subprocess).

Errors are one ``Error: …`` line with the right exit code; ``sql`` is read-only because the
database refuses writes (SQLite opened read-only, PostgreSQL in a read-only transaction).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, insert, inspect, select, text
from sqlalchemy.engine import Engine

from inventory import cli, db, display
from inventory.cli import main
from inventory.datasette_metadata import RECIPES, TABLES
from inventory.emulator import Emulator, LoopbackServer, generate_fleet, serve
from inventory.models import Device, SyncListing, SyncRun
from inventory.status import humanize_age, parse_duration
from inventory.store import WriterLock, make_engine, runs
from inventory.sync import Progress, SyncResult
from tests.helpers.reliability import dump_all

PARTNER = 1234567
ZT = "SECTION_TYPE_ZERO_TOUCH"
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


# What varies between two runs of a command, and the fixed-width placeholder it becomes (same
# width, so tables keep their layout): timestamps (status, log lines), durations under 10 s,
# ages in seconds.
VARIES = (
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00"), "YYYY-MM-DD hh:mm:ss+00:00"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"), "YYYY-MM-DDThh:mm:ss+hhmm"),
    (re.compile(r"(?<![\d.])\d\.\d s\b"), "#.# s"),
    (re.compile(r"\b\d\d? s ago\b"), "# s ago"),
)


def normalised(text: str, database: str = "") -> str:
    """``text`` with the timestamps, durations and ages (and ``database``, a temporary path or
    database name) replaced by placeholders; everything else is compared as printed."""
    if database:
        text = text.replace(database, "<database>")
    for pattern, placeholder in VARIES:
        text = pattern.sub(placeholder, text)
    return text


def rule(widths: list[int], left: str, joint: str, right: str, line: str) -> str:
    """One border line of a table whose columns are ``widths`` wide (padding included)."""
    return left + joint.join(line * w for w in widths) + right


def lines(*rows: str) -> str:
    return "".join(row + "\n" for row in rows)


def requests_served(emu: Emulator) -> int:
    return sum(emu.counts().values())


@pytest.fixture
def phase_lines_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain progress logs each phase change, and every few seconds: only the first is
    deterministic."""
    plain = functools.partial(display.PlainProgress, interval=math.inf)
    monkeypatch.setattr(cli.sync, "PlainProgress", plain)


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
    head = db.head_revision()
    first = run("init", "--database-url", db_url)
    assert first.exit_code == 0, first.output
    assert (first.stdout, first.stderr) == (
        f"Created the zt-inventory schema (revision {head}) in {db_url}.\n",
        "",
    )
    second = run("init", "--database-url", db_url)
    assert second.exit_code == 0
    assert (second.stdout, second.stderr) == (
        f"{db_url} is already at the newest schema (revision {head}); nothing to do.\n",
        "",
    )
    assert count(db_url, "SELECT COUNT(*) FROM devices") == 0


def test_init_reports_the_upgrade_and_its_backup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(db, "upgrade", lambda _e: ("0000", "0001", Path("x.db.bak-0000")))
    result = run("init", "--database-url", "sqlite:///x.db")
    assert result.exit_code == 0
    assert result.stdout == (  # the file's absolute path: which one was used, wherever one is
        f"Upgraded sqlite:///{tmp_path.resolve() / 'x.db'} from revision 0000 to 0001.\n"
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


@pytest.mark.usefixtures("phase_lines_only")
def test_sync_then_status(
    synced_config: Path, db_url: str, emulator: tuple[Emulator, LoopbackServer]
) -> None:
    emu = emulator[0]
    result = run("sync")
    assert result.exit_code == 0, result.output
    n = len(zero_touch_ids(emu))
    assert count(db_url, "SELECT COUNT(*) FROM devices WHERE removed_at IS NULL") == n
    requests = requests_served(emu)
    assert normalised(result.stdout) == (
        f"sync run 1 succeeded in #.# s: {n} seen, {n} added, 0 changed, 0 removed, "
        f"0 reappeared; {requests} requests, 0 retries\n"
    )
    # plain progress lines off a terminal: one per phase (8 customers, one listing each, and
    # listings of their Workspace accounts); devices are counted as fetched (a Chrome OS
    # device both a company and its Workspace listing return counts twice)
    listings = count(db_url, "SELECT COUNT(*) FROM sync_listings")
    fetched = count(db_url, "SELECT SUM(devices_seen) FROM sync_listings")
    at = "YYYY-MM-DDThh:mm:ss+hhmm INFO"
    # before the devices: customers.list, vendors.list and each vendor's customers
    served = emu.counts()
    before = sum(served.get(m, 0) for m in ("customers.list", "vendors.list"))
    before += served.get("vendors.customers.list", 0)
    assert normalised(result.stderr) == lines(
        f"{at} customers: customers 0/0, listings 0/0, devices 0/0, requests 0/0, 0 retries",
        f"{at} devices: customers 8/8, listings 0/{listings}, devices 0/0, "
        f"requests {before}/{before + listings}, 0 retries",
        f"{at} merging: customers 8/8, listings {listings}/{listings}, "
        f"devices {fetched}/{fetched}, requests {requests}/{requests}, 0 retries",
        f"{at} done: customers 8/8, listings {listings}/{listings}, "
        f"devices {fetched}/{fetched}, requests {requests}/{requests}, 0 retries",
    )
    status = run("status")
    assert status.exit_code == 0, status.output
    widths = [5, 9, 7, 11, 27, 10, 6, 7, 9, 9, 12, 10, 9, 7]
    assert status.stderr == ""
    assert normalised(status.stdout, db_url) == lines(
        "Database: <database>",
        f"Snapshot: {n:,} current devices, 8 customers, from run 1 (succeeded), "
        "finished YYYY-MM-DD hh:mm:ss+00:00, # s ago",
        f"Last run 1: {listings} of {listings} listings complete, {fetched:,} devices seen of "
        f"{fetched:,} reported by totalSize",
        "Last runs".ljust(sum(widths) + len(widths) + 1),
        rule(widths, "┏", "┳", "┓", "━"),
        "┃ run ┃ trigger ┃ scope ┃ status    ┃ started                   ┃ duration ┃ seen ┃"
        " added ┃ changed ┃ removed ┃ reappeared ┃ requests ┃ retries ┃ error ┃",
        rule(widths, "┡", "╇", "┩", "━"),
        f"│   1 │ manual  │ full  │ succeeded │ YYYY-MM-DD hh:mm:ss+00:00 │    #.# s │ {n:>4} │"
        f" {n:>5} │"
        f"       0 │       0 │          0 │ {requests:>8} │       0 │       │",
        rule(widths, "└", "┴", "┘", "─"),
    )
    data = json.loads(run("status", "--json").stdout)
    assert data["snapshot"]["devices_current"] == n
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
def test_sync_dry_run_writes_nothing(
    synced_config: Path, tmp_path: Path, emulator: tuple[Emulator, LoopbackServer]
) -> None:
    url = f"sqlite:///{tmp_path / 'dry.db'}"
    assert run("init", "--database-url", url).exit_code == 0
    result = run("sync", "--dry-run", "--database-url", url)
    assert result.exit_code == 0, result.output
    n, requests = len(zero_touch_ids(emulator[0])), requests_served(emulator[0])
    summary, title, *_rows, more = normalised(result.stdout).splitlines()
    assert summary == (
        f"dry run (nothing written): sync dry run succeeded in #.# s: {n} seen, {n} added, "
        f"0 changed, 0 removed, 0 reappeared; {requests} requests, 0 retries"
    )
    assert title.rstrip() == f"First 20 of {n} changes"  # the preview: tests/test_cli_operator
    assert more == f"… and {n - 20} more ({n - 20} added); `--preview N` shows more"
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
    ident.write_text(f"imei\n{device['deviceIdentifier']['imei']}\n990000862471853\n")
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
    error = (
        "customers.list: HTTP 401 UNAUTHENTICATED on /v1/partners/1234567/customers: Request "
        "had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
        "other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.; check "
        "auth.credentials (key file or ADC) and that they carry the OAuth scope "
        "https://www.googleapis.com/auth/androidworkprovisioning, that the service account is "
        "linked to the reseller account in the zero-touch portal, the API is enabled in its "
        "Cloud project, and partner.id"
    )
    assert normalised(result.stdout) == (
        "sync run 1 failed in #.# s: 0 seen, 0 added, 0 changed, 0 removed, 0 reappeared; "
        f"1 requests, 0 retries; error: {error}\n"
    )
    assert normalised(result.stderr) == lines(
        "YYYY-MM-DDThh:mm:ss+hhmm INFO customers: customers 0/0, listings 0/0, devices 0/0, "
        "requests 0/0, 0 retries",
        f"Error: sync failed: {error}",
    )
    assert count("sqlite:///inv.db", "SELECT COUNT(*) FROM sync_runs WHERE status = 'failed'") == 1


def test_sync_refuses_while_another_run_holds_the_lock(synced_config: Path, db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with WriterLock(engine):
            result = run("sync")
    finally:
        engine.dispose()
    assert result.exit_code == 75  # EX_TEMPFAIL: cron may try again later
    assert (result.stdout, normalised(result.stderr, db_url)) == (
        "",
        "Error: another zt-inventory sync is writing <database>; wait for it to finish "
        "(`zt-inventory status` shows it) and try again\n",
    )


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
    removed, fleet = len(ids) // 2, len(ids)
    assert one_error(result) == (
        f"Error: sync failed: this run would mark {removed} of {fleet} devices removed "
        f"({removed / fleet:.0%}), more than sync.max_removed_fraction = 0.2; nothing was "
        "applied. If the removals are real, run `zt-inventory sync --allow-mass-removal`"
    )
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
    synced_config: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    emulator: tuple[Emulator, LoopbackServer],
) -> None:
    monkeypatch.setattr(cli.app, "is_terminal", lambda _stream: True)
    result = run("sync")
    assert result.exit_code == 0, result.output
    n, requests = len(zero_touch_ids(emulator[0])), requests_served(emulator[0])
    listings = count(db_url, "SELECT COUNT(*) FROM sync_listings")
    widths = [19, 7]
    assert normalised(result.stdout) == lines(
        "Sync run 1: succeeded".ljust(sum(widths) + len(widths) + 1),
        rule(widths, "┌", "┬", "┐", "─"),
        "│ duration          │ #.# s │",
        "│ customers         │     8 │",
        f"│ devices seen      │ {n:>5} │",
        f"│ added             │ {n:>5} │",
        "│ changed           │     0 │",
        "│ removed           │     0 │",
        "│ reappeared        │     0 │",
        f"│ listings complete │ {f'{listings}/{listings}':>5} │",
        f"│ API requests      │ {requests:>5} │",
        "│ retries           │     0 │",
        rule(widths, "└", "┴", "┘", "─"),
    )
    assert "devices" in result.stderr  # the live progress bars (redrawn as time goes)


def test_a_sync_cancelled_mid_run_leaves_the_snapshot_as_it_was(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC guarantee 2: a cancelled run changes nothing readers see. The database holds a
    snapshot, the fleet has changed since, and the stop comes while devices stream in, past
    the first staging batch (2,000 devices), with pages still to come."""
    fleet = generate_fleet(devices=2600, customers=12, seed=5, partner_id=PARTNER)
    emu = Emulator(fleet, auth="anonymous")
    stop = threading.Event()
    stopped_at: list[int] = []

    def stop_past_the_first_batch() -> Callable[[Progress], None]:
        def on_progress(p: Progress) -> None:
            if p.devices_seen >= 2100 and not stop.is_set():
                stopped_at.append(p.devices_seen)
                stop.set()

        return on_progress

    @contextlib.contextmanager
    def the_stop_flag() -> Iterator[threading.Event]:
        yield stop

    with serve(emu) as server:
        write_config(tmp_path / "zt-inventory.toml", server.url, db_url)
        assert run("init").exit_code == 0
        assert run("sync").exit_code == 0
        change_every_table(emu)
        engine = make_engine(db_url)
        try:
            before = _readers_view(engine)
            monkeypatch.setattr(cli.sync, "_stop_on_signals", the_stop_flag)
            monkeypatch.setattr(cli.sync, "PlainProgress", stop_past_the_first_batch)
            result = run("sync")
            after = _readers_view(engine)
            with engine.connect() as conn:
                last_applied = runs.last_applied_run(conn)
        finally:
            engine.dispose()
    total = zero_touch_count(emu)
    assert stopped_at, f"the run must be stopped while devices come in: {result.output}"
    assert stopped_at[0] < total - 100, (stopped_at, total)
    assert after == before
    assert last_applied is not None
    assert last_applied["run_id"] == 1
    assert result.exit_code == 130
    assert result.stderr.splitlines()[-1] == "Cancelled: the run was stopped; nothing was applied"
    assert "Error" not in result.stderr


def zero_touch_count(emu: Emulator) -> int:
    """Devices a zero-touch sync sees (counted from the emulator's index: fast on any fleet)."""
    customers = emu.fleet.current_customers()
    workspaces = {c.google_workspace_customer_id for c in customers}
    return emu.fleet.count_owned(
        ZT, {c.company_id for c in customers}, {w for w in workspaces if w}
    )


def change_every_table(emu: Emulator) -> None:
    """Moves, a removal, metadata, a new device, a customer gone (the smallest) and one new: a
    run that went through would change every table readers see."""

    def owned(company_id: int) -> list[int]:
        lists = emu.fleet.owner_lists(ZT, [company_id], [])
        return [emu.fleet.device_id(i) for a in lists for i in a]

    by_size = sorted(
        (c.company_id for c in emu.fleet.current_customers()), key=lambda c: -len(owned(c))
    )
    big, second, smallest = by_size[0], by_size[1], by_size[-1]
    devices = owned(big)
    for device_id in devices[:10]:
        emu.move_device(device_id, second)
    emu.remove_device(devices[10])
    emu.set_metadata(devices[11], {"asset": "moved-to-storage"})
    emu.add_device(company_id=second)
    emu.remove_customer(smallest)
    emu.add_customer("Cancelled Run Test GmbH")


def _readers_view(engine: Engine) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table but the record of runs: what readers see, and staging."""
    return {
        table: rows
        for table, rows in dump_all(engine).items()
        if table not in ("sync_runs", "sync_run_partners", "sync_listings")
    }


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
    assert result.stdout == lines(
        "sync run 7 partial in 0.0 s: 0 seen, 0 added, 0 changed, 0 removed, 0 reappeared; "
        "0 requests, 0 retries",
        "  listing 2 incomplete: counted 3 devices but totalSize said 5",
    )
    assert result.stderr == lines(
        "Error: the run was partial: 1 of 2 listings did not arrive whole, and their customers' "
        "devices were left as they were; see `zt-inventory status`, then sync again"
    )


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
    widths = [5, 10, 7, 11, 27, 10, 6, 7, 9, 9, 12, 10, 9, 25]
    assert result.stderr == ""
    assert normalised(result.stdout, url) == lines(
        "Database: <database>",
        "Snapshot: 1 current devices, 0 customers, from run 1 (succeeded), "
        "finished YYYY-MM-DD hh:mm:ss+00:00, 3 h 0 min ago",
        "Last run 2: 0 of 1 listings complete, 3 devices seen of 5 reported by totalSize",
        "  listing 1 (find_by_owner, SECTION_TYPE_ZERO_TOUCH, 2 owners) incomplete: counted 3 "
        "devices but totalSize said 5",
        "Last runs".ljust(sum(widths) + len(widths) + 1),
        rule(widths, "┏", "┳", "┓", "━"),
        "┃ run ┃ trigger  ┃ scope ┃ status    ┃ started                   ┃ duration ┃ seen ┃"
        " added ┃ changed ┃ removed ┃ reappeared ┃ requests ┃ retries ┃ error                   ┃",
        rule(widths, "┡", "╇", "┩", "━"),
        "│   2 │ manual   │ full  │ failed    │ YYYY-MM-DD hh:mm:ss+00:00 │  300.0 s │    0 │"
        "     0 │"
        "       0 │       0 │          0 │        0 │       0 │ HTTP 403 on findByOwner │",
        "│   1 │ schedule │ full  │ succeeded │ YYYY-MM-DD hh:mm:ss+00:00 │   60.0 s │   10 │"
        "    10 │"
        "       0 │       0 │          0 │        0 │       0 │                         │",
        rule(widths, "└", "┴", "┘", "─"),
    )


def test_status_of_an_empty_database(sqlite_db: str) -> None:
    result = run("status", "--database-url", sqlite_db)
    assert result.exit_code == 0
    assert (result.stdout, result.stderr) == (
        f"Database: {sqlite_db}\nNo sync has run yet; run `zt-inventory sync`.\n",
        "",
    )


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

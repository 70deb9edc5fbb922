"""The snapshot as SQL and BI tools read it (SPEC "Serving the snapshot to SQL and BI tools").

Typed view columns (a value bound as text compares as the column's type), SQL NULL for "none"
in JSON columns, jsonb on PostgreSQL, v_device_changes, and ``zt-inventory sql`` printing the
same bytes from SQLite and PostgreSQL. Each test runs on both databases.
"""

from __future__ import annotations

import json
import random
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import JSON, insert, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.types import NullType

from inventory import db
from inventory.cli import main
from inventory.demo import mutate
from inventory.emulator import Emulator, generate_fleet
from inventory.models import Base, DeviceVersion, SyncRun
from inventory.sqlout import MAX_SAFE_INTEGER
from inventory.store import make_engine
from inventory.sync.reconcile import run_reconcile
from tests.syncutil import settings_for, sync

VIEWS = ("v_devices", "v_customer_device_counts", "v_device_changes", "v_reconciliation")
# columns people filter on, per view (Datasette's ?column=value binds the value as text)
KEY_COLUMNS = {
    "v_devices": (
        "device_id", "imei", "imei2", "meid", "serial_number", "model", "device_type",
        "company_id", "company_name", "google_workspace_customer_id",
    ),
    "v_customer_device_counts": ("company_id", "company_name", "devices"),
    "v_device_changes": (
        "run_id", "device_id", "change", "previous_company_id", "company_id", "version_id",
    ),
    "v_reconciliation": (
        "run_id", "line_number", "imei", "order_number", "expected_company_id", "device_id",
        "company_id", "company_name", "state",
    ),
}  # fmt: skip
# computed view columns: a CAST gives them their type (declared from SQLite 3.41 on)
COMPUTED = {("v_devices", "company_id"), ("v_devices", "metadata"), ("v_devices", "company_name")}
COMPUTED |= {("v_customer_device_counts", "devices"), ("v_device_changes", "change")}
COMPUTED |= {("v_reconciliation", "company_id"), ("v_reconciliation", "state")}
PUBLIC = Base.metadata.sorted_tables


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def two_runs(url: str) -> tuple[Emulator, Any]:
    """A fleet synced twice into ``url``, a week of business in between, then a shipment
    reconciled."""
    fleet = generate_fleet(devices=400, customers=8, seed=11, partner_id=1234567)
    emu = Emulator(fleet, auth="anonymous")
    engine = make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    settings = settings_for(emu, url, sync={"max_removed_fraction": 1.0})
    assert sync(emu, settings).status == "succeeded"
    changes = mutate(emu, random.Random(5))
    assert sync(emu, settings).status == "succeeded"
    _reconcile(emu, settings)
    return emu, changes


def _reconcile(emu: Emulator, settings: Any) -> None:
    """A shipment of a few registered devices, one to the wrong customer, one unregistered."""
    devices = [d for d in emu.iter_devices() if d["deviceIdentifier"].get("imei")][:6]
    owners = [next((c.get("ownerCompanyId", "") for c in d.get("claims", [])), "") for d in devices]
    lines = ["imei,expected_company_id,order_number"]
    for n, (d, owner) in enumerate(zip(devices, owners, strict=True)):
        expected = owners[0] if n == 1 else owner
        lines.append(f"{d['deviceIdentifier']['imei']},{expected},SO-{n % 2}")
    lines.append("490154203237518,,SO-1")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "shipped.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        found = run_reconcile(settings, path, transport=emu.transport())
    assert found.result.status == "succeeded"


@pytest.fixture
def synced(db_url: str) -> Iterator[tuple[Engine, Emulator, Any]]:
    emu, changes = two_runs(db_url)
    engine = make_engine(db_url)
    yield engine, emu, changes
    engine.dispose()


# --- typed views -------------------------------------------------------------------------------


def test_a_value_bound_as_text_finds_rows_in_every_view_key_column(
    synced: tuple[Engine, Emulator, Any],
) -> None:
    engine = synced[0]
    with engine.connect() as conn:
        for view, columns in KEY_COLUMNS.items():
            for column in columns:
                value = conn.execute(
                    text(f"SELECT {column} FROM {view} WHERE {column} IS NOT NULL LIMIT 1")
                ).scalar_one()
                typed = conn.execute(
                    text(f"SELECT COUNT(*) FROM {view} WHERE {column} = :v"), {"v": value}
                ).scalar_one()
                as_text = conn.execute(
                    text(f"SELECT COUNT(*) FROM {view} WHERE {column} = :v"), {"v": str(value)}
                ).scalar_one()
                assert as_text == typed > 0, (view, column, value)
    if engine.dialect.name == "sqlite":  # as sqlite3 and Datasette send it: a text literal
        path = engine.url.database
        assert path is not None
        raw = sqlite3.connect(path)
        try:
            company = raw.execute("SELECT company_id FROM v_customer_device_counts").fetchone()[0]
            devices = raw.execute(
                f"SELECT COUNT(*) FROM v_devices WHERE company_id = '{company}'"
            ).fetchone()[0]
            assert (
                devices
                == raw.execute(
                    "SELECT devices FROM v_customer_device_counts WHERE company_id = ?",
                    (str(company),),
                ).fetchone()[0]
            )
        finally:
            raw.close()


def test_the_inspector_reports_the_types_of_view_columns(engine: Engine) -> None:
    insp = inspect(engine)
    untyped = set()
    for view in VIEWS:
        for column in insp.get_columns(view):
            if isinstance(column["type"], NullType):
                untyped.add((view, column["name"]))
    if engine.dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 41):
        # Before 3.41 SQLite declares a view column's type only for a plain table column;
        # the CAST still gives the computed ones their affinity (the test above).
        assert untyped == COMPUTED
    else:
        assert untyped == set()
    if engine.dialect.name == "postgresql":
        types = {c["name"]: str(c["type"]) for c in insp.get_columns("v_devices")}
        assert (types["company_id"], types["metadata"]) == ("BIGINT", "JSONB")


# --- JSON: SQL NULL for none, jsonb ------------------------------------------------------------


def test_json_none_is_sql_null(synced: tuple[Engine, Emulator, Any]) -> None:
    engine, emu, _ = synced
    without = sum(1 for c in emu.iter_customers() if not c.get("googleWorkspaceAccount"))
    assert without > 0
    null_text = "'null'::jsonb" if engine.dialect.name == "postgresql" else "'null'"
    with engine.connect() as conn:
        for table in PUBLIC:
            for column in table.columns:
                if column.type._type_affinity.__name__ == "JSON":
                    found = conn.execute(
                        text(f"SELECT COUNT(*) FROM {table.name} WHERE {column.name} = {null_text}")
                    ).scalar_one()
                    assert found == 0, f"{table.name}.{column.name} holds the JSON text null"
        nulls = conn.execute(
            text("SELECT COUNT(*) FROM customers WHERE google_workspace_account IS NULL")
        ).scalar_one()
        runs = conn.execute(
            text("SELECT COUNT(*) FROM sync_runs WHERE unknown_fields IS NULL AND warnings IS NULL")
        ).scalar_one()
    assert nulls == without
    assert runs == 3  # two syncs and a reconcile


def test_json_columns_are_jsonb_on_postgresql(postgres_url: str) -> None:
    two_runs(postgres_url)
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            kinds = conn.execute(
                text(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND data_type IN ('json', 'jsonb')"
                )
            ).all()
            assert {k for _, _, k in kinds} == {"jsonb"}
            assert ("v_devices", "metadata", "jsonb") in kinds
            json_columns = {
                (t.name, c.name)
                for t in Base.metadata.tables.values()
                for c in t.columns
                if isinstance(c.type, JSON)
            }
            assert {(t, c) for t, c, _ in kinds} == json_columns | {("v_devices", "metadata")}
            typeof = "SELECT DISTINCT pg_typeof({c})::text FROM {t}"
            for table, column in (
                ("v_devices", "metadata"), ("devices", "raw"), ("customers", "owner_emails"),
                ("sync_runs", "scope_customer_ids"), ("sync_listings", "company_ids"),
            ):  # fmt: skip
                assert conn.execute(text(typeof.format(c=column, t=table))).scalar() == "jsonb"
            # what failed on json: equality, DISTINCT, GROUP BY, the ? operator
            empty = conn.execute(text("SELECT COUNT(*) FROM v_devices WHERE metadata = '{}'"))
            assert empty.scalar_one() > 0
            conn.execute(text("SELECT DISTINCT * FROM v_devices")).all()
            conn.execute(text("SELECT metadata, COUNT(*) FROM v_devices GROUP BY metadata")).all()
            tagged = conn.execute(text("SELECT COUNT(*) FROM v_devices WHERE metadata ? 'site'"))
            assert tagged.scalar_one() >= 0
    finally:
        engine.dispose()


# --- v_device_changes --------------------------------------------------------------------------


def test_v_device_changes_names_every_kind_of_change(engine: Engine) -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    big = 2**53 + 11
    history = [  # (run, removed, owner): added, changed, moved, removed, reappeared
        (1, False, 10), (2, False, 10), (3, False, big), (4, True, None), (5, False, 10),
    ]  # fmt: skip
    with engine.begin() as conn:
        for run_id in range(1, 6):
            at = t0 + timedelta(days=run_id)
            conn.execute(insert(SyncRun).values(run_id=run_id, started_at=at, finished_at=at,
                                                status="succeeded", trigger="manual"))  # fmt: skip
        for n, (run_id, removed, owner) in enumerate(history):
            start = t0 + timedelta(days=run_id, microseconds=123)
            end = t0 + timedelta(days=history[n + 1][0], microseconds=123) if n < 4 else None
            conn.execute(insert(DeviceVersion).values(
                device_id=big, valid_from=start, valid_to=end, run_id=run_id, removed=removed,
                owner_company_id=owner, content_hash=str(n), raw=None if removed else {"n": n},
            ))  # fmt: skip
        # another device, added in run 2 before this one changed: the order is by time
        conn.execute(insert(DeviceVersion).values(
            device_id=7, valid_from=t0 + timedelta(days=2), run_id=2, owner_company_id=10,
            content_hash="x",
        ))  # fmt: skip
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM v_device_changes")).mappings().all()
    assert list(rows[0]) == [
        "run_id", "changed_at", "device_id", "change", "previous_company_id", "company_id",
        "version_id", "partner_id",
    ]  # fmt: skip
    got = [(r["run_id"], r["device_id"], r["change"], r["previous_company_id"], r["company_id"])
           for r in rows]  # fmt: skip
    assert got == [
        (1, big, "added", None, 10),
        (2, 7, "added", None, 10),
        (2, big, "changed", 10, 10),
        (3, big, "moved", 10, big),
        (4, big, "removed", big, None),
        (5, big, "reappeared", None, 10),
    ]


def test_v_device_changes_after_a_week_of_business(synced: tuple[Engine, Emulator, Any]) -> None:
    engine, _, m = synced
    with engine.connect() as conn:
        counts = dict(
            conn.execute(
                text("SELECT change, COUNT(*) FROM v_device_changes WHERE run_id = 2 GROUP BY 1")
            ).all()
        )
        moved = conn.execute(
            text(
                "SELECT device_id, previous_company_id, company_id FROM v_device_changes "
                "WHERE change = 'moved' AND changed_at > :since"
            ),
            {"since": "2000-01-01"},
        ).all()
        times = conn.execute(text("SELECT changed_at FROM v_device_changes")).scalars().all()
    assert counts == {
        "moved": len(m.moved) + len(m.to_vendors),
        "changed": len(m.relabelled),
        "added": len(m.added),
        "removed": len(m.unclaimed) + len(m.deleted),
    }
    assert {r.device_id for r in moved} == set(m.moved) | set(m.to_vendors)
    assert {(r.previous_company_id, r.company_id) for r in moved if r.device_id in m.moved} == {
        (m.from_company, m.to_company)
    }
    assert times == sorted(times)  # oldest first


# --- sql: the same values from both databases ---------------------------------------------------


def _copy_snapshot(source: str, target: str) -> None:
    """Every public table's rows from one database into another (at the same schema)."""
    src, dst = make_engine(source), make_engine(target)
    try:
        db.upgrade(dst)
        with src.connect() as read, dst.begin() as write:
            for table in PUBLIC:
                rows = [dict(r) for r in read.execute(select(table)).mappings()]
                if rows:
                    write.execute(insert(table), rows)
    finally:
        src.dispose()
        dst.dispose()


ORDER = {
    "customers": "company_id", "devices": "device_id", "device_claims": "device_id, {text}",
    "device_metadata": "device_id, {text}", "device_versions": "version_id",
    "identifier_lookups": "lookup_id", "sync_runs": "run_id", "sync_listings": "listing_id",
    "v_devices": "device_id", "v_customer_device_counts": "company_id",
    "v_device_changes": "version_id", "v_reconciliation": "line_number",
}  # fmt: skip
TEXT_KEY = {"device_claims": "section_type", "device_metadata": "key"}


def test_sql_csv_is_byte_equal_from_sqlite_and_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    lite = f"sqlite:///{tmp_path / 'snapshot.db'}"
    two_runs(lite)
    _copy_snapshot(lite, postgres_url)
    compared = 0
    for name, order in ORDER.items():
        outputs = []
        for url, collate in ((lite, ""), (postgres_url, ' COLLATE "C"')):
            key = TEXT_KEY.get(name, "") + collate
            query = f"SELECT * FROM {name} ORDER BY {order.format(text=key)}"
            result = run("sql", "--format", "csv", "--database-url", url, query)
            assert result.exit_code == 0, result.output
            outputs.append(result.stdout_bytes)
        assert outputs[0] == outputs[1], name
        compared += outputs[0].count(b"\n")
    assert compared > 3000
    devices = run("sql", "--format", "csv", "--database-url", lite, "SELECT * FROM v_devices")
    out = devices.stdout
    assert "+00:00" not in out  # v_devices has no timestamps; sync_runs below has
    runs = run("sql", "--format", "csv", "--database-url", lite, "SELECT * FROM sync_runs")
    started = runs.stdout.splitlines()[1].split(",")[1]
    assert datetime.fromisoformat(started).tzinfo == UTC
    assert len(started) == len("2026-11-14T11:37:20.088000+00:00")


def test_sql_prints_timestamps_json_and_booleans_alike(
    synced: tuple[Engine, Emulator, Any],
) -> None:
    engine = synced[0]
    url = engine.url.render_as_string(hide_password=False)
    query = (
        "SELECT run_id, started_at, MAX(finished_at) OVER () AS newest, dry_run, "
        "scope_customer_ids FROM sync_runs ORDER BY run_id"
    )
    result = run("sql", "--format", "csv", "--database-url", url, query)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "run_id,started_at,newest,dry_run,scope_customer_ids"
    _, started, newest, dry, scope = lines[1].split(",")
    for stamp in (started, newest):
        assert datetime.fromisoformat(stamp).tzinfo == UTC
        assert stamp.endswith("+00:00")
        assert stamp[10] == "T"
        assert stamp[19] == "."
    assert (dry, scope) == ("false", "")
    tagged = "SELECT metadata FROM v_devices WHERE metadata <> '{}' ORDER BY device_id"
    meta = run("sql", "--format", "json", "--database-url", url, tagged)
    first = json.loads(meta.stdout)[0]["metadata"]
    assert isinstance(first, dict)
    assert first
    table = run("sql", "--database-url", url, tagged)
    compact = json.dumps(first, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    assert compact in table.stdout


def test_an_id_beyond_2_53_survives_a_json_round_trip(synced: tuple[Engine, Emulator, Any]) -> None:
    engine = synced[0]
    url = engine.url.render_as_string(hide_password=False)
    with engine.connect() as conn:
        big = conn.execute(
            text("SELECT MAX(company_id) FROM v_customer_device_counts")
        ).scalar_one()
    assert big > MAX_SAFE_INTEGER
    query = f"SELECT company_id, devices FROM v_customer_device_counts WHERE company_id = {big}"
    result = run("sql", "--format", "json", "--database-url", url, query)
    # a JavaScript client parses every number as a double
    [row] = json.loads(result.stdout, parse_int=float)
    assert row["company_id"] == str(big)
    assert isinstance(row["devices"], float)  # a small count stays a number
    assert row["devices"] > 0
    csv_out = run("sql", "--format", "csv", "--database-url", url, query).stdout
    assert csv_out.splitlines()[1].startswith(f"{big},")

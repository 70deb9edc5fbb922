"""Schema: migrations from empty, models agree with migrations, down and up again, the views."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, text
from sqlalchemy.engine import Engine

from inventory import db
from inventory.errors import SchemaMismatchError
from inventory.models import Base, Customer, Device, DeviceClaim, DeviceMetadata
from inventory.store import make_engine
from tests.syncutil import staging_tables

ROOT = Path(__file__).resolve().parent.parent
SPEC_TABLES = {
    "customers", "devices", "device_claims", "device_metadata", "device_versions",
    "identifier_lookups", "sync_runs", "sync_listings",
}  # fmt: skip


def test_upgrade_from_empty_creates_every_table_and_view(engine: Engine) -> None:
    insp = inspect(engine)
    assert set(insp.get_table_names()) >= SPEC_TABLES
    assert {"v_devices", "v_customer_device_counts"} <= set(insp.get_view_names())
    indexed = {col for ix in insp.get_indexes("devices") for col in ix["column_names"]}
    assert {"imei", "imei2", "meid", "serial_number"} <= indexed
    claim_ix = {c for ix in insp.get_indexes("device_claims") for c in ix["column_names"]}
    assert "owner_company_id" in claim_ix
    assert db.current_revision(engine) == db.head_revision()


def test_models_and_migrations_agree(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []


def test_downgrade_to_base_then_upgrade_again(engine: Engine) -> None:
    db.downgrade(engine, "base")
    insp = inspect(engine)
    assert not (SPEC_TABLES & set(insp.get_table_names()))
    assert not insp.get_view_names()
    db.upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= SPEC_TABLES


def test_upgrade_is_idempotent(engine: Engine) -> None:
    before, after, backup = db.upgrade(engine)
    assert before == after == db.head_revision()
    assert backup is None


def test_views_answer_on_seeded_rows(engine: Engine) -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    big = 2**53 + 7  # an id a float would round
    with engine.begin() as conn:
        conn.execute(
            insert(Customer),
            [
                {
                    "company_id": cid, "partner_id": 1, "company_name": name,
                    "owner_emails": [], "admin_emails": [], "raw": {}, "content_hash": "x",
                    "first_seen_at": now, "last_changed_at": now,
                    "google_workspace_customer_id": ws,
                    "removed_at": now if cid == 30 else None,
                }
                for cid, name, ws in (
                    (10, "Acme", None), (big, "Globex", "C0ws1"), (30, "Gone", None)
                )
            ],
        )  # fmt: skip
        devices = [(1, 10), (2, 10), (3, big), (4, None), (5, 10)]
        conn.execute(
            insert(Device),
            [
                {
                    "device_id": did, "partner_id": 1, "imei": f"35000000000000{did}",
                    "device_type": "DEVICE_TYPE_ANDROID", "raw": {}, "content_hash": "h",
                    "first_seen_at": now, "last_changed_at": now,
                    "removed_at": now if did == 5 else None,
                }
                for did, _ in devices
            ],
        )  # fmt: skip
        conn.execute(
            insert(DeviceClaim),
            [
                {"device_id": did, "section_type": "SECTION_TYPE_ZERO_TOUCH",
                 "owner_company_id": owner, "google_workspace_customer_id": None}
                for did, owner in devices if owner is not None and did != 3
            ] + [
                {"device_id": 3, "section_type": "SECTION_TYPE_ZERO_TOUCH",
                 "owner_company_id": None, "google_workspace_customer_id": "C0ws1"},
                {"device_id": 4, "section_type": "SECTION_TYPE_SIM_LOCK",
                 "owner_company_id": 10, "google_workspace_customer_id": None},
            ],
        )  # fmt: skip
        conn.execute(
            insert(DeviceMetadata),
            [
                {"device_id": 1, "key": "colour", "value": "blue"},
                {"device_id": 1, "key": "note", "value": "ünïcode"},
            ],
        )
    with engine.connect() as conn:
        cols = "device_id, company_id, company_name, metadata"
        rows = conn.execute(text(f"SELECT {cols} FROM v_devices ORDER BY device_id")).all()
        view = "v_customer_device_counts"
        counts = conn.execute(text(f"SELECT * FROM {view} ORDER BY company_id")).all()
    by_id = {r.device_id: r for r in rows}
    assert sorted(by_id) == [1, 2, 3, 4]  # device 5 is removed
    assert by_id[1].company_id == 10
    assert by_id[1].company_name == "Acme"
    meta = by_id[1].metadata
    assert (json.loads(meta) if isinstance(meta, str) else meta) == {
        "colour": "blue",
        "note": "ünïcode",
    }
    empty = by_id[2].metadata
    assert (json.loads(empty) if isinstance(empty, str) else empty) == {}
    assert by_id[3].company_id == big
    assert by_id[3].company_name == "Globex"
    assert by_id[4].company_id is None  # only a SIM-lock claim: no zero-touch owner
    assert [tuple(r) for r in counts] == [(1, 10, "Acme", 2), (1, big, "Globex", 1)]


def test_check_revision_refuses_an_empty_or_old_database(db_url: str) -> None:
    eng = make_engine(db_url)
    try:
        with pytest.raises(SchemaMismatchError, match="zt-inventory init"):
            db.check_revision(eng)
        db.upgrade(eng)
        db.check_revision(eng)
        with eng.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
        with pytest.raises(SchemaMismatchError, match="newer than this zt-inventory"):
            db.check_revision(eng)
    finally:
        eng.dispose()


def test_sqlite_is_backed_up_before_an_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inv.db'}"
    eng = make_engine(url)
    db.upgrade(eng)
    backup = db.backup_sqlite(eng, "0000")
    assert backup is not None
    assert backup.exists()
    assert backup.name.startswith("inv.db.bak-0000-")
    copy = make_engine(f"sqlite:///{backup}")
    assert db.current_revision(copy) == db.head_revision()
    copy.dispose()
    eng.dispose()


def test_non_editable_install_ships_the_migrations(tmp_path: Path) -> None:
    """``pip install .`` (a real wheel) then ``zt-inventory init`` from another directory."""
    wheels = tmp_path / "wheels"
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    wheel = next(wheels.glob("zt_inventory-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert (site / "inventory" / "_migrations" / "env.py").is_file()
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))
    probe = subprocess.run(
        [sys.executable, "-c", "import inventory, sys; print(inventory.__file__)"],
        cwd=workdir, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert probe.stdout.strip().startswith(str(site)), "the installed copy must be the one used"
    done = subprocess.run(
        [sys.executable, "-m", "inventory", "init", "--database-url", "sqlite:///x.db"],
        cwd=workdir, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    eng = make_engine(f"sqlite:///{workdir / 'x.db'}")
    assert db.current_revision(eng) == db.head_revision()
    eng.dispose()


def _staging_persistence(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        sql = "SELECT relpersistence FROM pg_class WHERE relname LIKE 'sync\\_staging\\_%'"
        return {r[0] for r in conn.execute(text(sql))}


def test_staging_tables_leave_the_schema(db_url: str) -> None:
    """Revision 0003 drops the permanent staging tables (runs stage into TEMPORARY tables);
    downgrading to 0002 brings them back as they were, UNLOGGED on PostgreSQL."""
    engine = make_engine(db_url)
    try:
        db.upgrade(engine)
        assert staging_tables(engine) == []
        db.downgrade(engine, "0002")
        assert len(staging_tables(engine)) == 5
        if engine.dialect.name == "postgresql":
            assert _staging_persistence(engine) == {"u"}  # 5 tables and their indexes
        db.upgrade(engine)
        assert staging_tables(engine) == []
    finally:
        engine.dispose()


def _json_types(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        sql = (
            "SELECT DISTINCT data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type IN ('json', 'jsonb')"
        )
        return {r[0] for r in conn.execute(text(sql))}


def test_revisions_0003_to_0005_convert_existing_data_and_go_back(db_url: str) -> None:
    """A database written by revision 0002's code: JSON ``null`` texts, json columns, runs
    without a scope. Upgraded, then downgraded to 0002 and upgraded again."""
    engine = make_engine(db_url)
    postgres = engine.dialect.name == "postgresql"
    try:
        db.upgrade(engine, "0002")
        stamp = "'2026-03-01 10:00:00.000000" + ("+00'" if postgres else "'")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO customers (company_id, partner_id, owner_emails, admin_emails, "
                "google_workspace_account, raw, content_hash, first_seen_at, last_changed_at) "
                f"VALUES (9007199261810833, 1, '[]', '[]', 'null', '{{}}', 'h', {stamp}, {stamp}),"
                f" (2, 1, '[]', '[]', '{{\"customerId\": \"C1\"}}', '{{}}', 'h', {stamp}, {stamp})"
            ))  # fmt: skip
            conn.execute(text(
                "INSERT INTO sync_runs (started_at, finished_at, status, trigger, dry_run, "
                "customers_seen, devices_seen, devices_added, devices_changed, devices_removed, "
                "devices_reappeared, api_requests, retries, unknown_fields, warnings) "
                f"VALUES ({stamp}, {stamp}, 'succeeded', 'manual', FALSE, 0, 0, 0, 0, 0, 0, 0, 0, "
                "'null', 'null')"
            ))  # fmt: skip
            conn.execute(text(
                "INSERT INTO device_versions (device_id, valid_from, run_id, removed, "
                f"content_hash, raw) VALUES (5, {stamp}, 1, TRUE, 'h', 'null')"
            ))  # fmt: skip
        if postgres:
            assert _json_types(engine) == {"json"}
        db.upgrade(engine)
        with engine.connect() as conn:
            nulls = conn.execute(text(
                "SELECT (SELECT COUNT(*) FROM customers WHERE google_workspace_account IS NULL),"
                " (SELECT COUNT(*) FROM sync_runs WHERE unknown_fields IS NULL"
                "   AND warnings IS NULL AND scope = 'full' AND scope_customer_ids IS NULL),"
                " (SELECT COUNT(*) FROM device_versions WHERE raw IS NULL)"
            )).one()  # fmt: skip
            assert tuple(nulls) == (1, 1, 1)
            account = conn.execute(
                text("SELECT google_workspace_account FROM customers WHERE company_id = 2")
            ).scalar_one()
            assert (json.loads(account) if isinstance(account, str) else account) == {
                "customerId": "C1"
            }
            assert conn.execute(text("SELECT COUNT(*) FROM v_device_changes")).scalar_one() == 1
        if postgres:
            assert _json_types(engine) == {"jsonb"}
        db.downgrade(engine, "0002")
        insp = inspect(engine)
        assert "scope" not in {c["name"] for c in insp.get_columns("sync_runs")}
        assert "v_device_changes" not in insp.get_view_names()
        assert "ix_device_versions_valid_from" not in {
            ix["name"] for ix in insp.get_indexes("device_versions")
        }
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM v_customer_device_counts")).scalar() == 2
        if postgres:
            assert _json_types(engine) == {"json"}
        db.upgrade(engine)
        assert db.current_revision(engine) == db.head_revision()
    finally:
        engine.dispose()

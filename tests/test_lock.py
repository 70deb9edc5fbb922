"""The writer lock (SPEC guarantee 4): two writers exclude each other, and on PostgreSQL a role
granted SELECT alone can neither take the lock nor keep a sync from running."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ProgrammingError

from inventory.emulator import Emulator, generate_fleet
from inventory.errors import ConfigError, LockedError
from inventory.models import Base
from inventory.store import LOCK_TABLE, WriterLock, make_engine
from inventory.sync import SyncResult
from tests.syncutil import expected_devices, settings_for, sync

OLD_ADVISORY_KEY = 0x7A74_696E_7600  # the advisory lock of zt-inventory before revision 0008
SYNC_TIMEOUT_S = 120.0
LOCKED = (
    "another zt-inventory sync is writing {where}; wait for it to finish "
    "(`zt-inventory status` shows it) and try again"
)


@pytest.fixture
def emu() -> Emulator:
    return Emulator(generate_fleet(devices=300, customers=12, seed=5, partner_id=7_000_000_002))


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def test_two_writers_exclude_each_other(engine: Engine, db_url: str) -> None:
    other = make_engine(db_url)
    try:
        with WriterLock(engine):
            with pytest.raises(LockedError) as info:
                WriterLock(other).acquire()
            assert str(info.value) == LOCKED.format(where=_where(other))
        with WriterLock(other):  # released: the next writer takes it
            pass
    finally:
        other.dispose()


def test_a_second_sync_is_refused_while_one_writes(
    emu: Emulator, engine: Engine, db_url: str
) -> None:
    holder = make_engine(db_url)
    try:
        with WriterLock(holder), pytest.raises(LockedError):
            sync(emu, settings_for(emu, db_url))
        assert sync(emu, settings_for(emu, db_url)).ok
    finally:
        holder.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_lock_goes_with_its_connection(engine: Engine, db_url: str) -> None:
    """A process that dies closes its connection: the server ends the transaction and the
    lock with it (here the server ends the holder's session, as it does for a dead client)."""
    lock = WriterLock(engine)
    lock.acquire()
    other = make_engine(db_url)
    try:
        with engine.connect() as admin:
            [(pid, _xid, _xmin)] = _holders(admin)
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with WriterLock(other):
            pass
        lock.release()  # the connection is gone: releasing still works
    finally:
        other.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_lock_holds_no_transaction_id(engine: Engine) -> None:
    """The lock's open transaction holds back nothing VACUUM may clean up: no transaction id,
    no snapshot, for the whole run."""
    with WriterLock(engine), engine.connect() as conn:
        [(_pid, xid, xmin)] = _holders(conn)
    assert (xid, xmin) == (None, None)


def _holders(conn: Connection) -> list[tuple[int, Any, Any]]:
    """(pid, transaction id, snapshot xmin) of each session that holds the writer lock."""
    rows = conn.execute(
        text(
            "SELECT a.pid, a.backend_xid, a.backend_xmin FROM pg_stat_activity a "
            "JOIN pg_locks l ON l.pid = a.pid JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = :t AND l.mode = 'ShareUpdateExclusiveLock' AND l.granted"
        ),
        {"t": LOCK_TABLE},
    )
    return [(int(pid), xid, xmin) for pid, xid, xmin in rows]


# --- a role granted SELECT alone -----------------------------------------------------------


@pytest.fixture
def reader_url(engine: Engine, db_url: str) -> Iterator[str]:
    """A login role granted CONNECT, USAGE on the schema and SELECT on every table, as the
    README's BI role is; its URL."""
    role = f"zt_reader_{uuid.uuid4().hex[:10]}"
    database = make_url(db_url).database
    with engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        conn.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"'))
    try:
        yield (
            make_url(db_url).set(username=role, password=None).render_as_string(hide_password=False)
        )
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"),
                {"r": role},
            )
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


def _refused(conn: Connection, sql: str) -> str:
    """Run ``sql`` in a savepoint; return the error that refused it."""
    savepoint = conn.begin_nested()
    try:
        conn.execute(text(sql))
    except ProgrammingError as exc:
        savepoint.rollback()
        return str(getattr(exc.orig, "sqlstate", ""))
    savepoint.rollback()
    return "accepted"


def _block_everything(conn: Connection) -> dict[str, str]:
    """Every lock a SELECT-only role may try, on the lock's table and every other table; the
    ones it is granted stay held by the open transaction."""
    conn.begin()
    tried: dict[str, str] = {}
    got = conn.execute(text(f"SELECT pg_try_advisory_lock({OLD_ADVISORY_KEY})")).scalar()
    tried["advisory lock, old key"] = "accepted" if got else "refused"
    conn.execute(text(f"SELECT pg_advisory_lock({OLD_ADVISORY_KEY} + 1)"))
    for clause in ("FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE", "FOR KEY SHARE"):
        tried[f"SELECT … {clause}"] = _refused(conn, f"SELECT * FROM {LOCK_TABLE} {clause}")
    for mode in ("ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "EXCLUSIVE"):
        tried[f"LOCK TABLE … {mode}"] = _refused(
            conn, f"LOCK TABLE {LOCK_TABLE} IN {mode} MODE NOWAIT"
        )
    # what it may take, it holds: ACCESS SHARE on every table, and a long read of each
    for table in Base.metadata.sorted_tables:
        conn.execute(text(f"LOCK TABLE {table.name} IN ACCESS SHARE MODE"))
        conn.execute(text(f"SELECT COUNT(*) FROM {table.name}"))
    tried["LOCK TABLE … ACCESS SHARE, every table"] = "accepted"
    return tried


def _sync_in_thread(emu: Emulator, db_url: str) -> SyncResult:
    """A sync that must finish in time even if something blocks it."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = sync(emu, settings_for(emu, db_url))
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(SYNC_TIMEOUT_S)
    assert not thread.is_alive(), "the sync was blocked by the read-only role's locks"
    if "error" in outcome:
        raise outcome["error"]
    result: SyncResult = outcome["result"]
    return result


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_select_only_role_cannot_block_a_sync(
    emu: Emulator, engine: Engine, db_url: str, reader_url: str
) -> None:
    assert sync(emu, settings_for(emu, db_url)).ok  # a snapshot for the reader to read
    reader = make_engine(reader_url)
    try:
        with reader.connect() as conn:
            tried = _block_everything(conn)
            assert tried == {
                "advisory lock, old key": "accepted",
                "SELECT … FOR UPDATE": "42501",  # insufficient_privilege
                "SELECT … FOR NO KEY UPDATE": "42501",
                "SELECT … FOR SHARE": "42501",
                "SELECT … FOR KEY SHARE": "42501",
                "LOCK TABLE … ROW SHARE": "42501",
                "LOCK TABLE … ROW EXCLUSIVE": "42501",
                "LOCK TABLE … SHARE UPDATE EXCLUSIVE": "42501",
                "LOCK TABLE … EXCLUSIVE": "42501",
                "LOCK TABLE … ACCESS SHARE, every table": "accepted",
            }
            emu.remove_device(next(iter(expected_devices(emu))))
            result = _sync_in_thread(emu, db_url)  # a re-sync that applies a change
            assert result.ok, result.error
            assert result.devices_removed == 1
            with WriterLock(engine):  # and the writer lock itself, as a run takes it
                pass
    finally:
        reader.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_sync_as_a_select_only_role_is_refused_as_configuration(
    emu: Emulator, engine: Engine, reader_url: str
) -> None:
    reader = make_engine(reader_url)
    try:
        with pytest.raises(ConfigError) as info:
            WriterLock(reader).acquire()
    finally:
        reader.dispose()
    assert info.value.errors == [
        f"database.url: the role of {_where(reader)} may not take the writer lock "
        f"(permission denied for table {LOCK_TABLE}); a sync needs a role that may write the "
        "snapshot, not a read-only one"
    ]

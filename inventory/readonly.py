"""Read-only access to the database: the revision-checked read engine and the ``sql`` runner.

The database itself refuses writes: SQLite is opened with ``mode=ro`` and ATTACH disabled, and
PostgreSQL runs the statement in a read-only transaction, as ``pg_read_all_data`` when the user
may take that role. Nothing here prints; failures are raised as :class:`InventoryError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from inventory.errors import InventoryError, ReadOnlyError, first_line
from inventory.redact import scrub
from inventory.sqlout import SQLITE_CONVERTERS, sqlite_rows
from inventory.store import make_engine, require_database_file

Row = tuple[Any, ...]
FETCH_ROWS = 500
SQL_READ_ROLE = "pg_read_all_data"  # PostgreSQL 14+: may read every table, write nothing


def read_engine(url: str, *, typed_values: bool = False) -> Engine:
    """A read-only engine on a database that exists and is at the schema this code expects.

    Args:
        url: the database URL.
        typed_values: SQLite only: connections convert values by their declared type
            (:data:`inventory.sqlout.SQLITE_CONVERTERS`) for the driver cursor's rows; not for
            SQLAlchemy statements, whose own types expect the stored text.

    Raises:
        SchemaMismatchError: the file is missing or the schema is not the expected revision.
    """
    # Imported here: Alembic costs half a second at start-up.
    from inventory import db

    require_database_file(url)
    detect = 0
    if typed_values:
        _register_sqlite_converters()
        detect = sqlite3.PARSE_DECLTYPES
    engine = make_engine(url, read_only=True, sqlite_detect_types=detect)
    try:
        db.check_revision(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _register_sqlite_converters() -> None:
    # sqlite3 keeps converters in one table per process; they apply only to connections opened
    # with detect_types, which only the sql command's engine is.
    for name, convert in SQLITE_CONVERTERS.items():
        sqlite3.register_converter(name, convert)


def _forbid_attach(dbapi_conn: Any, _record: Any) -> None:
    # mode=ro covers the main file, but ATTACH opens other files read-write (and creates them).
    dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)


def _is_write_refusal(exc: Exception) -> bool:
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate in ("25006", "42501"):  # read_only_sql_transaction, insufficient_privilege
        return True
    text = str(exc).lower()
    return any(
        marker in text
        for marker in (
            "readonly database",
            "read-only",
            "too many attached databases",
            "cannot vacuum from within a transaction",
        )
    )


@contextmanager
def run_read_only(
    url: str, statement: str
) -> Iterator[tuple[list[str], Iterator[tuple[Any, ...]]]]:
    """Run one statement on a connection the database itself keeps read-only.

    SQLite is opened with ``mode=ro`` and ATTACH disabled; PostgreSQL runs it in a read-only
    transaction, as ``pg_read_all_data`` when the user may take that role (so a superuser cannot
    write server files with COPY either), through the extended protocol (one statement only: no
    ``COMMIT; BEGIN READ WRITE; …``). Nothing is ever committed.

    Yields:
        (column names, row iterator); the values are in one form whichever database answered
        (:mod:`inventory.sqlout`): timestamps as aware UTC datetimes, JSON parsed, booleans as
        bools.

    Raises:
        ReadOnlyError: the database refused a write.
        InventoryError: the statement failed for another reason.
    """
    engine = read_engine(url, typed_values=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _forbid_attach)
        engine.dispose()  # the revision check's connection predates the listener
    dbapi_error = engine.dialect.loaded_dbapi.Error
    postgres = engine.dialect.name == "postgresql"
    try:
        with engine.connect() as conn:
            conn.begin()  # SQLite: BEGIN, so the statement reads one consistent snapshot
            raw = conn.connection.driver_connection
            assert raw is not None
            cursor = raw.cursor()
            try:
                if postgres:
                    _take_read_role(cursor)
                    cursor.execute(statement, prepare=True)
                else:
                    cursor.execute(statement)
                columns = [str(d[0]) for d in cursor.description or []]

                def rows() -> Iterator[Row]:
                    while columns:
                        batch = cursor.fetchmany(FETCH_ROWS)
                        if not batch:
                            return
                        yield from (tuple(r) for r in batch)

                yield columns, rows() if postgres else sqlite_rows(rows())
            except dbapi_error as exc:
                with suppress(dbapi_error):
                    cursor.close()
                conn.invalidate()  # e.g. a COPY left the protocol mid-stream
                raise _sql_error(exc, url) from None
            cursor.close()
    finally:
        engine.dispose()


def _take_read_role(cursor: Any) -> None:
    cursor.execute(
        # CASE, not AND: PostgreSQL may evaluate AND's operands in any order, and
        # pg_has_role fails for a role that does not exist (before PostgreSQL 14).
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s) "
        "THEN pg_has_role(current_user, %s, 'MEMBER') ELSE false END",
        (SQL_READ_ROLE, SQL_READ_ROLE),
    )
    row = cursor.fetchone()
    if row and row[0]:
        cursor.execute(f"SET LOCAL ROLE {SQL_READ_ROLE}")


def _sql_error(exc: Exception, url: str) -> InventoryError:
    message = scrub(first_line(str(exc)), url) or type(exc).__name__
    if _is_write_refusal(exc):
        return ReadOnlyError(f"the sql command is read-only: {message}")
    if "COPY cannot be used" in message:
        return InventoryError(
            "the sql command cannot run COPY; use a SELECT with --format csv instead"
        )
    return InventoryError(f"the query failed: {message}")

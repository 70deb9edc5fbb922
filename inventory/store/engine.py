"""Engines: the one place that knows how to open the configured database.

SQLite files run in WAL mode so that BI readers keep reading the previous snapshot while a sync
stages pages, with ``foreign_keys`` on and a busy timeout so that a reader's short lock never
fails a write.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

from inventory.errors import ConfigError, SchemaMismatchError
from inventory.redact import redact_url

SQLITE_BUSY_TIMEOUT_MS = 30_000


def parse_url(url: str) -> URL:
    """Parse a SQLAlchemy database URL, mapping ``postgresql://`` to the psycopg 3 driver.

    Raises:
        ConfigError: the URL is not a SQLite or PostgreSQL URL SQLAlchemy can read.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"database.url: cannot parse {redact_url(url)!r}; expected e.g. "
            "sqlite:///zt-inventory.db or postgresql+psycopg://user@host/db"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.get_driver_name() in ("psycopg2", "psycopg2cffi", ""):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"database.url: backend {backend!r} is not supported; use sqlite:///FILE "
            "or postgresql+psycopg://user@host/db"
        )
    return parsed


def make_engine(
    url: str | URL, *, read_only: bool = False, sqlite_detect_types: int = 0, **kwargs: Any
) -> Engine:
    """Create an engine for ``url`` with this project's connection settings.

    Args:
        url: a SQLAlchemy URL (``sqlite:///…`` or ``postgresql+psycopg://…``).
        read_only: open SQLite read-only (``mode=ro``) and PostgreSQL sessions with
            ``default_transaction_read_only``: the database itself refuses writes.
        sqlite_detect_types: ``detect_types`` of a read-only SQLite file's connections (the
            ``sql`` command's typed values); SQLAlchemy's own statements want 0.
        **kwargs: passed to :func:`sqlalchemy.create_engine`.
    """
    parsed = parse_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(
            parsed, read_only=read_only, detect_types=sqlite_detect_types, **kwargs
        )
    connect_args: dict[str, Any] = kwargs.pop("connect_args", {})
    if read_only:
        connect_args["options"] = "-c default_transaction_read_only=on"
    return create_engine(parsed, connect_args=connect_args, **kwargs)


def _sqlite_engine(url: URL, *, read_only: bool, detect_types: int, **kwargs: Any) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:")
    if read_only and not in_memory:

        def _connect_ro() -> sqlite3.Connection:
            # mode=ro: SQLite itself rejects every write, whatever the statement says.
            conn = sqlite3.connect(
                f"file:{database}?mode=ro",
                uri=True,
                check_same_thread=False,
                detect_types=detect_types,
            )
            conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            return conn

        engine = create_engine("sqlite://", creator=_connect_ro, **kwargs)
    else:
        engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling would defer BEGIN; let SQLAlchemy emit it.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if not read_only:
            cur.execute("PRAGMA foreign_keys = ON")
            if not in_memory:
                cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def require_database_file(url: str) -> None:
    """Refuse a SQLite URL whose file does not exist (rather than creating an empty one).

    Raises:
        SchemaMismatchError: naming the file's absolute path and ``zt-inventory init``.
    """
    path = sqlite_path(url)
    if path is not None and not Path(path).exists():
        raise SchemaMismatchError(
            f"database file {Path(path).resolve()} does not exist; run `zt-inventory init` "
            "first (or pass --database-url)"
        )


def database_label(url: str | URL) -> str:
    """The database as messages name it: the URL with its password hidden, and a SQLite
    file's path made absolute, so that a reader sees which file was used whatever the
    working directory (``sqlite:////srv/zt/zt-inventory.db``)."""
    path = sqlite_path(url)
    if path is not None:
        return f"sqlite:///{Path(path).resolve()}"
    return redact_url(url)


def sqlite_path(url: str | URL) -> str | None:
    """The file path of a SQLite URL, or None for PostgreSQL and in-memory SQLite."""
    parsed = parse_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    return None if database in ("", ":memory:") else database

"""Engines and sessions: one place that knows how to open the configured database.

SQLite files run in WAL mode so that BI readers keep reading the previous snapshot while a sync
stages pages, with ``foreign_keys`` on and a busy timeout so that a reader's short lock never
fails a write.
"""

from __future__ import annotations

import fcntl
import sqlite3
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

from inventory.errors import ConfigError, LockedError

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


def redact_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***``."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def make_engine(url: str | URL, *, read_only: bool = False, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with this project's connection settings.

    Args:
        url: a SQLAlchemy URL (``sqlite:///…`` or ``postgresql+psycopg://…``).
        read_only: open SQLite read-only (``mode=ro``) and PostgreSQL sessions with
            ``default_transaction_read_only``: the database itself refuses writes.
        **kwargs: passed to :func:`sqlalchemy.create_engine`.
    """
    parsed = parse_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, read_only=read_only, **kwargs)
    connect_args: dict[str, Any] = kwargs.pop("connect_args", {})
    if read_only:
        connect_args["options"] = "-c default_transaction_read_only=on"
    return create_engine(parsed, connect_args=connect_args, **kwargs)


def _sqlite_engine(url: URL, *, read_only: bool, **kwargs: Any) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:")
    if read_only and not in_memory:

        def _connect_ro() -> sqlite3.Connection:
            # mode=ro: SQLite itself rejects every write, whatever the statement says.
            conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, check_same_thread=False)
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


def sqlite_path(url: str | URL) -> str | None:
    """The file path of a SQLite URL, or None for PostgreSQL and in-memory SQLite."""
    parsed = parse_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    return None if database in ("", ":memory:") else database


LOCK_KEY = 0x7A74_696E_7600  # "ztinv": the PostgreSQL advisory lock of zt-inventory's writer


class WriterLock:
    """The one-writer-at-a-time lock of a database, held for the length of a run.

    PostgreSQL: a session-level advisory lock on a connection of its own. SQLite: an exclusive
    ``flock`` on ``<database>.lock`` beside the file. Both vanish with the process that held
    them, so a run killed with SIGKILL never blocks the next one.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Any = None
        self._file: Any = None

    def acquire(self) -> None:
        """Take the lock or fail at once.

        Raises:
            LockedError: another run holds it.
        """
        where = redact_url(self.engine.url)
        message = (
            f"another zt-inventory sync is writing {where}; wait for it to finish "
            "(`zt-inventory status` shows it) and try again"
        )
        if self.engine.dialect.name == "postgresql":
            conn = self.engine.connect()
            got = conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({LOCK_KEY})").scalar()
            conn.commit()
            if not got:
                conn.close()
                raise LockedError(message)
            self._conn = conn
            return
        path = sqlite_path(self.engine.url)
        if path is None:
            return
        handle = open(f"{path}.lock", "a+")  # noqa: SIM115 - held open for the whole run
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise LockedError(message) from None
        self._file = handle

    def release(self) -> None:
        """Give the lock back (idempotent)."""
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql(f"SELECT pg_advisory_unlock({LOCK_KEY})")
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

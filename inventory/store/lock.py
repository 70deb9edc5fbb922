"""The one-writer-at-a-time lock of a database (SPEC guarantee 4)."""

from __future__ import annotations

import fcntl
from typing import Any

from sqlalchemy.engine import Engine

from inventory.errors import LockedError
from inventory.redact import redact_url
from inventory.store.engine import sqlite_path

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

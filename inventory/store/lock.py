"""The one-writer-at-a-time lock of a database (SPEC guarantee 4).

PostgreSQL: the table ``sync_lock`` (revision 0008), locked ``IN SHARE UPDATE EXCLUSIVE MODE
NOWAIT`` in a transaction held open on a connection of the lock's own for the length of a run.
Only a role allowed to write the snapshot can take that lock: PostgreSQL lets a role with
SELECT alone take nothing stronger than ACCESS SHARE on a table (``LOCK TABLE`` or a plain
``SELECT``), which this mode does not conflict with, and every row lock (``SELECT … FOR
UPDATE``/``FOR SHARE``/``FOR KEY SHARE``) needs UPDATE. The advisory lock this replaces could
be taken by any role that may connect, so a read-only BI role could stop every sync.

Why a table lock rather than ``SELECT … FOR UPDATE`` on a row of it: a row lock gives the
holding transaction a transaction id, and an open transaction with an id holds back what
VACUUM may clean up in the whole database for as long as the run lasts (hours for a large
fleet); a table lock needs no transaction id and holds no snapshot between statements.
The mode is the weakest that conflicts with itself: it blocks no reader and no writer of the
table, only VACUUM and ANALYZE of ``sync_lock`` itself (autovacuum skips a locked table).

SQLite: an exclusive ``flock`` on ``<database>.lock`` beside the file. Both locks vanish with
the process that held them (the server ends the transaction of a closed connection), so a run
killed with SIGKILL never blocks the next one.
"""

from __future__ import annotations

import fcntl
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from inventory.errors import ConfigError, LockedError, first_line
from inventory.store.engine import database_label, sqlite_path

LOCK_TABLE = "sync_lock"
# SQLSTATEs of PostgreSQL: lock_not_available (NOWAIT), insufficient_privilege
_LOCK_NOT_AVAILABLE = "55P03"
_INSUFFICIENT_PRIVILEGE = "42501"


class WriterLock:
    """The one-writer-at-a-time lock of a database, held for the length of a run.

    See the module docstring for how each database keeps it.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._file: Any = None

    def acquire(self) -> None:
        """Take the lock or fail at once.

        Raises:
            LockedError: another run holds it.
            ConfigError: the database role may not take it (a read-only role).
        """
        where = database_label(self.engine.url)
        message = (
            f"another zt-inventory sync is writing {where}; wait for it to finish "
            "(`zt-inventory status` shows it) and try again"
        )
        if self.engine.dialect.name == "postgresql":
            self._conn = _lock_table(self.engine, message, where)
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
            conn, self._conn = self._conn, None
            try:
                conn.rollback()  # ends the transaction that holds the table lock
            except DBAPIError:
                conn.invalidate()  # the server is gone, and the lock with it
            finally:
                conn.close()
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_table(engine: Engine, message: str, where: str) -> Connection:
    """A connection whose open transaction holds the lock on ``sync_lock``."""
    conn = engine.connect()
    try:
        conn.begin()
        # the transaction stays idle for the whole run: a server-wide idle timeout would end
        # it, and the lock with it, under a run that is still writing
        conn.exec_driver_sql("SET LOCAL idle_in_transaction_session_timeout = 0")
        conn.exec_driver_sql(f"LOCK TABLE {LOCK_TABLE} IN SHARE UPDATE EXCLUSIVE MODE NOWAIT")
    except DBAPIError as exc:
        conn.close()
        state = getattr(exc.orig, "sqlstate", None)
        if state == _LOCK_NOT_AVAILABLE:
            raise LockedError(message) from None
        if state == _INSUFFICIENT_PRIVILEGE:
            raise ConfigError(
                f"database.url: the role of {where} may not take the writer lock "
                f"({first_line(str(exc.orig))}); a sync needs a role that may write the "
                "snapshot, not a read-only one"
            ) from None
        raise
    except BaseException:
        conn.close()
        raise
    return conn

"""The database: engines (``engine``), the writer lock (``lock``), the record of runs
(``runs``) and reads of the current snapshot (``snapshot``)."""

from __future__ import annotations

from inventory.store.engine import (
    SQLITE_BUSY_TIMEOUT_MS,
    database_label,
    make_engine,
    parse_url,
    require_database_file,
    sqlite_path,
)
from inventory.store.lock import LOCK_TABLE, WriterLock

__all__ = [
    "LOCK_TABLE",
    "SQLITE_BUSY_TIMEOUT_MS",
    "WriterLock",
    "database_label",
    "make_engine",
    "parse_url",
    "require_database_file",
    "sqlite_path",
]

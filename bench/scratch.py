"""Scratch databases for measured runs, and what the bench reads from them afterwards.

:class:`ScratchDatabase` is an empty SQLite file or PostgreSQL database (``zt_bench_*``,
created on the server of ``--pg-url`` and dropped after); :func:`database_bytes` is its size
on disk after a run; :class:`WriteCounter` counts the rows a run wrote in the public tables.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SQLITE_SUFFIXES = ("", "-wal", "-shm", ".lock")

# The public tables whose writes a re-sync must not make, with each one's key.
WATCHED = {
    "devices": "device_id",
    "device_claims": "device_id, section_type",
    "device_metadata": "device_id, key",
    "device_versions": "version_id",
    "customers": "company_id",
}


class ScratchDatabase:
    """An empty database for one measured run: a SQLite file or a PostgreSQL database.

    Args:
        kind: ``sqlite`` or ``postgresql``.
        pg_url: the PostgreSQL server's admin URL (a database there is used to CREATE/DROP).
        workdir: where SQLite files go.
    """

    def __init__(self, kind: str, pg_url: str, workdir: Path) -> None:
        self.kind = kind
        self._admin_url = pg_url
        if kind == "sqlite":
            self.path: Path | None = workdir / f"zt_bench_{uuid.uuid4().hex[:8]}.db"
            self.url = f"sqlite:///{self.path}"
            self.name = self.path.name
        else:
            from sqlalchemy.engine import make_url

            self.path = None
            self.name = f"zt_bench_{uuid.uuid4().hex[:10]}"
            self._admin("CREATE DATABASE " + self.name)
            parsed = make_url(pg_url).set(database=self.name)
            self.url = parsed.render_as_string(hide_password=False)

    def _admin(self, sql: str) -> Any:
        """Run ``sql`` on the admin connection; return the first value of its first row."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                result = conn.execute(text(sql))
                return result.scalar() if result.returns_rows else None
        finally:
            engine.dispose()

    def size_bytes(self) -> int:
        """Bytes on disk: the SQLite file and its WAL, or ``pg_database_size``."""
        if self.kind == "sqlite":
            assert self.path is not None
            files = (Path(str(self.path) + s) for s in SQLITE_SUFFIXES[:2])
            return sum(f.stat().st_size for f in files if f.exists())
        return int(self._admin(f"SELECT pg_database_size('{self.name}')"))

    def drop(self) -> None:
        """Delete the database (idempotent)."""
        if self.kind == "sqlite":
            assert self.path is not None
            for suffix in SQLITE_SUFFIXES:
                Path(str(self.path) + suffix).unlink(missing_ok=True)
        elif self.name:
            self._admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            self.name = ""

    def __enter__(self) -> ScratchDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()


class WriteCounter:
    """Counts rows inserted, updated or deleted in the public tables between start and stop:
    on PostgreSQL by comparing every row's ``xmin``, on SQLite with counting triggers."""

    def __init__(self, db: ScratchDatabase) -> None:
        self.db = db
        self._before: dict[str, set[tuple[Any, ...]]] = {}

    def _engine(self) -> Any:
        from sqlalchemy import create_engine

        return create_engine(self.db.url)

    def start(self) -> None:
        """Snapshot xmin (PostgreSQL) or install counting triggers (SQLite)."""
        from sqlalchemy import text

        engine = self._engine()
        with engine.begin() as conn:
            if self.db.kind == "postgresql":
                for table, key in WATCHED.items():
                    rows = conn.execute(text(f"SELECT {key}, xmin::text FROM {table}"))
                    self._before[table] = {tuple(r) for r in rows}
            else:
                conn.execute(text("CREATE TABLE bench_writes (tbl TEXT PRIMARY KEY, n INTEGER)"))
                for table in WATCHED:
                    conn.execute(text(f"INSERT INTO bench_writes VALUES ('{table}', 0)"))
                    for op in ("INSERT", "UPDATE", "DELETE"):
                        conn.execute(
                            text(
                                f"CREATE TRIGGER bench_{table}_{op.lower()} AFTER {op} "
                                f"ON {table} BEGIN UPDATE bench_writes SET n = n + 1 "
                                f"WHERE tbl = '{table}'; END"
                            )
                        )
        engine.dispose()

    def stop(self) -> dict[str, int]:
        """Rows written per table since :meth:`start`; removes the triggers."""
        from sqlalchemy import text

        engine = self._engine()
        written: dict[str, int] = {}
        with engine.begin() as conn:
            if self.db.kind == "postgresql":
                for table, key in WATCHED.items():
                    rows = conn.execute(text(f"SELECT {key}, xmin::text FROM {table}"))
                    after = {tuple(r) for r in rows}
                    before = self._before[table]
                    gone = {r[:-1] for r in before} - {r[:-1] for r in after}
                    written[table] = len(after - before) + len(gone)
            else:
                for tbl, n in conn.execute(text("SELECT tbl, n FROM bench_writes")):
                    written[tbl] = int(n)
                for table in WATCHED:
                    for op in ("insert", "update", "delete"):
                        conn.execute(text(f"DROP TRIGGER bench_{table}_{op}"))
                conn.execute(text("DROP TABLE bench_writes"))
        engine.dispose()
        return written

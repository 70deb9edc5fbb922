"""Schema management: Alembic configured in code, so no command depends on the working directory.

The migrations live in the repository's top-level ``migrations/`` and ship inside the wheel as
``inventory/_migrations`` (see ``pyproject.toml``).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from inventory.errors import SchemaMismatchError
from inventory.store import database_label, sqlite_path


def migrations_dir() -> Path:
    """Where the Alembic environment is: inside the installed package, else the checkout."""
    packaged = Path(__file__).resolve().parent / "_migrations"
    if (packaged / "env.py").is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic ``Config`` pointing at this package's migrations.

    Args:
        engine: when given, migrations run on a connection of this engine
            (passed through ``config.attributes["engine"]``).
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str, Path | None]:
    """Create or upgrade the schema; idempotent.

    An existing SQLite file whose schema is behind is copied to a timestamped backup first.

    Returns:
        (revision before, revision after, backup path or None).
    """
    before = current_revision(engine)
    target = head_revision() if revision == "head" else revision
    backup: Path | None = None
    if before is not None and before != target:
        backup = backup_sqlite(engine, before)
    command.upgrade(alembic_config(engine), revision)
    return before, current_revision(engine) or "", backup


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Downgrade the schema (tests and emergencies)."""
    command.downgrade(alembic_config(engine), revision)


def backup_sqlite(engine: Engine, revision: str) -> Path | None:
    """Copy a SQLite database file next to itself before an upgrade; None for PostgreSQL."""
    path = sqlite_path(engine.url)
    if path is None or not Path(path).exists():
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = Path(f"{path}.bak-{revision}-{stamp}")
    # The backup API copies a consistent snapshot even with a WAL file beside the database.
    src = sqlite3.connect(path)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    return target


def check_revision(engine: Engine) -> None:
    """Refuse a database that is not at the schema this code expects.

    Raises:
        SchemaMismatchError: with one line naming ``zt-inventory init``.
    """
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    where = database_label(engine.url)
    if current is None:
        raise SchemaMismatchError(
            f"database {where} has no zt-inventory schema; run `zt-inventory init` first"
        )
    known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if current not in known:
        raise SchemaMismatchError(
            f"database {where} is at schema {current}, newer than this zt-inventory knows "
            f"({head}); upgrade zt-inventory"
        )
    raise SchemaMismatchError(
        f"database {where} is at schema {current}, this zt-inventory expects {head}; "
        "back up the database and run `zt-inventory init`"
    )


__all__ = [
    "alembic_config",
    "backup_sqlite",
    "check_revision",
    "current_revision",
    "downgrade",
    "head_revision",
    "migrations_dir",
    "upgrade",
]

"""Shared fixtures: a clean environment, and databases on SQLite and on real PostgreSQL.

Every storage test takes ``db_url`` and so runs twice: on a file-backed SQLite database in
``tmp_path`` and on a fresh PostgreSQL database created for the test from
``INVENTORY_TEST_POSTGRES_URL``. Without that variable the PostgreSQL half skips with a reason,
except under ``CI=true``, where a missing or unreachable PostgreSQL fails the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from inventory import db
from inventory.store import make_engine

POSTGRES_ENV = "INVENTORY_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's ZT_INVENTORY_* settings."""
    for name in list(os.environ):
        if name.startswith("ZT_INVENTORY_"):
            monkeypatch.delenv(name)


def _postgres_admin_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{POSTGRES_ENV} is not set under CI=true: PostgreSQL tests must run")
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV}, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    admin_url = make_url(_postgres_admin_url())
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"zt_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any connection failure is reported alike
        admin.dispose()
        message = (
            f"PostgreSQL at {admin_url.render_as_string(hide_password=True)} is unreachable: {exc}"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inventory.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on an empty database of each kind, upgraded to the newest schema."""
    eng = make_engine(db_url)
    db.upgrade(eng)
    yield eng
    eng.dispose()

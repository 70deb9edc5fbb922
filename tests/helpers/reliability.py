"""Shared pieces of the reliability tests (tests/test_reliability_*.py).

- ``fresh_database``: an empty database of either kind outside pytest's function-scoped
  fixtures (module-scoped fixtures and subprocesses need one that lives longer);
- ``dump_all``: every row of every table (public, history, runs and staging), for "the database
  is untouched" checks;
- ``projection``: the snapshot readers see, without the timestamps and run ids that differ
  between two runs that apply the same data, for "old or new snapshot, never a mix" checks;
- ``crash_emulator``: the deterministic fleet of the crash tests, identical in the test process
  and in the child it kills (``tests/helpers/crash_child.py``);
- ``bounded``: run a callable on a thread and fail if it does not end in time (no endless loop).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine, make_url

from inventory import db
from inventory.emulator import Emulator, generate_fleet
from inventory.store import make_engine

POSTGRES_ENV = "INVENTORY_TEST_POSTGRES_URL"
REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")

CRASH_SEED = 23
CRASH_PARTNER = 7_000_000_023


def postgres_admin_url() -> str:
    """The admin URL of the test PostgreSQL, or skip (fail under CI=true) like conftest does."""
    import pytest  # not at the top: the crash child imports this module and needs no pytest

    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{POSTGRES_ENV} is not set under CI=true: PostgreSQL tests must run")
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}")
    return url


@contextlib.contextmanager
def fresh_database(kind: str, directory: Path, *, upgrade: bool = True) -> Iterator[str]:
    """An empty database URL of ``kind`` (sqlite/postgresql) at the newest schema; dropped after."""
    import pytest

    if kind == "sqlite":
        url = f"sqlite:///{directory / f'inventory-{uuid.uuid4().hex[:8]}.db'}"
        if upgrade:
            engine = make_engine(url)
            db.upgrade(engine)
            engine.dispose()
        yield url
        return
    admin_url = make_url(postgres_admin_url())
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"zt_rel_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # unreachable server: same policy as conftest
        admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is unreachable: {exc}")
        pytest.skip(f"PostgreSQL is unreachable: {exc}")
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        if upgrade:
            engine = make_engine(url)
            db.upgrade(engine)
            engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def table_names(engine: Engine) -> list[str]:
    """Every table of the database (not views)."""
    return sorted(inspect(engine).get_table_names())


def dump_all(engine: Engine) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table, as sorted tuples of strings."""
    out: dict[str, list[tuple[str, ...]]] = {}
    with engine.connect() as conn:
        for table in table_names(engine):
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
            out[table] = sorted(tuple(str(v) for v in row) for row in rows)
    return out


def _canon(value: Any) -> str:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    return json.dumps(value, sort_keys=True)


def projection(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """What readers see, minus timestamps and run ids (two runs applying the same data agree)."""
    queries = {
        "customers": "SELECT company_id, content_hash, removed_at IS NULL FROM customers",
        "devices": "SELECT device_id, content_hash, removed_at IS NULL, raw FROM devices",
        "device_claims": (
            "SELECT device_id, section_type, owner_company_id, reseller_id, "
            "google_workspace_customer_id, additional_service FROM device_claims"
        ),
        "device_metadata": "SELECT device_id, key, value FROM device_metadata",
        "device_versions": (
            "SELECT device_id, removed, content_hash, valid_to IS NULL, owner_company_id "
            "FROM device_versions"
        ),
    }
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name, sql in queries.items():
            rows = []
            for row in conn.execute(text(sql)):
                values = list(row)
                if name == "devices":
                    values[3] = _canon(values[3])
                rows.append(tuple(str(bool(v)) if isinstance(v, bool) else str(v) for v in values))
            out[name] = sorted(rows)
    return out


def history_is_consistent(engine: Engine) -> list[str]:
    """Problems with the snapshot's internal consistency (empty when it is whole)."""
    checks = {
        "a current device without exactly one open, non-removed version": """
            SELECT d.device_id FROM devices d WHERE d.removed_at IS NULL AND 1 <> (
                SELECT COUNT(*) FROM device_versions v
                WHERE v.device_id = d.device_id AND v.valid_to IS NULL AND NOT v.removed)""",
        "a removed device without exactly one open removal version": """
            SELECT d.device_id FROM devices d WHERE d.removed_at IS NOT NULL AND 1 <> (
                SELECT COUNT(*) FROM device_versions v
                WHERE v.device_id = d.device_id AND v.valid_to IS NULL AND v.removed)""",
        "an open version whose hash is not the device's": """
            SELECT v.device_id FROM device_versions v JOIN devices d ON d.device_id = v.device_id
            WHERE v.valid_to IS NULL AND v.content_hash <> d.content_hash""",
        "a claim whose device is not current or does not exist": """
            SELECT c.device_id FROM device_claims c
            LEFT JOIN devices d ON d.device_id = c.device_id
            WHERE d.device_id IS NULL OR d.removed_at IS NOT NULL""",
        "metadata whose device is not current or does not exist": """
            SELECT m.device_id FROM device_metadata m
            LEFT JOIN devices d ON d.device_id = m.device_id
            WHERE d.device_id IS NULL OR d.removed_at IS NOT NULL""",
        "a device with more than one open version": """
            SELECT device_id FROM device_versions WHERE valid_to IS NULL
            GROUP BY device_id HAVING COUNT(*) > 1""",
        "a version of a device that does not exist": """
            SELECT v.device_id FROM device_versions v
            LEFT JOIN devices d ON d.device_id = v.device_id WHERE d.device_id IS NULL""",
        "a device whose last version is a removal but whose removed_at is not set": """
            SELECT d.device_id FROM devices d JOIN device_versions v ON v.device_id = d.device_id
            WHERE d.removed_at IS NULL AND v.removed AND v.version_id = (
                SELECT MAX(w.version_id) FROM device_versions w WHERE w.device_id = d.device_id)""",
        "a removed device whose last version is not a removal": """
            SELECT d.device_id FROM devices d JOIN device_versions v ON v.device_id = d.device_id
            WHERE d.removed_at IS NOT NULL AND NOT v.removed AND v.version_id = (
                SELECT MAX(w.version_id) FROM device_versions w WHERE w.device_id = d.device_id)""",
    }
    problems = []
    with engine.connect() as conn:
        for what, sql in checks.items():
            ids = conn.execute(text(sql)).scalars().all()
            if ids:
                problems.append(f"{what}: {sorted(ids)[:5]}")
    return problems


def crash_emulator(stage: int) -> Emulator:
    """The crash tests' fleet: ``stage`` 0 as first synced, 1 after the mutations between runs.

    The mutations touch every table readers see: customers (one added, one removed with its
    devices), devices (moved, unclaimed, removed, added), metadata, and so the history.
    """
    emu = Emulator(
        generate_fleet(devices=300, customers=12, seed=CRASH_SEED, partner_id=CRASH_PARTNER)
    )
    if stage >= 1:
        mutate_between_runs(emu)
    return emu


def owned_by(emu: Emulator, company_id: int) -> list[int]:
    """Device ids whose zero-touch claim names ``company_id``, ascending."""
    return sorted(
        int(d["deviceId"])
        for d in emu.iter_devices()
        for c in d.get("claims", [])
        if c.get("sectionType") == "SECTION_TYPE_ZERO_TOUCH"
        and c.get("ownerCompanyId") == str(company_id)
    )


def mutate_between_runs(emu: Emulator) -> None:
    """Deterministic changes of every kind (see ``crash_emulator``)."""
    customers = [int(c["companyId"]) for c in emu.iter_customers()]
    by_size = sorted(customers, key=lambda c: (-len(owned_by(emu, c)), c))
    big, second = by_size[0], by_size[1]
    small = next(c for c in reversed(by_size) if owned_by(emu, c))
    owned = owned_by(emu, big)
    for device in owned[:5]:
        emu.move_device(device, second)
    emu.unclaim(owned[5])
    for device in owned[6:9]:
        emu.set_metadata(device, {"asset": f"A-{device}", "site": "Zürich"})
    emu.remove_device(owned[9])
    emu.remove_device(owned[10])
    emu.add_device(company_id=big)
    emu.add_device(company_id=second, metadata={"fresh": "yes"})
    emu.remove_customer(small)
    emu.add_customer("Crash Test Dummies GmbH")


def bounded(fn: Callable[[], T], seconds: float) -> T:
    """``fn()`` on a daemon thread; fail the test when it has not returned after ``seconds``."""
    import pytest

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised on the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"did not end within {seconds} s (an endless loop?)")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]

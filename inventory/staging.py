"""Staging: pages of a run stream into private tables while readers keep the old snapshot.

Each device is classified against the current snapshot as it arrives (the run holds the writer
lock, so the snapshot cannot move under it): ``same`` rows carry only the id and hash, so an
unchanged re-sync stages little and merges nothing; ``added``, ``changed`` and ``reappeared``
rows carry the full content, with their claims and metadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from inventory.models import (
    STAGING_TABLES,
    Device,
    StagingClaim,
    StagingCoverage,
    StagingCustomer,
    StagingDevice,
    StagingMetadata,
)
from inventory.transform import DeviceRows

DEVICE_COLUMNS = (
    "partner_id",
    "name",
    "imei",
    "imei2",
    "meid",
    "meid2",
    "serial_number",
    "manufacturer",
    "model",
    "device_type",
    "chrome_os_attested_device_id",
    "configuration",
)
IDENTIFIER_LISTING = 0  # the listing number of findByIdentifier results
REMOVAL_LISTING = -1  # the listing number of devices a run will mark removed

_SNAPSHOT = select(Device.device_id, Device.content_hash, Device.removed_at.is_not(None)).where(
    Device.device_id.in_(bindparam("ids", expanding=True))
)


def insert_ignore(conn: Connection, table: Any) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` for the connection's dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def clear(engine: Engine, run_id: int | None = None) -> None:
    """Empty the staging tables (of one run, or entirely)."""
    with engine.begin() as conn:
        for table in STAGING_TABLES:
            stmt = delete(table)
            if run_id is not None:
                stmt = stmt.where(table.c.run_id == run_id)
            conn.execute(stmt)


class Stager:
    """Buffers classified devices and writes them to staging in batches.

    Args:
        engine: the database.
        run_id: the run the rows belong to.
        batch_size: devices per staging transaction.
    """

    def __init__(self, engine: Engine, run_id: int, batch_size: int = 2000) -> None:
        self.engine = engine
        self.run_id = run_id
        self.batch_size = batch_size
        self._devices: list[dict[str, Any]] = []
        self._claims: list[dict[str, Any]] = []
        self._metadata: list[dict[str, Any]] = []

    def add_page(self, listing: int, page: Iterable[DeviceRows]) -> None:
        """Classify one page of devices against the snapshot and buffer their staging rows."""
        rows = list(page)
        if not rows:
            return
        ids = [r.device["device_id"] for r in rows]
        with self.engine.connect() as conn:
            known = {did: (h, removed) for did, h, removed in conn.execute(_SNAPSHOT, {"ids": ids})}
        for r in rows:
            device_id = r.device["device_id"]
            previous = known.get(device_id)
            if previous is None:
                change = "added"
            elif previous[1]:
                change = "reappeared"
            elif previous[0] != r.content_hash:
                change = "changed"
            else:
                change = "same"
            staged: dict[str, Any] = {
                "run_id": self.run_id,
                "device_id": device_id,
                "listing_id": listing,
                "change": change,
                "content_hash": r.content_hash,
                "owner_company_id": r.owner_company_id,
            }
            if change == "same":
                staged.update(dict.fromkeys(DEVICE_COLUMNS), raw=None)
            else:
                staged.update({c: r.device[c] for c in DEVICE_COLUMNS}, raw=r.raw)
                self._claims.extend(dict(c, run_id=self.run_id) for c in r.claims)
                self._metadata.extend(dict(m, run_id=self.run_id) for m in r.metadata)
            self._devices.append(staged)
        if len(self._devices) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered, in one transaction."""
        if not self._devices:
            return
        with self.engine.begin() as conn:
            conn.execute(insert_ignore(conn, StagingDevice.__table__), self._devices)
            if self._claims:
                conn.execute(insert_ignore(conn, StagingClaim.__table__), self._claims)
            if self._metadata:
                conn.execute(insert_ignore(conn, StagingMetadata.__table__), self._metadata)
        self._devices, self._claims, self._metadata = [], [], []


def stage_customers(engine: Engine, run_id: int, rows: list[dict[str, Any]]) -> None:
    """Write one page of ``customers.list`` rows to staging."""
    if rows:
        with engine.begin() as conn:
            conn.execute(
                insert_ignore(conn, StagingCustomer.__table__),
                [dict(r, run_id=run_id) for r in rows],
            )


def stage_coverage(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Record which owners each listing covered and whether it arrived whole."""
    if rows:
        with engine.begin() as conn:
            conn.execute(insert_ignore(conn, StagingCoverage.__table__), rows)


def mark_incomplete(engine: Engine, run_id: int, listings: list[int]) -> None:
    """Devices seen only by incomplete listings stay as they are: never applied, never removed."""
    if listings:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE sync_staging_devices SET change = 'incomplete' "
                    "WHERE run_id = :r AND listing_id IN :listings"
                ).bindparams(bindparam("listings", expanding=True)),
                {"r": run_id, "listings": listings},
            )


def deduplicate(engine: Engine, run_id: int) -> None:
    """Keep one staging row per device: the first complete listing's, when there is one."""
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                DELETE FROM sync_staging_devices
                WHERE run_id = :r AND EXISTS (
                    SELECT 1 FROM sync_staging_devices o
                    WHERE o.run_id = :r
                      AND o.device_id = sync_staging_devices.device_id
                      AND o.change <> 'incomplete'
                      AND (sync_staging_devices.change = 'incomplete'
                           OR o.listing_id < sync_staging_devices.listing_id))
                """
            ),
            {"r": run_id},
        )

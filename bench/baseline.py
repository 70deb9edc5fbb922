"""The raw baseline: the least work that loads what a first sync loads, through the same client.

It asks for the same pages zt-inventory asks for, the same way: the product's own client stack
(``inventory.api.connect``: the same httpx client and headers, the same wire format, orjson
parsing, retries and quota), ``customers.list`` page by page, then the listings of
``inventory.sync.plan.plan_listings`` (a first sync's plan: the snapshot is empty) fetched by
``inventory.sync.fetch.fetch_pages`` (the sync's page scheduling: request slots on threads,
the chain with the most pages left first, a bounded queue). Each device is written once (a
device two listings return is skipped the second time) into three plain tables whose columns
are those of ``devices``, ``device_claims`` and ``device_metadata`` (names and types from
``inventory.models``; no keys, no indexes, no constraints), in one transaction, the fastest
plain way for each database: SQLite (WAL, ``synchronous=NORMAL``, as zt-inventory opens it)
with ``executemany``; PostgreSQL with ``COPY``. Values go in as the API sent them (int64 and
timestamp strings are converted by the database).

What it leaves out is what zt-inventory adds: validation and conversion of each value, change
detection (hashing, classification against the previous snapshot), staging, history, removal
bookkeeping, the views' indexes, and the run's record.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Column, MetaData, Table
from sqlalchemy.schema import CreateTable

from inventory.api import Counters, Page, ZeroTouchClient, connect
from inventory.models import Device, DeviceClaim, DeviceMetadata, table_of
from inventory.sync.fetch import Halt, fetch_pages
from inventory.sync.plan import PlannedListing, plan_listings
from inventory.transform import CLAIM_FIELDS, DEVICE_FIELDS, IDENTIFIER_FIELDS

if TYPE_CHECKING:
    from inventory.config import Settings

BATCH_DEVICES = 2000
PREFIX = "base_"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def plain_table(model: Any, metadata: MetaData) -> Table:
    """A copy of a model's table named ``base_<name>``: its columns' names and types only."""
    source = table_of(model)
    return Table(PREFIX + source.name, metadata, *(Column(c.name, c.type) for c in source.c))


class Layout:
    """The plain tables, and which of their columns the baseline fills from what.

    A device's row: its id, the partner, the run's start as ``first_seen_at`` and
    ``last_changed_at``, ``raw``, then every other column from the API field of the same name
    in camelCase, at the device's top level or in its ``deviceIdentifier`` (``transform``'s
    field lists say which). ``content_hash`` and ``removed_at`` stay NULL. A claim's row: the
    device id and every other column from its API field. A metadata row: device id, key,
    value. A column the API has no field for stops the baseline, rather than go unnoticed.
    """

    FIXED = ("device_id", "partner_id", "first_seen_at", "last_changed_at", "raw")
    LEFT_NULL = frozenset({"content_hash", "removed_at"})

    def __init__(self) -> None:
        self.metadata = MetaData()
        self.tables = tuple(
            plain_table(m, self.metadata) for m in (Device, DeviceClaim, DeviceMetadata)
        )
        devices, claims, _ = self.tables
        idents = {snake: camel for camel, snake in IDENTIFIER_FIELDS.items()}
        rest = [c.name for c in devices.c if c.name not in {*self.FIXED, *self.LEFT_NULL}]
        top = [n for n in rest if n not in idents]
        self.top_keys = [_camel(n) for n in top]
        self.ident_keys = [idents[n] for n in rest if n in idents]
        claim_columns = [c.name for c in claims.c if c.name != "device_id"]
        self.claim_keys = [_camel(n) for n in claim_columns]
        unknown = (set(self.top_keys) - DEVICE_FIELDS) | (set(self.claim_keys) - CLAIM_FIELDS)
        if unknown:
            raise RuntimeError(f"columns with no API field to fill them: {sorted(unknown)}")
        self.columns = (
            [*self.FIXED, *top, *(n for n in rest if n in idents)],
            ["device_id", *claim_columns],
            ["device_id", "key", "value"],
        )

    def ddl(self, dialect: Any) -> list[str]:
        """``CREATE TABLE`` statements of the plain tables for ``dialect``."""
        return [str(CreateTable(t).compile(dialect=dialect)) for t in self.tables]

    def device_row(self, device: dict[str, Any], partner_id: int, now: str) -> tuple[Any, ...]:
        """A device's row, in ``columns[0]`` order."""
        ident = device.get("deviceIdentifier") or {}
        return (
            device["deviceId"],
            partner_id,
            now,
            now,
            orjson.dumps(device).decode(),
            *map(device.get, self.top_keys),
            *map(ident.get, self.ident_keys),
        )


class Loader:
    """Writes batches of rows into the plain tables in one transaction (bare DB-API driver).

    Args:
        db_url: the scratch database's SQLAlchemy URL (``sqlite:///…`` or
            ``postgresql+psycopg://…``).
        layout: the plain tables.
    """

    def __init__(self, db_url: str, layout: Layout) -> None:
        self.pg = db_url.startswith("postgresql")
        self.layout = layout
        if self.pg:
            import psycopg
            from sqlalchemy.dialects import postgresql

            self.conn: Any = psycopg.connect("postgresql://" + db_url.split("://", 1)[1])
            dialect: Any = postgresql.dialect()
        else:
            import sqlite3

            from sqlalchemy.dialects import sqlite

            self.conn = sqlite3.connect(db_url.split(":///", 1)[1], isolation_level=None)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.execute("BEGIN")
            dialect = sqlite.dialect()
        self.cur = self.conn.cursor()
        for statement in layout.ddl(dialect):
            self.cur.execute(statement)
        self.statements = [
            (table.name, ", ".join(names), ", ".join("?" * len(names)))
            for table, names in zip(layout.tables, layout.columns, strict=True)
        ]

    def write(self, batches: tuple[list[Any], list[Any], list[Any]]) -> None:
        """Write one batch of device, claim and metadata rows."""
        for (table, names, marks), rows in zip(self.statements, batches, strict=True):
            if not rows:
                continue
            if self.pg:
                with self.cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                self.cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)

    def commit(self) -> None:
        """Commit the one transaction and close the connection."""
        if self.pg:
            self.conn.commit()
        else:
            self.cur.execute("COMMIT")
        self.conn.close()


def _owners(client: ZeroTouchClient) -> list[tuple[int, str | None]]:
    owners: list[tuple[int, str | None]] = []
    for page in client.iter_customer_pages():
        for company in page.items:
            workspace = (company.get("googleWorkspaceAccount") or {}).get("customerId")
            owners.append((int(company["companyId"]), workspace or None))
    return owners


def _pages(
    settings: Settings, client: ZeroTouchClient, planned: list[PlannedListing]
) -> Iterator[Page]:
    """Every page of the planned listings, as the sync fetches them."""
    limit = max(1, settings.api.page_size)

    def open_pages(p: PlannedListing) -> Iterator[Page]:
        return client.iter_find_by_owner_pages(
            p.section_type,
            customer_ids=p.company_ids,
            workspace_ids=p.google_workspace_customer_ids,
            limit=limit,
        )

    def expected(p: PlannedListing) -> float:  # as the sync counts them: unknown on a first sync
        return math.ceil(p.expected_devices / limit) if p.expected_devices else math.inf

    fetched = fetch_pages(
        planned,
        open_pages,
        expected_pages=expected,
        concurrency=settings.api.concurrency,
        page_size=limit,
        halt=Halt(),
    )
    for item in fetched:
        if item.error is not None:
            raise item.error
        if item.page is not None:
            yield item.page


def run_baseline(settings: Settings, *, load: bool = True) -> dict[str, Any]:
    """Fetch, parse and load one first sync's worth of devices; return wall time and counts.

    Args:
        settings: the same settings the sync it is compared with runs on.
        load: False only fetches and parses: how fast the emulator and the client serve.
    """
    started = time.perf_counter()
    partner_id = settings.partner.id or 0
    counters = Counters()
    layout = Layout()
    loader = Loader(settings.database.url, layout) if load else None
    batch: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
    now = datetime.now(UTC).isoformat()
    seen: set[str] = set()
    with connect(settings.api, partner_id, None, counters=counters) as client:
        owners = _owners(client)
        spaces = [w for _, w in owners if w] + list(settings.sync.google_workspace_customer_ids)
        planned = plan_listings(
            [c for c, _ in owners],
            list(dict.fromkeys(spaces)),
            settings.sync.section_types,
            concurrency=settings.api.concurrency,
            max_ids=settings.api.max_ids_per_request,
            by_company={},
            by_workspace={},
        )
        devices, claims, metadata = batch
        claim_keys = layout.claim_keys
        for page in _pages(settings, client, planned):
            for device in page.items:
                device_id = device["deviceId"]
                if device_id in seen:
                    continue
                seen.add(device_id)
                if loader is None:
                    continue
                devices.append(layout.device_row(device, partner_id, now))
                for claim in device.get("claims") or ():
                    claims.append((device_id, *map(claim.get, claim_keys)))
                entries = (device.get("deviceMetadata") or {}).get("entries") or {}
                metadata.extend((device_id, k, v) for k, v in entries.items())
            if loader is not None and len(devices) >= BATCH_DEVICES:
                loader.write(batch)
                for rows in batch:
                    rows.clear()
    if loader is not None:
        loader.write(batch)
        loader.commit()
    return {
        "kind": "baseline" if load else "fetch",
        "wall_s": time.perf_counter() - started,
        "devices_seen": len(seen),
        "api_requests": counters.requests,
        "listings": len(planned),
    }

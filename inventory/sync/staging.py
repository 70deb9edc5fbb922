"""Staging: pages of a run stream into private tables while readers keep the old snapshot.

The staging tables are TEMPORARY tables of the run's one writer connection: nobody else sees
them, they never grow the database file, and they vanish with the connection, however the run
ends. Each device is staged as each listing that returns it saw it, and classified against the
current snapshot as it arrives (the run holds the writer lock, so the snapshot cannot move
under it): ``same`` rows carry only the id and hash, so an unchanged re-sync stages little and
merges nothing; ``added``, ``changed`` and ``reappeared`` rows carry the full content, with
their claims and metadata. A device that more than one listing returns (claims in two section
types, a company and its Workspace account, an identifier lookup, a device that moved while
the run paged) is noted in ``sync_staging_duplicates`` as it arrives, so that the merge, which
keeps one of its rows, reads only those few devices, never a pass over every staged row.

The rows' shape is not written down here: every column list is derived from the tables in
``inventory.models`` (a staging table shares its content columns with its public table), and
the row dicts that ``inventory.transform`` builds are keyed by those column names.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect

from inventory.models import (
    STAGING_TABLES,
    Device,
    StagingBase,
    StagingClaim,
    StagingCoverage,
    StagingCustomer,
    StagingDevice,
    StagingDuplicate,
    StagingMetadata,
    StagingScope,
    StagingVendor,
    StagingVendorCustomer,
    UTCDateTime,
    table_of,
)
from inventory.store.runs import ListingResult
from inventory.transform import DeviceRows, device_hash_as_seen_by, json_text

# The listing number of the findByIdentifier results of a run's first partner; its k-th
# partner's are IDENTIFIER_LISTING + k. Below every findByOwner listing's, as the one lookup
# listing (0) was: the merge keeps the lowest-numbered complete listing's row of a device, so a
# lookup's row is kept over a findByOwner listing's, and the first partner's over the next.
IDENTIFIER_LISTING = -100
REMOVAL_LISTING = -1  # the listing number of devices a run will mark removed
CHECK_LISTING = -2  # the listing number of devices found by a removal check (devices.get)
SNAPSHOT_CHUNK = 500  # ids per SQLite lookup query (well under its bound-parameter limit)


def shared_columns(public: Table, staged: Table, *, skip: Iterable[str] = ()) -> tuple[str, ...]:
    """The columns a public table and its staging table share, in the public table's order:
    what the merge copies from one to the other."""
    left_out = set(skip)
    return tuple(c.name for c in public.columns if c.name in staged.c and c.name not in left_out)


# A staged device: how the run saw it, then the content it shares with ``devices``. Its key and
# hash come first, so that a ``same`` row (key and hash only) is a prefix plus NULLs.
STAGED_DEVICES = table_of(StagingDevice)
STAGED_CLAIMS = table_of(StagingClaim)
STAGED_METADATA = table_of(StagingMetadata)
DUPLICATES = table_of(StagingDuplicate)
DEVICE_KEY = ("device_id", "content_hash")
DEVICE_CONTENT = shared_columns(table_of(Device), STAGED_DEVICES, skip=DEVICE_KEY)
STAGED_DEVICE_COLUMNS: tuple[str, ...] = ("listing_id", "change", "owner_company_id")
STAGED_DEVICE_COLUMNS += (*DEVICE_KEY, *DEVICE_CONTENT)
# A staged claim or metadata entry: the listing, then the row as ``inventory.transform`` builds it.
CLAIM_COLUMNS = tuple(c.name for c in STAGED_CLAIMS.columns if c.name != "listing_id")
METADATA_COLUMNS = tuple(c.name for c in STAGED_METADATA.columns if c.name != "listing_id")
_NO_CONTENT = (None,) * len(DEVICE_CONTENT)


def insert_ignore(conn: Connection, table: Any) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` for the connection's dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def create(conn: Connection) -> None:
    """Create the run's staging tables, TEMPORARY on ``conn`` (dropping leftovers of a run
    that ended on this connection)."""
    schema = "pg_temp" if conn.dialect.name == "postgresql" else "temp"
    with conn.begin():
        for table in STAGING_TABLES:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {schema}.{table.name}")
        StagingBase.metadata.create_all(conn, checkfirst=False)


def drop(conn: Connection) -> None:
    """Drop the run's staging tables (closing the connection would too)."""
    with conn.begin():
        for table in STAGING_TABLES:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table.name}")


class Stager:
    """Buffers devices and writes them, classified, to staging in batches.

    Classification happens at flush time, one snapshot query per batch: the run holds the
    writer lock, so the snapshot cannot move between a page's arrival and its flush. Rows go
    through the DB-API as tuples (``executemany`` on SQLite, ``COPY`` on PostgreSQL), with
    SQLAlchemy's own bind processors for the JSON and timestamp columns, so the stored values
    are those an ORM insert would store.

    Args:
        conn: the run's writer connection (its staging tables are created).
        batch_size: devices per staging transaction.
    """

    def __init__(self, conn: Connection, batch_size: int = 2000) -> None:
        self.conn = conn
        self.batch_size = batch_size
        self.staged = 0  # rows staged so far
        self.repeated: Counter[int] = Counter()  # devices a listing returned again, per listing
        self._devices: list[tuple[int, DeviceRows]] = []  # (listing, rows), not yet written
        self._sql = _StagingSql(conn.dialect)
        self._fleet_empty: bool | None = None  # devices empty at the first flush: all added

    @property
    def buffered(self) -> int:
        """Devices held and not yet written (at most ``batch_size`` plus one page)."""
        return len(self._devices)

    def add_page(self, listing: int, page: Iterable[DeviceRows]) -> None:
        """Buffer one page of devices; write the buffer when it holds ``batch_size`` devices."""
        self._devices.extend((listing, r) for r in page)
        if len(self._devices) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Classify what is buffered against the snapshot and write it, in one transaction."""
        if not self._devices:
            return
        conn, sql = self.conn, self._sql
        with conn.begin():
            if self._fleet_empty is None:
                # A first sync: the run holds the writer lock, so the table stays empty and
                # every device is added; no snapshot query per batch (0.26 s per 100,000
                # devices on PostgreSQL).
                found = conn.exec_driver_sql("SELECT 1 FROM devices LIMIT 1").first()
                self._fleet_empty = found is None
            ids = [r.device["device_id"] for _, r in self._devices]
            listings = sql.staged_listings(conn, ids) if self.staged else {}
            known = {} if self._fleet_empty else sql.lookup(conn, _SNAPSHOT, ids)
            devices: list[tuple[Any, ...]] = []
            claims: list[tuple[Any, ...]] = []
            metadata: list[tuple[Any, ...]] = []
            duplicates: set[int] = set()
            device_row, claim_row, metadata_row = sql.device_row, sql.claim_row, sql.metadata_row
            for listing, r in self._devices:
                device = r.device
                device_id = device["device_id"]
                seen_by = listings.setdefault(device_id, set())
                if listing in seen_by:  # the same listing returned it again: stored once
                    self.repeated[listing] += 1
                    continue
                if seen_by:
                    duplicates.add(device_id)
                seen_by.add(listing)
                previous = known.get(device_id)
                if previous is None:
                    change = "added"
                elif previous[1]:
                    change = "reappeared"
                elif previous[0] != device["content_hash"] and not _seen_by_another(
                    device, previous
                ):
                    change = "changed"
                else:
                    devices.append(
                        (listing, "same", r.owner_company_id, device_id, device["content_hash"])
                        + _NO_CONTENT
                    )
                    continue
                devices.append((listing, change, r.owner_company_id) + device_row(device))
                claims.extend((listing,) + claim_row(c) for c in r.claims)
                metadata.extend((listing,) + metadata_row(m) for m in r.metadata)
            sql.write(conn, STAGED_DEVICES, STAGED_DEVICE_COLUMNS, devices)
            sql.write(conn, STAGED_CLAIMS, ("listing_id", *CLAIM_COLUMNS), claims)
            sql.write(conn, STAGED_METADATA, ("listing_id", *METADATA_COLUMNS), metadata)
            if duplicates:  # few: devices that another listing returned too
                rows = [{"device_id": d} for d in sorted(duplicates)]
                conn.execute(insert_ignore(conn, DUPLICATES), rows)
        self.staged += len(devices)
        self._devices = []


# (table, the columns after the id) of the per-batch snapshot lookup
_SNAPSHOT = ("devices", "content_hash, removed_at IS NOT NULL, partner_id")


def _seen_by_another(device: Mapping[str, Any], previous: tuple[Any, ...]) -> bool:
    """True when a device the snapshot holds as another partner's is unchanged but for the
    partner whose view it is (its ``name``, ``partners/P/devices/D``): a device two of the
    configured partners know, listed by one in this run (``sync --partner``) and by the other
    before, stays as it is, its partner included; a device handed from one partner to the other
    has a claim of the other's, and changed."""
    stored_hash, _, stored_partner = previous
    if stored_partner is None or stored_partner == device["partner_id"]:
        return False
    seen_by = device_hash_as_seen_by(device["raw"], device["device_id"], int(stored_partner))
    return bool(seen_by == stored_hash)


def _row_maker(
    table: Table, columns: Sequence[str], dialect: Dialect
) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function from a row dict to its values in ``columns`` order, as the driver takes them.

    JSON columns become compact JSON text on both databases (PostgreSQL's COPY parses it,
    SQLite stores it); timestamps go through the column type's bind processor where the
    dialect has one (SQLite's text form); everything else is passed as is.
    """
    get = operator.itemgetter(*columns)
    converters: list[tuple[int, Callable[[Any], Any]]] = []
    for i, name in enumerate(columns):
        kind = table.c[name].type
        if isinstance(kind, JSON):
            converters.append((i, json_text))
        elif isinstance(kind, UTCDateTime):
            process = kind.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                converters.append((i, process))
    if len(columns) == 1:
        return lambda row: (get(row),)
    if not converters:
        return get  # itemgetter of several names gives a tuple

    def make(row: Mapping[str, Any]) -> tuple[Any, ...]:
        values = list(get(row))
        for i, convert in converters:
            if values[i] is not None:
                values[i] = convert(values[i])
        return tuple(values)

    return make


class _StagingSql:
    """Driver-level statements and row makers of the staging writes, for one dialect.

    SQLite takes the rows through ``executemany``, PostgreSQL through ``COPY`` (psycopg's
    ``executemany`` costs tens of microseconds of Python per row, ``COPY`` a few). Every
    device is staged once, so a write never meets a row staged before.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.postgres = dialect.name == "postgresql"
        self._quote = dialect.identifier_preparer.quote
        self._queries: dict[tuple[str, int], str] = {}
        self.device_row = _row_maker(STAGED_DEVICES, (*DEVICE_KEY, *DEVICE_CONTENT), dialect)
        self.claim_row = _row_maker(STAGED_CLAIMS, CLAIM_COLUMNS, dialect)
        self.metadata_row = _row_maker(STAGED_METADATA, METADATA_COLUMNS, dialect)

    def write(
        self, conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        """Insert ``rows`` (tuples in ``columns`` order)."""
        if not rows:
            return
        names = ", ".join(self._quote(c) for c in columns)
        with closing(_cursor(conn)) as cursor:
            if not self.postgres:
                marks = ", ".join(["?"] * len(columns))
                cursor.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)
                return
            with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def staged_listings(self, conn: Connection, ids: list[int]) -> dict[int, set[int]]:
        """{device id: the listings that staged it} for those of these ids already staged."""
        found: dict[int, set[int]] = {}
        for query, params in self._batches("listing_id", "sync_staging_devices", ids):
            for device_id, listing in self._fetch(conn, query, params):
                found.setdefault(device_id, set()).add(listing)
        return found

    def lookup(
        self, conn: Connection, source: tuple[str, str], ids: list[int]
    ) -> dict[int, tuple[Any, ...]]:
        """{id: the other columns} of these device ids in ``source`` (a table and columns)."""
        table, columns = source
        return {
            device_id: tuple(rest)
            for query, params in self._batches(columns, table, ids)
            for device_id, *rest in self._fetch(conn, query, params)
        }

    def _batches(
        self, columns: str, table: str, ids: list[int]
    ) -> list[tuple[str, tuple[Any, ...]]]:
        """The queries for ``columns`` of these device ids in ``table``: PostgreSQL takes every
        id as one array (one round trip); SQLite takes chunks of ids."""
        unique = list(dict.fromkeys(ids))
        select_ = f"SELECT device_id, {columns} FROM {table} WHERE device_id"
        if self.postgres:
            return [(f"{select_} = ANY(%s)", (unique,))]
        chunks = (unique[i : i + SNAPSHOT_CHUNK] for i in range(0, len(unique), SNAPSHOT_CHUNK))
        return [(f"{select_} IN ({', '.join(['?'] * len(c))})", tuple(c)) for c in chunks]

    @staticmethod
    def _fetch(conn: Connection, query: str, params: tuple[Any, ...]) -> list[Any]:
        """Rows of one query, through the DB-API cursor itself: SQLAlchemy's row objects cost
        more than the query."""
        with closing(_cursor(conn)) as cursor:
            cursor.execute(query, params)
            return list(cursor.fetchall())


def _cursor(conn: Connection) -> Any:
    """A DB-API cursor of the connection (sqlite3's cursors are no context managers)."""
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


# the lists of a partner a run stages whole: what customers.list, vendors.list and
# vendors.customers.list returned
STAGED_CUSTOMERS = table_of(StagingCustomer)
STAGED_VENDORS = table_of(StagingVendor)
STAGED_VENDOR_CUSTOMERS = table_of(StagingVendorCustomer)


def stage_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Write one page of a list's rows to its staging table (a row listed twice: once)."""
    if rows:
        with conn.begin():
            conn.execute(insert_ignore(conn, table), rows)


def stage_customers(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Write one page of ``customers.list`` rows to staging (a customer listed twice: once)."""
    stage_rows(conn, STAGED_CUSTOMERS, rows)


def unstage_partner(conn: Connection, partner_id: int) -> None:
    """Take back what a partner's lists staged (its customers.list failed: it is skipped)."""
    with conn.begin():
        for table in (STAGED_CUSTOMERS, STAGED_VENDORS, STAGED_VENDOR_CUSTOMERS):
            conn.execute(table.delete().where(table.c.partner_id == partner_id))


def stage_scope(conn: Connection, rows: Sequence[tuple[int, str, str]]) -> None:
    """Record the run's scope: (partner, section type, mode) rows (see ``StagingScope``)."""
    if rows:
        with conn.begin():
            conn.execute(
                insert_ignore(conn, table_of(StagingScope)),
                [{"partner_id": p, "section_type": s, "mode": m} for p, s, m in rows],
            )


def stage_coverage(conn: Connection, listings: Sequence[ListingResult]) -> None:
    """Record which owners each findByOwner listing asked about and whether it arrived whole:
    one row per (partner, section type, company or Workspace id)."""
    rows = [
        {
            "partner_id": x.partner_id,
            "section_type": x.section_type,
            "owner_kind": kind,
            "owner_key": str(key),
            "complete": x.complete,
        }
        for x in listings
        for kind, keys in (
            ("company", x.company_ids),
            ("workspace", x.google_workspace_customer_ids),
        )
        for key in keys
    ]
    if rows:
        with conn.begin():
            conn.execute(insert_ignore(conn, table_of(StagingCoverage)), rows)


def refresh_statistics(conn: Connection) -> None:
    """On PostgreSQL, ``ANALYZE`` the staging tables once the pages are in, before the merge.

    Autovacuum never analyzes temporary tables, so without this the planner would plan the
    merge's joins as if staging were empty: an unchanged re-sync of 92,696 devices once spent
    155 s in a nested loop over a sequential scan for the removal check. Fresh statistics give
    hash joins (0.2 s there). ``ANALYZE`` samples at most 30,000 rows a table: about 0.25 s
    after 100,000 devices, milliseconds after a small run. SQLite plans these joins without
    statistics, and every lookup the merge makes goes through a key.
    """
    if conn.dialect.name == "postgresql":
        with conn.begin():
            conn.exec_driver_sql(f"ANALYZE {', '.join(t.name for t in STAGING_TABLES)}")

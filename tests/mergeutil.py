"""Staging filled by hand, the merge's decisions and its apply: a run without the API.

Tests of the merge (``tests/test_merge.py``) say what a run saw (listings of literal device
JSON, the customers list) and assert the public rows that come out. Everything that knows how
staging is keyed and filled, and in what order a run makes its decisions, is in this file, so
that when staging changes only this file does; the tests read public tables only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from inventory.models import (
    Customer,
    Device,
    DeviceClaim,
    DeviceMetadata,
    DeviceVersion,
    IdentifierLookup,
    table_of,
)
from inventory.store import runs
from inventory.store.runs import ListingKind, ListingResult, RunStatus, SyncResult, Trigger
from inventory.sync import merge, staging
from inventory.transform import to_customer_row, to_device_rows

PARTNER = 7_000_000_001
ZT = "SECTION_TYPE_ZERO_TOUCH"
KNOX = "SECTION_TYPE_KNOX"


@dataclass
class Listing:
    """One findByOwner listing as a run saw it: the owners it asked about and its devices."""

    number: int  # its listing id in the run, from 1
    devices: list[dict[str, Any]]
    company_ids: list[int] = field(default_factory=list)
    workspace_ids: list[str] = field(default_factory=list)
    complete: bool = True
    section_type: str = ZT


def merge_run(
    engine: Engine,
    now: datetime,
    listings: Sequence[Listing],
    customers: Sequence[dict[str, Any]],
    *,
    lookups: Sequence[dict[str, Any]] = (),
    every_customer: bool = True,
    sections: Sequence[str] = (ZT,),
) -> dict[str, int]:
    """Stage what a run saw, make the merge's decisions and apply them at ``now``.

    The steps are those of ``inventory.sync.run`` after the fetching, on one writer connection:
    devices to staging (one row per device, sightings for the rest), customers and listing
    coverage to staging, incomplete listings marked, removals staged, counted, applied in one
    transaction, staging dropped.

    Returns:
        what the run's ``sync_runs`` row counts: ``added``, ``changed``, ``reappeared`` and
        ``removed`` devices.
    """
    started = SyncResult(None, RunStatus.RUNNING, Trigger.MANUAL, False, now)
    run_id = runs.open_run(engine, started, PARTNER)  # versions name their run
    with engine.connect() as conn:  # the run's writer connection, with its staging tables
        staging.create(conn)
        stager = staging.Stager(conn)
        for x in listings:
            stager.add_page(x.number, [to_device_rows(d, PARTNER) for d in x.devices])
        stager.flush()
        staging.stage_customers(conn, [to_customer_row(c, PARTNER)[0] for c in customers])
        staging.stage_coverage(
            conn,
            [
                ListingResult(
                    x.number,
                    ListingKind.FIND_BY_OWNER,
                    x.section_type,
                    x.company_ids,
                    x.workspace_ids,
                    complete=x.complete,
                    partner_id=PARTNER,
                )
                for x in listings
            ],
        )
        mode = "everyone" if every_customer else "explicit"
        staging.stage_scope(conn, [(PARTNER, s, mode) for s in sections])
        merge.mark_incomplete(conn, [x.number for x in listings if not x.complete])
        merge.deduplicate(conn)
        merge.stage_removals(conn, claimless_partners=[PARTNER] if every_customer else [])
        counts = merge.change_counts(conn)
        with conn.begin():
            merge.apply(conn, run_id, now, counts, {"customers": [PARTNER]})
            merge.apply_lookups(conn, run_id, list(lookups), now)
        staging.drop(conn)
    return {k: counts.get(k, 0) for k in ("added", "changed", "reappeared", "removed")}


# --- reading what readers see ------------------------------------------------------------------

# each public table, its order, and the surrogate keys left out (their values differ between
# SQLite and PostgreSQL when one statement inserts several rows)
_PUBLIC = (
    ("customers", Customer, ("company_id",), ()),
    ("devices", Device, ("device_id",), ()),
    ("device_claims", DeviceClaim, ("device_id", "section_type"), ()),
    ("device_metadata", DeviceMetadata, ("device_id", "key"), ()),
    ("device_versions", DeviceVersion, ("device_id", "valid_from"), ("version_id",)),
    ("identifier_lookups", IdentifierLookup, ("line_number",), ("lookup_id",)),
)


def public_rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of the public tables, as the models read them (JSON parsed, UTC datetimes)."""
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for name, model, order, skip in _PUBLIC:
            table = table_of(model)
            query = select(table).order_by(*(table.c[c] for c in order))
            out[name] = [
                {k: v for k, v in row.items() if k not in skip}
                for row in conn.execute(query).mappings()
            ]
    return out


# --- which rows a transaction wrote ------------------------------------------------------------

_WATCHED = {
    "customers": "company_id",
    "devices": "device_id",
    "device_claims": "device_id",
    "device_metadata": "device_id",
    "device_versions": "device_id",
}


def watch_writes(engine: Engine) -> None:
    """Log every row written to a public table from now on (see :func:`writes`).

    Triggers on each table append (table, key) to ``zt_test_writes`` for each row inserted,
    updated or deleted: a row rewritten with the same values counts too.
    """
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE zt_test_writes (tbl VARCHAR(32), row_key BIGINT)"))
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    """
                    CREATE FUNCTION zt_test_log() RETURNS trigger AS $$
                    BEGIN
                        INSERT INTO zt_test_writes VALUES (TG_TABLE_NAME,
                            (to_jsonb(COALESCE(NEW, OLD)) ->> TG_ARGV[0])::bigint);
                        RETURN NULL;
                    END $$ LANGUAGE plpgsql
                    """
                )
            )
            for table, key in _WATCHED.items():
                conn.execute(
                    text(
                        f"CREATE TRIGGER zt_test_{table} AFTER INSERT OR UPDATE OR DELETE "
                        f"ON {table} FOR EACH ROW EXECUTE FUNCTION zt_test_log('{key}')"
                    )
                )
            return
        for table, key in _WATCHED.items():
            for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
                conn.execute(
                    text(
                        f"CREATE TRIGGER zt_test_{table}_{event.lower()} AFTER {event} "
                        f"ON {table} BEGIN INSERT INTO zt_test_writes "
                        f"VALUES ('{table}', {row}.{key}); END"
                    )
                )


def writes(engine: Engine) -> Counter[tuple[str, int]]:
    """Rows written since :func:`watch_writes` (or the last call), per (table, key); then
    forgets them."""
    with engine.begin() as conn:
        found = Counter(
            (str(t), int(k))
            for t, k in conn.execute(text("SELECT tbl, row_key FROM zt_test_writes"))
        )
        conn.execute(text("DELETE FROM zt_test_writes"))
    return found

"""What the merge decides, and how it applies it: staging into the public tables in one short
transaction.

Everything that can be decided before the transaction is decided before it: which staged
devices are left as they were because only incomplete listings saw them
(:func:`mark_incomplete`), which of a device's several staged rows counts (:func:`deduplicate`),
which current devices this run removes (:func:`stage_removals`), and how many of each change
there are. The transaction itself (:func:`apply`) then only copies rows that changed. Readers
see the previous snapshot until it commits and the new one after.

Column lists are derived from the tables (``inventory.models``), never written here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, text
from sqlalchemy.engine import Connection

from inventory.models import (
    Customer,
    DeviceClaim,
    DeviceMetadata,
    IdentifierLookup,
    StagingClaim,
    StagingCustomer,
    StagingMetadata,
    UTCDateTime,
    table_of,
)
from inventory.sync.staging import DEVICE_CONTENT, DEVICE_KEY, REMOVAL_LISTING, shared_columns
from inventory.transform import ZERO_TOUCH

ACCEPTED = "('added', 'changed', 'reappeared')"
_IDS_PER_STATEMENT = 500  # bound parameters per statement (well under SQLite's limit)
UPDATED = "('changed', 'reappeared')"
_ADDED_IDS = "SELECT device_id FROM sync_staging_devices WHERE change = 'added'"
_UPDATED_IDS = f"SELECT device_id FROM sync_staging_devices WHERE change IN {UPDATED}"
_REMOVED_IDS = "SELECT device_id FROM sync_staging_devices WHERE change = 'removed'"

# A claim "matches" a coverage row when the row names its owner company or its workspace.
_MATCHES = """
    v.section_type = c.section_type AND (
        (v.owner_kind = 'company' AND v.owner_key = CAST(c.owner_company_id AS VARCHAR(32)))
        OR (v.owner_kind = 'workspace' AND v.owner_key = c.google_workspace_customer_id))
"""


def _execute(conn: Connection, sql: str, params: dict[str, Any] | None = None) -> Any:
    """Run one statement in a transaction of its own; list parameters expand (``IN :x``)."""
    params = params or {}
    stmt = text(sql).bindparams(
        *(bindparam(k, expanding=True) for k, v in params.items() if isinstance(v, list))
    )
    with conn.begin():
        result = conn.execute(stmt, params)
        return result.all() if result.returns_rows else None


def mark_incomplete(conn: Connection, listings: list[int]) -> None:
    """What incomplete listings staged counts for nothing: a device only they saw stays as it
    is, never applied, never removed (only those listings' rows are read)."""
    if listings:
        _execute(
            conn,
            "UPDATE sync_staging_devices SET change = 'incomplete' WHERE listing_id IN :listings",
            {"listings": listings},
        )


def deduplicate(conn: Connection) -> None:
    """Keep one staged row of each device that several listings returned: the lowest-numbered
    complete listing's, else the lowest-numbered listing's, with its claims and metadata.

    The rule depends on what was fetched, never on which page arrived first. Only the devices
    noted in ``sync_staging_duplicates`` are read, each through its key.
    """
    _execute(
        conn,
        """
        DELETE FROM sync_staging_devices
        WHERE device_id IN (SELECT device_id FROM sync_staging_duplicates)
          AND listing_id <> (SELECT o.listing_id FROM sync_staging_devices o
                             WHERE o.device_id = sync_staging_devices.device_id
                             ORDER BY CASE WHEN o.change = 'incomplete' THEN 1 ELSE 0 END,
                                      o.listing_id
                             LIMIT 1)
        """,
    )
    for table in ("sync_staging_claims", "sync_staging_metadata"):
        _execute(
            conn,
            f"""
            DELETE FROM {table}
            WHERE device_id IN (SELECT device_id FROM sync_staging_duplicates)
              AND NOT EXISTS (SELECT 1 FROM sync_staging_devices s
                              WHERE s.device_id = {table}.device_id
                                AND s.listing_id = {table}.listing_id)
            """,
        )


def stage_removals(
    conn: Connection,
    sections: Sequence[str],
    *,
    every_customer: bool,
    identifiers_complete: bool,
) -> None:
    """Stage as ``removed`` each current device this run did not see but fully covered.

    A device is covered when every owner of its stored claims (in the synced section types)
    was asked about by a complete listing. With ``every_customer`` (the run listed all customers
    that ``customers.list`` returned) an owner no listing asked about has left the reseller, so
    only an incomplete listing keeps a device; otherwise an owner must be covered explicitly.
    A device with no claim in the synced sections (found by identifier) is removed only in a
    full run whose identifier lookups all succeeded.
    """
    if every_customer:
        blocking = (
            f"EXISTS (SELECT 1 FROM sync_staging_coverage v WHERE NOT v.complete AND {_MATCHES})"
        )
    else:
        blocking = (
            f"NOT EXISTS (SELECT 1 FROM sync_staging_coverage v WHERE v.complete AND {_MATCHES})"
        )
    claimless_ok = "TRUE" if every_customer and identifiers_complete else "FALSE"
    _execute(
        conn,
        f"""
        INSERT INTO sync_staging_devices (device_id, listing_id, change, content_hash)
        SELECT d.device_id, {REMOVAL_LISTING}, 'removed', d.content_hash
        FROM devices d
        WHERE d.removed_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM sync_staging_devices s WHERE s.device_id = d.device_id)
          AND NOT EXISTS (SELECT 1 FROM device_claims c
                          WHERE c.device_id = d.device_id AND c.section_type IN :sections
                            AND {blocking})
          AND ({claimless_ok} OR EXISTS (SELECT 1 FROM device_claims c
                          WHERE c.device_id = d.device_id AND c.section_type IN :sections))
        """,
        {"sections": list(sections)},
    )


def removal_candidates(conn: Connection, sections: Sequence[str]) -> list[int]:
    """Devices staged as removed that a complete listing should have returned: those with a
    claim (in the synced sections) naming an owner that a complete listing asked about.

    With page tokens that are offsets, such a listing can skip a device that is still there
    (see ``inventory.sync.collect``): these are the removals to check before applying them.
    Devices whose owners left ``customers.list`` are not among them: no listing was asked.
    """
    rows = _execute(
        conn,
        f"""
        SELECT s.device_id FROM sync_staging_devices s
        WHERE s.change = 'removed' AND EXISTS (
            SELECT 1 FROM device_claims c
            WHERE c.device_id = s.device_id AND c.section_type IN :sections
              AND EXISTS (SELECT 1 FROM sync_staging_coverage v WHERE v.complete AND {_MATCHES}))
        ORDER BY s.device_id
        """,
        {"sections": list(sections)},
    )
    return [int(r[0]) for r in rows]


def unstage_removals(conn: Connection, device_ids: list[int], *, left: bool) -> None:
    """Take these devices' staged removals back: ``left`` leaves each as it was (its removal
    is not confirmed; the run is partial), else the removal row goes (the device was found,
    and is staged again as the API has it)."""
    for start in range(0, len(device_ids), _IDS_PER_STATEMENT):
        ids = device_ids[start : start + _IDS_PER_STATEMENT]
        action = (
            "UPDATE sync_staging_devices SET change = 'unconfirmed'"
            if left
            else "DELETE FROM sync_staging_devices"
        )
        _execute(conn, f"{action} WHERE change = 'removed' AND device_id IN :ids", {"ids": ids})


def change_counts(conn: Connection) -> dict[str, int]:
    """How many staged devices are added / changed / reappeared / removed / same / incomplete."""
    rows = _execute(conn, "SELECT change, COUNT(*) FROM sync_staging_devices GROUP BY change")
    return {str(k): int(v) for k, v in rows}


def preview(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` staged changes of each kind: what a dry run would apply (a device to
    remove as the snapshot has it, with its zero-touch owner)."""
    sql = text(
        """
        SELECT s.device_id, s.change,
               COALESCE(s.imei, d.imei) AS imei,
               COALESCE(s.serial_number, d.serial_number) AS serial_number,
               CASE WHEN s.change = 'removed'
                    THEN (SELECT c.owner_company_id FROM device_claims c
                          WHERE c.device_id = s.device_id AND c.section_type = :zt)
                    ELSE s.owner_company_id END AS owner_company_id
        FROM sync_staging_devices s LEFT JOIN devices d ON d.device_id = s.device_id
        WHERE s.change = :c ORDER BY s.device_id
        """
    )
    rows: list[dict[str, Any]] = []
    with conn.begin():
        for change in ("added", "changed", "reappeared", "removed"):
            found = conn.execute(sql, {"c": change, "zt": ZERO_TOUCH})
            rows += [dict(r) for r in found.mappings().fetchmany(limit)]
    return rows


def customer_changes(conn: Connection) -> tuple[int, int]:
    """(customers new to the table, current customers that left ``customers.list``)."""
    added = _execute(
        conn,
        "SELECT COUNT(*) FROM sync_staging_customers s WHERE NOT EXISTS "
        "(SELECT 1 FROM customers c WHERE c.company_id = s.company_id)",
    )
    removed = _execute(
        conn,
        "SELECT COUNT(*) FROM customers c WHERE c.removed_at IS NULL AND NOT EXISTS "
        "(SELECT 1 FROM sync_staging_customers s WHERE s.company_id = c.company_id)",
    )
    return int(added[0][0]), int(removed[0][0])


def apply(conn: Connection, run_id: int, now: datetime, counts: dict[str, int]) -> None:
    """Merge the run's staging into the public tables, inside the caller's transaction.

    ``counts`` is :func:`change_counts`, taken before the transaction (the run holds the
    writer lock, so staging cannot change in between); ``run_id`` goes on the new versions.
    """
    params = {"r": run_id, "now": now}

    def run(sql: str) -> None:
        stmt = text(sql)
        if ":now" in sql:
            stmt = stmt.bindparams(bindparam("now", type_=UTCDateTime()))
        conn.execute(stmt, params)

    # Each group of statements below scans the run's staging rows; skip the groups with
    # nothing to do (an unchanged re-sync has neither accepted nor removed devices). Added
    # devices have no rows anywhere yet, so they take plain inserts, cheaper than upserts.
    added = bool(counts.get("added"))
    updated = bool(counts.get("changed") or counts.get("reappeared"))
    removed = bool(counts.get("removed"))
    if added:
        _copy_devices(run, "('added')", _ADDED_IDS, upsert=False)
    if updated:
        # Only rows that changed are written; a re-sync of unchanged data writes none.
        _copy_devices(run, UPDATED, _UPDATED_IDS, upsert=True)
    if updated or removed:
        run(
            f"""
            UPDATE device_versions SET valid_to = :now
            WHERE valid_to IS NULL
              AND (device_id IN ({_UPDATED_IDS}) OR device_id IN ({_REMOVED_IDS}))
            """
        )
    if added or updated:
        run(
            f"""
            INSERT INTO device_versions (device_id, valid_from, valid_to, run_id, removed,
                                         owner_company_id, content_hash, raw)
            SELECT device_id, :now, NULL, :r, FALSE, owner_company_id, content_hash, raw
            FROM sync_staging_devices WHERE change IN {ACCEPTED}
            """
        )
    if removed:
        _apply_removed(run)
    _apply_customers(run)


# what the merge copies from each staging table into its public table, beside the keys
_DEVICE_COLUMNS = (*DEVICE_KEY, *DEVICE_CONTENT)
_CLAIM_COLUMNS = shared_columns(
    table_of(DeviceClaim), table_of(StagingClaim), skip=("device_id", "section_type")
)
_METADATA_COLUMNS = shared_columns(
    table_of(DeviceMetadata), table_of(StagingMetadata), skip=("device_id", "key")
)
_CUSTOMER_COLUMNS = shared_columns(
    table_of(Customer), table_of(StagingCustomer), skip=("company_id",)
)


def _assignments(columns: Sequence[str]) -> str:
    """``col = excluded.col, …``: an upsert's SET list."""
    return ", ".join(f"{c} = excluded.{c}" for c in columns)


def _copy_devices(run: Callable[[str], None], changes: str, ids: str, *, upsert: bool) -> None:
    """Copy staged devices (``changes``, an SQL list; ``ids``, a query of their ids) with their
    claims and metadata into the public tables.

    Added devices have no rows anywhere yet: plain inserts. Changed and reappeared devices
    (``upsert``) overwrite their rows and drop the claims and metadata they no longer have.
    """
    cols = ", ".join(_DEVICE_COLUMNS)
    on_device = (
        f"ON CONFLICT (device_id) DO UPDATE SET {_assignments(_DEVICE_COLUMNS[1:])}, "
        "last_changed_at = excluded.last_changed_at, removed_at = NULL"
    )
    run(
        f"""
        INSERT INTO devices ({cols}, first_seen_at, last_changed_at, removed_at)
        SELECT {cols}, :now, :now, NULL
        FROM sync_staging_devices WHERE change IN {changes}
        {on_device if upsert else ""}
        """
    )
    children = (  # (table, its staging table, its key beside device_id, the columns it copies)
        ("device_claims", "sync_staging_claims", "section_type", _CLAIM_COLUMNS),
        ("device_metadata", "sync_staging_metadata", "key", _METADATA_COLUMNS),
    )
    for table, staged, key, copied in children:
        columns = ", ".join((key, *copied))
        on_conflict = f"ON CONFLICT (device_id, {key}) DO UPDATE SET {_assignments(copied)}"
        if upsert:
            run(
                f"""
                DELETE FROM {table} WHERE device_id IN ({ids})
                  AND NOT EXISTS (SELECT 1 FROM {staged} s
                                  WHERE s.device_id = {table}.device_id
                                  AND s.{key} = {table}.{key})
                """
            )
        run(
            f"""
            INSERT INTO {table} (device_id, {columns})
            SELECT device_id, {columns} FROM {staged}
            WHERE device_id IN ({ids})
            {on_conflict if upsert else ""}
            """
        )


def _apply_removed(run: Callable[[str], None]) -> None:
    """A closing version for each removed device, then its removal."""
    run(
        f"""
        INSERT INTO device_versions (device_id, valid_from, valid_to, run_id, removed,
                                     owner_company_id, content_hash, raw)
        SELECT d.device_id, :now, NULL, :r, TRUE, NULL, d.content_hash, d.raw
        FROM devices d WHERE d.device_id IN ({_REMOVED_IDS})
        """
    )
    # Removals: nothing is deleted from devices; claims and metadata are of current devices only.
    run(f"UPDATE devices SET removed_at = :now WHERE device_id IN ({_REMOVED_IDS})")
    run(f"DELETE FROM device_claims WHERE device_id IN ({_REMOVED_IDS})")
    run(f"DELETE FROM device_metadata WHERE device_id IN ({_REMOVED_IDS})")


def apply_lookups(
    conn: Connection, run_id: int, lookups: list[dict[str, Any]], now: datetime
) -> None:
    """Store the run's identifier lookups (inside the caller's transaction)."""
    if lookups:
        conn.execute(
            insert(IdentifierLookup), [dict(x, run_id=run_id, looked_up_at=now) for x in lookups]
        )


def _apply_customers(run: Callable[[str], None]) -> None:
    cols = ", ".join(_CUSTOMER_COLUMNS)
    updates = _assignments(_CUSTOMER_COLUMNS)
    run(
        f"""
        INSERT INTO customers (company_id, {cols}, first_seen_at, last_changed_at, removed_at)
        SELECT company_id, {cols}, :now, :now, NULL FROM sync_staging_customers s
        WHERE NOT EXISTS (
            SELECT 1 FROM customers c WHERE c.company_id = s.company_id
              AND c.content_hash = s.content_hash AND c.removed_at IS NULL)
        ON CONFLICT (company_id) DO UPDATE SET {updates},
            last_changed_at = excluded.last_changed_at, removed_at = NULL
        """
    )
    run(
        """
        UPDATE customers SET removed_at = :now
        WHERE removed_at IS NULL AND NOT EXISTS (
            SELECT 1 FROM sync_staging_customers s WHERE s.company_id = customers.company_id)
        """
    )

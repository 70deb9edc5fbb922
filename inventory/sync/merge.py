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

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, insert, text
from sqlalchemy.engine import Connection

from inventory.models import (
    Customer,
    DeviceClaim,
    DeviceMetadata,
    IdentifierLookup,
    StagingClaim,
    StagingMetadata,
    UTCDateTime,
    Vendor,
    VendorCustomer,
    table_of,
)
from inventory.sync.staging import (
    DEVICE_CONTENT,
    DEVICE_KEY,
    REMOVAL_LISTING,
    STAGED_CUSTOMERS,
    STAGED_VENDOR_CUSTOMERS,
    STAGED_VENDORS,
    shared_columns,
)
from inventory.transform import ZERO_TOUCH

ACCEPTED = "('added', 'changed', 'reappeared')"
_IDS_PER_STATEMENT = 500  # bound parameters per statement (well under SQLite's limit)
UPDATED = "('changed', 'reappeared')"
_ADDED_IDS = "SELECT device_id FROM sync_staging_devices WHERE change = 'added'"
_UPDATED_IDS = f"SELECT device_id FROM sync_staging_devices WHERE change IN {UPDATED}"
_REMOVED_IDS = "SELECT device_id FROM sync_staging_devices WHERE change = 'removed'"

# The partner a stored claim belongs to: the configured partner that made it (its resellerId),
# else the device's (a claim a vendor made, or one of a partner no longer configured).
_CLAIM_PARTNER = """CASE WHEN EXISTS (SELECT 1 FROM sync_staging_scope x
                                 WHERE x.partner_id = c.reseller_id)
                     THEN c.reseller_id ELSE d.partner_id END"""
# A stored claim joined to the run's scope for its partner and section (no row: not the run's
# concern, like a section type the run does not sync).
_IN_SCOPE = f"""JOIN sync_staging_scope sc
              ON sc.partner_id = {_CLAIM_PARTNER} AND sc.section_type = c.section_type"""
# A claim "matches" a coverage row when the row is of the claim's partner and section and names
# its owner company or its workspace.
_MATCHES = """
    v.partner_id = sc.partner_id AND v.section_type = c.section_type AND (
        (v.owner_kind = 'company' AND v.owner_key = CAST(c.owner_company_id AS VARCHAR(32)))
        OR (v.owner_kind = 'workspace' AND v.owner_key = c.google_workspace_customer_id))
"""
# A claim that keeps its device: its partner was not synced (or its customers.list failed), an
# incomplete listing asked about its owner, or the run listed some customers and no complete
# listing asked about it.
_BLOCKING = f"""(sc.mode = 'skipped'
    OR (sc.mode = 'everyone' AND EXISTS (
        SELECT 1 FROM sync_staging_coverage v WHERE NOT v.complete AND {_MATCHES}))
    OR (sc.mode = 'explicit' AND NOT EXISTS (
        SELECT 1 FROM sync_staging_coverage v WHERE v.complete AND {_MATCHES})))"""


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


def stage_removals(conn: Connection, *, claimless_partners: Sequence[int]) -> None:
    """Stage as ``removed`` each current device this run did not see but fully covered.

    A device is covered when no stored claim of it keeps it (see ``_BLOCKING``): with the run's
    scope (``sync_staging_scope``) ``everyone`` for a partner and section, an owner no listing
    asked about has left the partner, so only an incomplete listing keeps a device; with
    ``explicit``, an owner must be covered by a complete listing; with ``skipped``, nothing of
    that partner is removed. Removals are decided per partner: a device that another partner's
    listing returned was seen, and one whose claim is another partner's is that partner's to
    remove. A device with no claim in the run's scope (found by identifier) is removed only when
    its partner is among ``claimless_partners`` (a full run of it whose identifier lookups all
    succeeded).
    """
    # The devices the run did not see come first, as a set of their own (MATERIALIZED): few,
    # and found by one anti-join. Left to itself, PostgreSQL's planner checked every current
    # device's claims first (0.65 s of an unchanged re-sync of 100,000 devices).
    _execute(
        conn,
        f"""
        WITH unseen AS MATERIALIZED (
            SELECT d.device_id, d.content_hash, d.partner_id FROM devices d
            WHERE d.removed_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM sync_staging_devices s
                              WHERE s.device_id = d.device_id))
        INSERT INTO sync_staging_devices (device_id, listing_id, change, content_hash, partner_id)
        SELECT d.device_id, {REMOVAL_LISTING}, 'removed', d.content_hash, d.partner_id
        FROM unseen d
        WHERE NOT EXISTS (SELECT 1 FROM device_claims c {_IN_SCOPE}
                          WHERE c.device_id = d.device_id AND {_BLOCKING})
          AND (d.partner_id IN :claimless OR EXISTS (SELECT 1 FROM device_claims c {_IN_SCOPE}
                                                     WHERE c.device_id = d.device_id))
        """,
        {"claimless": list(claimless_partners)},
    )


def removal_candidates(conn: Connection) -> list[tuple[int, int]]:
    """Devices staged as removed that a complete listing should have returned, each with the
    partner whose listing that was: those with a claim (in the run's scope) naming an owner
    that a complete listing of its partner asked about.

    With page tokens that are offsets, such a listing can skip a device that is still there
    (see ``inventory.sync.collect``): these are the removals to check before applying them.
    Devices whose owners left ``customers.list`` are not among them: no listing was asked.
    """
    rows = _execute(
        conn,
        f"""
        WITH removed AS MATERIALIZED (
            SELECT device_id FROM sync_staging_devices WHERE change = 'removed')
        SELECT s.device_id, MIN(sc.partner_id) FROM removed s
        JOIN devices d ON d.device_id = s.device_id
        JOIN device_claims c ON c.device_id = s.device_id
        {_IN_SCOPE}
        WHERE EXISTS (SELECT 1 FROM sync_staging_coverage v WHERE v.complete AND {_MATCHES})
        GROUP BY s.device_id
        ORDER BY s.device_id
        """,
    )
    return [(int(r[0]), int(r[1])) for r in rows]


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


def devices_per_listing(conn: Connection, changes: Sequence[str]) -> dict[int, int]:
    """{listing id: staged devices of these changes that it kept} (a device two listings
    returned counts for the one whose row the merge kept)."""
    rows = _execute(
        conn,
        "SELECT listing_id, COUNT(*) FROM sync_staging_devices WHERE change IN :changes "
        "GROUP BY listing_id",
        {"changes": list(changes)},
    )
    return {int(k): int(v) for k, v in rows}


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


def customer_changes(conn: Connection, partners: Sequence[int]) -> tuple[int, int]:
    """(customers new to the table, current customers that left ``customers.list``), of the
    partners whose customers.list arrived whole (``partners``)."""
    added = _execute(
        conn,
        "SELECT COUNT(*) FROM sync_staging_customers s WHERE NOT EXISTS "
        "(SELECT 1 FROM customers c WHERE c.partner_id = s.partner_id "
        "AND c.company_id = s.company_id)",
    )
    removed = _execute(
        conn,
        "SELECT COUNT(*) FROM customers c WHERE c.removed_at IS NULL "
        "AND c.partner_id IN :partners AND NOT EXISTS "
        "(SELECT 1 FROM sync_staging_customers s WHERE s.partner_id = c.partner_id "
        "AND s.company_id = c.company_id)",
        {"partners": list(partners)},
    )
    return int(added[0][0]), int(removed[0][0])


def apply(
    conn: Connection,
    run_id: int,
    now: datetime,
    counts: dict[str, int],
    lists_whole: Mapping[str, Sequence[int]],
) -> None:
    """Merge the run's staging into the public tables, inside the caller's transaction.

    ``counts`` is :func:`change_counts`, taken before the transaction (the run holds the
    writer lock, so staging cannot change in between); ``run_id`` goes on the new versions.
    ``lists_whole`` names, for each of ``customers``, ``vendors`` and ``vendor_customers``, the
    partners whose list arrived whole: rows of theirs that the run did not see are removed.
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
                                         owner_company_id, content_hash, raw, partner_id)
            SELECT device_id, :now, NULL, :r, FALSE, owner_company_id, content_hash, raw,
                   partner_id
            FROM sync_staging_devices WHERE change IN {ACCEPTED}
            """
        )
    if removed:
        _apply_removed(run)
    for public, staged in _LISTS:
        _merge_list(conn, public, staged, lists_whole.get(public.name, ()), now)


# what the merge copies from each staging table into its public table, beside the keys
_DEVICE_COLUMNS = (*DEVICE_KEY, *DEVICE_CONTENT)
_CLAIM_COLUMNS = shared_columns(
    table_of(DeviceClaim), table_of(StagingClaim), skip=("device_id", "section_type")
)
_METADATA_COLUMNS = shared_columns(
    table_of(DeviceMetadata), table_of(StagingMetadata), skip=("device_id", "key")
)
# the lists merged whole: (public table, its staging table)
_LISTS = (
    (table_of(Customer), STAGED_CUSTOMERS),
    (table_of(Vendor), STAGED_VENDORS),
    (table_of(VendorCustomer), STAGED_VENDOR_CUSTOMERS),
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
                                     owner_company_id, content_hash, raw, partner_id)
        SELECT d.device_id, :now, NULL, :r, TRUE, NULL, d.content_hash, d.raw, d.partner_id
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


def _merge_list(
    conn: Connection, public: Table, staged: Table, whole: Sequence[int], now: datetime
) -> None:
    """Merge one staged list (customers, vendors, vendor customers) into its table: new and
    changed rows are written, with their first-seen time kept, and current rows of the partners
    in ``whole`` that the run did not see are removed (``removed_at``)."""
    keys = [c.name for c in public.primary_key.columns]
    copied = shared_columns(public, staged, skip=keys)
    cols = ", ".join((*keys, *copied))
    same = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    stamp = bindparam("now", type_=UTCDateTime())
    conn.execute(
        text(
            f"""
            INSERT INTO {public.name} ({cols}, first_seen_at, last_changed_at, removed_at)
            SELECT {cols}, :now, :now, NULL FROM {staged.name} s
            WHERE NOT EXISTS (
                SELECT 1 FROM {public.name} t WHERE {same}
                  AND t.content_hash = s.content_hash AND t.removed_at IS NULL)
            ON CONFLICT ({", ".join(keys)}) DO UPDATE SET {_assignments(copied)},
                last_changed_at = excluded.last_changed_at, removed_at = NULL
            """
        ).bindparams(stamp),
        {"now": now},
    )
    if whole:
        unseen = " AND ".join(f"s.{k} = {public.name}.{k}" for k in keys)
        conn.execute(
            text(
                f"""
                UPDATE {public.name} SET removed_at = :now
                WHERE removed_at IS NULL AND partner_id IN :partners
                  AND NOT EXISTS (SELECT 1 FROM {staged.name} s WHERE {unseen})
                """
            ).bindparams(stamp, bindparam("partners", expanding=True)),
            {"now": now, "partners": list(whole)},
        )

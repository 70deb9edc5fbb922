"""A ready way to browse a SQLite snapshot in Datasette: titles, column descriptions, facets,
and the README's SQL recipes as canned queries (``zt-inventory datasette-metadata``).

Datasette keys a database's metadata by its name, the file's name without ``.db``; Alembic's
table is hidden. :data:`RECIPES` is the one list of the recipes: the README shows the same SQL,
and the demo asks some of the same questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Recipe:
    """A question resellers ask and the SQL (SQLite's dialect) that answers it."""

    name: str
    title: str
    sql: str
    description: str = ""


RECIPES = (
    Recipe(
        "owner_of_imei",
        "Which customer owns IMEI X?",
        "SELECT device_id, imei, imei2, model, company_id, company_name\n"
        "FROM v_devices\nWHERE imei = :imei OR imei2 = :imei",
    ),
    Recipe(
        "devices_per_customer_and_model",
        "Devices per customer and model",
        "SELECT company_name, model, COUNT(*) AS devices\nFROM v_devices\n"
        "GROUP BY company_name, model\nORDER BY devices DESC",
    ),
    Recipe(
        "not_registered",
        "Devices we shipped (identifiers file) that are not registered",
        "SELECT line_number, imei, serial_number, order_number, expected_company_id\n"
        "FROM v_reconciliation\nWHERE state = 'not_registered'\nORDER BY line_number",
        "The newest run that looked identifiers up: a sync with an identifiers file, or a "
        "reconcile.",
    ),
    Recipe(
        "shipment_problems",
        "Shipped devices not registered to the customer they were shipped to",
        "SELECT line_number, imei, serial_number, order_number, expected_company_id,\n"
        "       company_id, company_name, state, error\n"
        "FROM v_reconciliation\nWHERE state <> 'ok'\nORDER BY line_number",
        "state: wrong_customer, unclaimed (no zero-touch owner), not_registered or error.",
    ),
    Recipe(
        "order_devices_not_in_file",
        "Devices of a shipped order that the identifiers file does not name",
        "SELECT m.value AS order_number, v.device_id, v.imei, v.serial_number, v.company_name\n"
        "FROM device_metadata m JOIN v_devices v ON v.device_id = m.device_id\n"
        "WHERE m.key = 'ordernumber'\n"
        "  AND m.value IN (SELECT order_number FROM v_reconciliation)\n"
        "  AND m.device_id NOT IN (SELECT device_id FROM v_reconciliation\n"
        "                          WHERE device_id IS NOT NULL)\n"
        "ORDER BY order_number, v.device_id",
        "A device's order is its ordernumber metadata; reconcile lists these as not_in_file.",
    ),
    Recipe(
        "changed_since_yesterday",
        "What changed since yesterday?",
        "SELECT changed_at, device_id, change, previous_company_id, company_id\n"
        "FROM v_device_changes\nWHERE changed_at > datetime('now', '-1 day')",
        "On PostgreSQL: WHERE changed_at > now() - interval '1 day'.",
    ),
    Recipe(
        "moved_this_week",
        "Which devices moved between customers this week?",
        "SELECT c.changed_at, c.device_id, c.previous_company_id, f.company_name AS moved_from,\n"
        "       c.company_id, t.company_name AS moved_to\n"
        "FROM v_device_changes c\n"
        "LEFT JOIN customers f\n"
        "       ON f.partner_id = c.partner_id AND f.company_id = c.previous_company_id\n"
        "LEFT JOIN customers t ON t.partner_id = c.partner_id AND t.company_id = c.company_id\n"
        "WHERE c.change = 'moved' AND c.changed_at > datetime('now', '-7 days')",
        "On PostgreSQL: c.changed_at > now() - interval '7 days'.",
    ),
    Recipe(
        "vendor_devices",
        "Which vendor's customers own which devices?",
        "SELECT partner_id, vendor_name, company_id, company_name, COUNT(*) AS devices\n"
        "FROM v_vendor_devices\n"
        "GROUP BY partner_id, vendor_name, company_id, company_name\n"
        "ORDER BY devices DESC",
        "Vendors are sub-resellers; v_vendor_devices has one row per device.",
    ),
    Recipe(
        "owned_at",
        "What did customer C own at time T?",
        "SELECT device_id, valid_from, valid_to\nFROM device_versions\n"
        "WHERE owner_company_id = :company_id AND NOT removed\n"
        "  AND valid_from <= :at AND (valid_to IS NULL OR valid_to > :at)",
        "T in UTC, as 2026-03-01 or 2026-03-01 12:00.",
    ),
    Recipe(
        "asset_tags",
        "Devices with an asset tag in their metadata",
        "SELECT v.device_id, v.imei, v.serial_number, m.value AS asset_tag, v.company_name\n"
        "FROM device_metadata m JOIN v_devices v ON v.device_id = m.device_id\n"
        "WHERE m.key = 'asset_tag'",
    ),
    Recipe(
        "freshness",
        "How fresh is the snapshot?",
        "SELECT run_id, finished_at, devices_seen\nFROM sync_runs\n"
        "WHERE status = 'succeeded' AND scope = 'full'\nORDER BY run_id DESC LIMIT 1",
        "Only full runs (every customer) count: a --customer run updates a few customers.",
    ),
)

_IDENTIFIERS = {
    "device_id": "The device's id in the zero-touch API (int64).",
    "imei": "IMEI (first SIM slot).",
    "imei2": "IMEI of the second SIM slot.",
    "meid": "MEID (first SIM slot).",
    "meid2": "MEID of the second SIM slot.",
    "serial_number": "Manufacturer's serial number.",
    "manufacturer": "Manufacturer as registered.",
    "model": "Model as registered.",
    "chrome_os_attested_device_id": "Chrome OS attested device id.",
    "device_type": "DEVICE_TYPE_ANDROID or DEVICE_TYPE_CHROME_OS.",
}
_OWNER = {
    "company_id": "The zero-touch customer that owns the device (its claim's ownerCompanyId, "
    "or the customer whose Google Workspace account claimed it).",
    "company_name": "That customer's name.",
}

TABLES: dict[str, dict[str, Any]] = {
    "v_devices": {
        "title": "Current devices",
        "description": "One row per device in the newest snapshot, with its zero-touch owner.",
        "facets": ["company_name", "manufacturer", "model", "device_type"],
        "sort": "device_id",
        "columns": {
            **_IDENTIFIERS,
            **_OWNER,
            "google_workspace_customer_id": "Workspace account of a Chrome OS claim.",
            "metadata": "The device's metadata entries as one JSON object.",
            "partner_id": "The reseller account whose listing returned the device.",
        },
    },
    "v_customer_device_counts": {
        "title": "Devices per customer",
        "description": "Current customers of each reseller account and how many current "
        "devices each owns.",
        "sort_desc": "devices",
        "columns": {
            "partner_id": "The reseller account whose customer it is.",
            "company_id": "The customer's id (int64).",
            "company_name": "The customer's name.",
            "devices": "Current devices it owns in the zero-touch section.",
        },
    },
    "v_device_changes": {
        "title": "Device changes",
        "description": "One row per change of a device, oldest first: what each sync run "
        "added, removed, brought back, moved between customers or otherwise changed.",
        "facets": ["change", "run_id"],
        "sort_desc": "changed_at",
        "columns": {
            "run_id": "The sync run that saw the change (sync_runs).",
            "changed_at": "When that run applied it (UTC).",
            "device_id": "The device.",
            "change": "added, removed, reappeared, moved (zero-touch owner changed) or changed "
            "(anything else: identifiers, metadata, other claims).",
            "previous_company_id": "The zero-touch owner before the change.",
            "company_id": "The zero-touch owner after it (none once removed).",
            "version_id": "The new version's row in device_versions.",
            "partner_id": "The reseller account whose listing saw the change.",
        },
    },
    "v_vendor_devices": {
        "title": "Devices of vendors' customers",
        "description": "One row per current device owned by a current customer of a current "
        "vendor (sub-reseller) of the device's reseller account.",
        "facets": ["vendor_name", "company_name", "model"],
        "columns": {
            **{k: v for k, v in _IDENTIFIERS.items() if k in ("device_id", "imei", "meid")},
            "partner_id": "The reseller account.",
            "vendor_id": "The vendor (sub-reseller).",
            "vendor_name": "The vendor's name.",
            "company_id": "The vendor's customer that owns the device.",
            "company_name": "That customer's name.",
        },
    },
    "v_reconciliation": {
        "title": "Reconciliation of the identifiers file",
        "description": "One row per row of the identifiers CSV in the newest run that looked "
        "identifiers up (a sync with sync.identifiers_file, or zt-inventory reconcile), and "
        "whether it is registered to the customer it was shipped to.",
        "facets": ["state", "order_number", "company_name"],
        "sort": "line_number",
        "columns": {
            # the identifiers CSV's columns: no second SIM slot
            **{k: v for k, v in _IDENTIFIERS.items() if k not in ("imei2", "meid2")},
            "run_id": "The run that looked the rows up (sync_runs).",
            "line_number": "The row's line in the CSV (the header is line 1).",
            "order_number": "The order the file says the device was shipped in.",
            "expected_company_id": "The customer the file says the device was shipped to.",
            "device_id": "The device findByIdentifier found (the first, if several).",
            "company_id": "Its zero-touch owner as findByIdentifier reported it when the row "
            "was looked up (not the snapshot's: a device registered since the last sync has "
            "one too).",
            "company_name": "That customer's name.",
            "state": "ok, wrong_customer, unclaimed (no zero-touch owner), not_registered, "
            "or error (a malformed row, or one the API refused: see error).",
            "matches": "How many devices matched the row.",
            "error": "Why the row was not looked up, or what the API said.",
        },
    },
    "customers": {
        "title": "Customers",
        "description": "One row per reseller account and company from its customers.list; "
        "removed_at is set once it leaves the list.",
        "facets": ["terms_status", "language_code"],
        "columns": {
            "company_id": "The customer's id (int64).",
            "google_workspace_account": "Its Google Workspace account (JSON), NULL for none.",
            "removed_at": "When it left customers.list; NULL while it is there.",
        },
    },
    "devices": {
        "title": "Devices (ever seen)",
        "description": "One row per device ever seen; removed_at is NULL while it is current.",
        "facets": ["manufacturer", "device_type"],
        "columns": {**_IDENTIFIERS, "raw": "The device's JSON as the API sent it."},
    },
    "device_claims": {
        "title": "Claims",
        "description": "One row per claim of a current device, per section type.",
        "facets": ["section_type", "owner_company_id"],
    },
    "device_metadata": {
        "title": "Metadata entries",
        "description": "One row per metadata entry of a current device.",
        "facets": ["key"],
    },
    "device_versions": {
        "title": "Device history",
        "description": "One row per version of a device; valid_to is NULL for the current one. "
        "'What did customer C own at time T' is a query over this table.",
        "facets": ["run_id", "removed"],
        "columns": {"owner_company_id": "The zero-touch owner during this version."},
    },
    "identifier_lookups": {
        "title": "Identifier lookups",
        "description": "One row per row of the identifiers file per run, and what "
        "findByIdentifier found; v_reconciliation reads the newest run's.",
        "facets": ["run_id", "found"],
        "columns": {
            "owner_company_id": "The zero-touch owner findByIdentifier reported.",
            "google_workspace_customer_id": "The Workspace account of a zero-touch claim "
            "that names no company.",
            "error": "Why the row was not looked up (malformed), or what the API said.",
        },
    },
    "sync_runs": {
        "title": "Sync runs",
        "description": "One row per run. Only succeeded runs of scope full tell how fresh the "
        "whole fleet is.",
        "facets": ["status", "scope", "trigger"],
        "sort_desc": "run_id",
        "columns": {
            "scope": "full (every customer), customers (--customer; ids in "
            "scope_customer_ids), partners (--partner) or identifiers (lookups only).",
            "unknown_fields": "API fields this version does not know, counted (JSON).",
        },
    },
    "vendors": {
        "title": "Vendors",
        "description": "One row per vendor (sub-reseller) of a reseller account, from "
        "vendors.list; removed_at is set once it leaves the list.",
        "columns": {"removed_at": "When it left vendors.list; NULL while it is there."},
    },
    "vendor_customers": {
        "title": "Vendors' customers",
        "description": "One row per customer of a vendor, from vendors.customers.list.",
        "facets": ["vendor_id"],
        "columns": {"removed_at": "When it left the vendor's list; NULL while it is there."},
    },
    "sync_run_partners": {
        "title": "Reseller accounts of each run",
        "description": "How each partner of a run went: failed (its customers.list failed: "
        "left as it was), partial or succeeded.",
        "facets": ["run_id", "partner_id", "status"],
    },
    "sync_listings": {
        "title": "Listings of each run",
        "description": "One findByOwner query, paged to its end, per row.",
        "facets": ["run_id", "complete", "section_type"],
    },
}
HIDDEN = ("alembic_version", "sync_lock")  # staging tables are temporary: never in the file


def datasette_metadata(database: str) -> dict[str, Any]:
    """Datasette's metadata (``datasette DB.db --metadata FILE``) for a snapshot file.

    Args:
        database: Datasette's name of the database: the file name without ``.db``.
    """
    tables: dict[str, dict[str, Any]] = {name: dict(meta) for name, meta in TABLES.items()}
    tables.update({name: {"hidden": True} for name in HIDDEN})
    queries: dict[str, dict[str, str]] = {}
    for recipe in RECIPES:
        query = {"title": recipe.title, "sql": recipe.sql}
        if recipe.description:
            query["description"] = recipe.description
        queries[recipe.name] = query
    return {
        "title": "zt-inventory",
        "description": "A SQL copy of a zero-touch reseller's device inventory. Start with "
        "v_devices, v_customer_device_counts, v_device_changes and v_reconciliation; the "
        "queries below answer the usual questions.",
        "databases": {database: {"tables": tables, "queries": queries}},
    }

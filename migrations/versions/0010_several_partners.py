"""several reseller accounts in one database, and their vendors

A run syncs every configured partner (``[[partners]]``). Rows that belong to a partner say
which:

- ``customers`` is keyed by ``(partner_id, company_id)``: a company can be a customer of two of
  the reseller's accounts, each with its own ``customers.list`` entry.
- ``devices`` already carried ``partner_id`` (the account that lists the device); a device's
  versions now carry it too (``device_versions.partner_id``), and so do ``sync_listings`` and
  ``identifier_lookups``. Existing rows get their run's partner (``sync_runs.partner_id``),
  else their device's: a one-partner database is upgraded in place.
- ``sync_run_partners``: how each partner of a run went (a partner whose listings failed makes
  the run partial for it alone); ``status`` and the metrics show each partner's last full run.
- ``vendors`` and ``vendor_customers``: ``partners.vendors.list`` and
  ``partners.vendors.customers.list``, with first-seen and soft delete like ``customers``.

The views carry ``partner_id`` and join customers on it: ``v_devices`` (one row per current
device), ``v_customer_device_counts`` (one row per partner and customer), ``v_device_changes``
and ``v_reconciliation`` (one row per CSV row: the lookup of the partner that found the device,
when several partners looked it up).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 17:00:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC_DATETIME = sa.DateTime(timezone=True)
VIEWS = (
    "v_vendor_devices",
    "v_reconciliation",
    "v_device_changes",
    "v_customer_device_counts",
    "v_devices",
)

# --- the views, with partner_id -------------------------------------------------------------

# The zero-touch owner of a claim: its ownerCompanyId, or the partner's customer whose Workspace
# account the claim names.
OWNER = """COALESCE(c.owner_company_id,
                (SELECT MIN(w.company_id) FROM customers w
                  WHERE w.partner_id = d.partner_id
                    AND w.google_workspace_customer_id = c.google_workspace_customer_id
                    AND c.google_workspace_customer_id IS NOT NULL))"""
METADATA = """COALESCE((SELECT {json_agg}(m.key, m.value) FROM device_metadata m
                  WHERE m.device_id = d.device_id), {empty_json})"""
V_DEVICES = """
CREATE VIEW v_devices AS
SELECT d.device_id, d.partner_id, d.imei, d.imei2, d.meid, d.meid2, d.serial_number,
       d.manufacturer, d.model, d.chrome_os_attested_device_id, d.device_type,
       CAST({owner} AS BIGINT) AS company_id,
       CAST(COALESCE(cu.company_name,
                     (SELECT MIN(vc.company_name) FROM vendor_customers vc
                       WHERE vc.partner_id = d.partner_id AND vc.company_id = {owner}
                         AND vc.removed_at IS NULL)) AS TEXT) AS company_name,
       c.google_workspace_customer_id,
       CAST({metadata} AS {json_type}) AS metadata
FROM devices d
LEFT JOIN device_claims c
       ON c.device_id = d.device_id AND c.section_type = 'SECTION_TYPE_ZERO_TOUCH'
LEFT JOIN customers cu ON cu.partner_id = d.partner_id AND cu.company_id = {owner}
WHERE d.removed_at IS NULL
"""
V_CUSTOMER_DEVICE_COUNTS = """
CREATE VIEW v_customer_device_counts AS
SELECT cu.partner_id, cu.company_id, cu.company_name, CAST(COUNT(v.device_id) AS BIGINT) AS devices
FROM customers cu
LEFT JOIN v_devices v ON v.partner_id = cu.partner_id AND v.company_id = cu.company_id
WHERE cu.removed_at IS NULL
GROUP BY cu.partner_id, cu.company_id, cu.company_name
"""
V_DEVICE_CHANGES = """
CREATE VIEW v_device_changes AS
SELECT v.run_id,
       v.valid_from AS changed_at,
       v.device_id,
       CAST(CASE WHEN v.removed THEN 'removed'
                 WHEN p.version_id IS NULL THEN 'added'
                 WHEN p.removed THEN 'reappeared'
                 WHEN COALESCE(p.owner_company_id, -1) <> COALESCE(v.owner_company_id, -1)
                   THEN 'moved'
                 ELSE 'changed' END AS VARCHAR(16)) AS change,
       p.owner_company_id AS previous_company_id,
       v.owner_company_id AS company_id,
       v.version_id,
       v.partner_id
FROM device_versions v
LEFT JOIN device_versions p ON p.device_id = v.device_id AND p.valid_to = v.valid_from
ORDER BY v.valid_from, v.version_id
"""
LOOKUP_OWNER = """COALESCE(l.owner_company_id,
                (SELECT MIN(w.company_id) FROM customers w
                  WHERE w.partner_id = l.partner_id
                    AND w.google_workspace_customer_id = l.google_workspace_customer_id))"""
V_RECONCILIATION = f"""
CREATE VIEW v_reconciliation AS
-- One row per identifiers-CSV row of the newest run that looked identifiers up; when several
-- partners looked a row up, the lookup of the partner that found its device (the lowest id).
-- company_id: the zero-touch owner findByIdentifier reported when the row was looked up
-- (looked_up_at), not the one in the snapshot: a device registered since the last sync has
-- one too.
SELECT l.run_id,
       l.partner_id,
       l.line_number,
       l.imei, l.meid, l.serial_number, l.manufacturer, l.model, l.device_type,
       l.chrome_os_attested_device_id,
       l.order_number,
       l.expected_company_id,
       l.device_id,
       CAST({LOOKUP_OWNER} AS BIGINT) AS company_id,
       cu.company_name,
       CAST(CASE WHEN l.error IS NOT NULL THEN 'error'
                 WHEN NOT l.found THEN 'not_registered'
                 WHEN l.owner_company_id IS NULL AND l.google_workspace_customer_id IS NULL
                   THEN 'unclaimed'
                 WHEN l.expected_company_id IS NOT NULL
                      AND COALESCE({LOOKUP_OWNER}, -1) <> l.expected_company_id
                   THEN 'wrong_customer'
                 ELSE 'ok' END AS VARCHAR(16)) AS state,
       l.matches,
       l.error
FROM identifier_lookups l
LEFT JOIN customers cu ON cu.partner_id = l.partner_id AND cu.company_id = {LOOKUP_OWNER}
WHERE l.run_id = (SELECT MAX(run_id) FROM identifier_lookups)
  AND l.lookup_id = (SELECT o.lookup_id FROM identifier_lookups o
                     WHERE o.run_id = l.run_id AND o.line_number = l.line_number
                     ORDER BY CASE WHEN o.found THEN 0 ELSE 1 END, o.partner_id, o.lookup_id
                     LIMIT 1)
ORDER BY l.line_number
"""
V_VENDOR_DEVICES = """
CREATE VIEW v_vendor_devices AS
-- Which vendor's customers own which devices: one row per current device owned by a current
-- customer of a current vendor of the device's partner.
SELECT vc.partner_id, vc.vendor_id, ve.company_name AS vendor_name,
       vc.company_id, vc.company_name,
       v.device_id, v.imei, v.meid, v.serial_number, v.manufacturer, v.model, v.device_type
FROM vendor_customers vc
JOIN vendors ve ON ve.partner_id = vc.partner_id AND ve.vendor_id = vc.vendor_id
JOIN v_devices v ON v.partner_id = vc.partner_id AND v.company_id = vc.company_id
WHERE vc.removed_at IS NULL AND ve.removed_at IS NULL
"""


def _create_views(postgres: bool) -> None:
    if postgres:
        json_agg, empty, json_type = "jsonb_object_agg", "'{}'::jsonb", "jsonb"
    else:
        json_agg, empty, json_type = "json_group_object", "json('{}')", "TEXT"
    metadata = METADATA.format(json_agg=json_agg, empty_json=empty)
    op.execute(V_DEVICES.format(owner=OWNER, metadata=metadata, json_type=json_type))
    op.execute(V_CUSTOMER_DEVICE_COUNTS)
    op.execute(V_DEVICE_CHANGES)
    op.execute(V_RECONCILIATION)
    op.execute(V_VENDOR_DEVICES)


def _drop_views() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _drop_views()
    with op.batch_alter_table("customers", recreate="always") as batch:
        batch.drop_constraint("pk_customers", type_="primary")
        batch.create_primary_key("pk_customers", ["partner_id", "company_id"])
    for table in ("sync_listings", "identifier_lookups", "device_versions"):
        op.add_column(table, sa.Column("partner_id", sa.BigInteger(), nullable=True))
    # existing rows: their run's partner, else their device's
    for table in ("sync_listings", "identifier_lookups", "device_versions"):
        op.execute(
            f"UPDATE {table} SET partner_id = (SELECT r.partner_id FROM sync_runs r "
            f"WHERE r.run_id = {table}.run_id)"
        )
    op.execute(
        "UPDATE device_versions SET partner_id = (SELECT d.partner_id FROM devices d "
        "WHERE d.device_id = device_versions.device_id) WHERE partner_id IS NULL"
    )
    op.create_table(
        "sync_run_partners",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("customers_seen", sa.Integer(), nullable=False),
        sa.Column("devices_seen", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["sync_runs.run_id"], name="fk_sync_run_partners_run_id_sync_runs"
        ),
        sa.PrimaryKeyConstraint("run_id", "partner_id", name="pk_sync_run_partners"),
    )
    # how each partner of the runs so far went: a run had one partner
    op.execute(
        "INSERT INTO sync_run_partners (run_id, partner_id, status, customers_seen, devices_seen,"
        " error) SELECT run_id, partner_id, status, COALESCE(customers_seen, 0),"
        " COALESCE(devices_seen, 0), error FROM sync_runs"
        " WHERE partner_id IS NOT NULL AND status <> 'running' AND scope <> 'identifiers'"
    )
    for table, keys in (
        ("vendors", ("partner_id", "vendor_id")),
        ("vendor_customers", ("partner_id", "vendor_id", "company_id")),
    ):
        op.create_table(
            table,
            *(sa.Column(k, sa.BigInteger(), autoincrement=False, nullable=False) for k in keys),
            sa.Column("company_name", sa.Text(), nullable=True),
            sa.Column("raw", JSON_DOCUMENT, nullable=False),
            sa.Column("content_hash", sa.String(length=64), nullable=False),
            sa.Column("first_seen_at", UTC_DATETIME, nullable=False),
            sa.Column("last_changed_at", UTC_DATETIME, nullable=False),
            sa.Column("removed_at", UTC_DATETIME, nullable=True),
            sa.PrimaryKeyConstraint(*keys, name=f"pk_{table}"),
        )
    op.create_index("ix_vendor_customers_company_id", "vendor_customers", ["company_id"])
    _create_views(postgres)


def _revision(name: str) -> ModuleType:
    """An earlier revision's module (``migrations`` is no package: loaded by its path)."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_zt_inventory_revision_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _drop_views()
    op.drop_index("ix_vendor_customers_company_id", table_name="vendor_customers")
    op.drop_table("vendor_customers")
    op.drop_table("vendors")
    op.drop_table("sync_run_partners")
    # Plain ALTER TABLE … DROP COLUMN, as revision 0005 does: a batch rebuild of these tables
    # would drop tables that reference them.
    for table in ("device_versions", "identifier_lookups", "sync_listings"):
        op.drop_column(table, "partner_id")
    # A company that two partners list keeps one row: the lowest partner's.
    op.execute(
        "DELETE FROM customers WHERE EXISTS (SELECT 1 FROM customers o "
        "WHERE o.company_id = customers.company_id AND o.partner_id < customers.partner_id)"
    )
    with op.batch_alter_table("customers", recreate="always") as batch:
        batch.drop_constraint("pk_customers", type_="primary")
        batch.create_primary_key("pk_customers", ["company_id"])
    # the views as revisions 0004 and 0007 made them
    views_0004 = _revision("0004_typed_views_device_changes")
    views_0007 = _revision("0007_reconciliation")
    op.execute(views_0004._v_devices(postgres, typed=True))
    op.execute(views_0004.V_CUSTOMER_DEVICE_COUNTS)
    op.execute(views_0004.V_DEVICE_CHANGES)
    op.execute(views_0007.V_RECONCILIATION)

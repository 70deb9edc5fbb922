"""typed views, and v_device_changes

SQLite gives a view column a type only when it is a plain column of a table: ``company_id``
(a ``COALESCE``), ``metadata`` and ``devices`` had none, so a value bound as text
(``WHERE company_id = '1200119706'``: Datasette's filters, SQLAlchemy ``text()`` with a string)
compared as text and matched nothing. Each computed column is now a ``CAST`` to its type, which
gives it that type's affinity on every SQLite version (and a declared type, as
``PRAGMA table_info`` reports it, from SQLite 3.41 on). On PostgreSQL ``metadata`` is ``jsonb``.

``v_device_changes`` is one row per change of a device, oldest first: every version in
``device_versions`` beside the version it replaced. The index on ``(valid_from, version_id)``
serves its order and "what changed since T" without a sort or a full scan.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 09:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# v_devices: current devices, one row each, with the zero-touch owner and metadata as one JSON
# object. A Chrome OS claim may name only a Google Workspace customer: the owner is then the
# customer whose workspace account it is. Revision 0001 had the same view without the CASTs.
V_DEVICES = """
CREATE VIEW v_devices AS
SELECT d.device_id, d.imei, d.imei2, d.meid, d.meid2, d.serial_number, d.manufacturer,
       d.model, d.chrome_os_attested_device_id, d.device_type,
       {company_id} AS company_id,
       cu.company_name,
       c.google_workspace_customer_id,
       {metadata} AS metadata
FROM devices d
LEFT JOIN device_claims c
       ON c.device_id = d.device_id AND c.section_type = 'SECTION_TYPE_ZERO_TOUCH'
LEFT JOIN customers cu ON cu.company_id = {owner}
WHERE d.removed_at IS NULL
"""
OWNER = """COALESCE(c.owner_company_id,
                (SELECT MIN(w.company_id) FROM customers w
                  WHERE w.google_workspace_customer_id = c.google_workspace_customer_id
                    AND c.google_workspace_customer_id IS NOT NULL))"""
METADATA = """COALESCE((SELECT {json_agg}(m.key, m.value) FROM device_metadata m
                  WHERE m.device_id = d.device_id), {empty_json})"""

V_CUSTOMER_DEVICE_COUNTS = """
CREATE VIEW v_customer_device_counts AS
SELECT cu.company_id, cu.company_name, CAST(COUNT(v.device_id) AS BIGINT) AS devices
FROM customers cu
LEFT JOIN v_devices v ON v.company_id = cu.company_id
WHERE cu.removed_at IS NULL
GROUP BY cu.company_id, cu.company_name
"""

# A version replaced the one whose valid_to is its valid_from (the merge closes one and opens
# the other with the same timestamp). company_id is the zero-touch claim's ownerCompanyId as
# device_versions keeps it; a removal has none, and previous_company_id is the owner it left.
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
       v.version_id
FROM device_versions v
LEFT JOIN device_versions p ON p.device_id = v.device_id AND p.valid_to = v.valid_from
ORDER BY v.valid_from, v.version_id
"""

# v_customer_device_counts as revision 0001 created it, for downgrade()
V_CUSTOMER_DEVICE_COUNTS_0001 = """
CREATE VIEW v_customer_device_counts AS
SELECT cu.company_id, cu.company_name, COUNT(v.device_id) AS devices
FROM customers cu
LEFT JOIN v_devices v ON v.company_id = cu.company_id
WHERE cu.removed_at IS NULL
GROUP BY cu.company_id, cu.company_name
"""


def _drop_views() -> None:
    op.execute("DROP VIEW IF EXISTS v_device_changes")
    op.execute("DROP VIEW IF EXISTS v_customer_device_counts")
    op.execute("DROP VIEW IF EXISTS v_devices")


def _v_devices(postgres: bool, *, typed: bool) -> str:
    if postgres:
        # jsonb: equality, DISTINCT, GROUP BY and the ? operators work on it
        json_agg, empty, json_type = ("jsonb_object_agg", "'{}'::jsonb", "jsonb")
        if not typed:
            json_agg, empty = "json_object_agg", "'{}'::json"
    else:
        # TEXT: SQLite's JSON is text; a CAST to a JSON type name would give NUMERIC affinity
        json_agg, empty, json_type = ("json_group_object", "json('{}')", "TEXT")
    metadata = METADATA.format(json_agg=json_agg, empty_json=empty)
    if typed:
        return V_DEVICES.format(
            company_id=f"CAST({OWNER} AS BIGINT)",
            metadata=f"CAST({metadata} AS {json_type})",
            owner=OWNER,
        )
    return V_DEVICES.format(company_id=OWNER, metadata=metadata, owner=OWNER)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _drop_views()
    op.execute(_v_devices(postgres, typed=True))
    op.execute(V_CUSTOMER_DEVICE_COUNTS)
    op.execute(V_DEVICE_CHANGES)
    op.create_index(
        "ix_device_versions_valid_from", "device_versions", ["valid_from", "version_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_device_versions_valid_from", table_name="device_versions")
    _drop_views()
    op.execute(_v_devices(op.get_bind().dialect.name == "postgresql", typed=False))
    op.execute(V_CUSTOMER_DEVICE_COUNTS_0001)

"""identifier_lookups for reconciliation, and v_reconciliation

The identifiers CSV gains two optional columns, ``expected_company_id`` (the customer a device
was shipped to) and ``order_number``; each lookup keeps them, and keeps the zero-touch owner
findByIdentifier reported (``owner_company_id``, or ``google_workspace_customer_id`` for a
Chrome OS claim that names only a Workspace account), so that a lookup answers "registered to
the right customer?" by itself: a device registered since the last sync is in no snapshot yet.

``v_reconciliation`` is one row per CSV row of the newest run that looked identifiers up (a
sync with an identifiers file, or ``zt-inventory reconcile``), with its ``state``. Every
computed column is a CAST, so SQLite gives it a type (revision 0004) and a Datasette filter
with a text parameter (``?expected_company_id=…``, ``?state=…``) finds rows.

``ix_device_metadata_ordernumber`` finds an order's devices (``reconcile`` lists those the
file missed) without a pass over every metadata entry. It is partial (``key = 'ordernumber'``)
and, on PostgreSQL, a hash index: a B-tree refuses an entry over about 2.7 kB, and metadata
values can be that long.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = (
    ("expected_company_id", sa.BigInteger),
    ("order_number", sa.Text),
    ("owner_company_id", sa.BigInteger),
    ("google_workspace_customer_id", sa.Text),
)

# The owner the lookup found: its claim's ownerCompanyId, or the customer whose Workspace
# account the claim names (as v_devices resolves it).
OWNER = """COALESCE(l.owner_company_id,
                (SELECT MIN(w.company_id) FROM customers w
                  WHERE w.google_workspace_customer_id = l.google_workspace_customer_id))"""

COMPANY_ID_SOURCE = (
    "the zero-touch owner findByIdentifier reported when the row was looked up "
    "(looked_up_at), not the one in the snapshot: a device registered since the last sync "
    "has one too"
)

V_RECONCILIATION = f"""
CREATE VIEW v_reconciliation AS
-- One row per identifiers-CSV row of the newest run that looked identifiers up.
-- company_id: {COMPANY_ID_SOURCE}.
-- state: error (the row is malformed, or the API refused it), not_registered (no device
-- matched), unclaimed (found, no zero-touch owner), wrong_customer (owned by another customer
-- than expected_company_id), ok (owned by expected_company_id, or by anyone when it is empty).
SELECT l.run_id,
       l.line_number,
       l.imei, l.meid, l.serial_number, l.manufacturer, l.model, l.device_type,
       l.chrome_os_attested_device_id,
       l.order_number,
       l.expected_company_id,
       l.device_id,
       CAST({OWNER} AS BIGINT) AS company_id,
       cu.company_name,
       CAST(CASE WHEN l.error IS NOT NULL THEN 'error'
                 WHEN NOT l.found THEN 'not_registered'
                 WHEN l.owner_company_id IS NULL AND l.google_workspace_customer_id IS NULL
                   THEN 'unclaimed'
                 WHEN l.expected_company_id IS NOT NULL
                      AND COALESCE({OWNER}, -1) <> l.expected_company_id
                   THEN 'wrong_customer'
                 ELSE 'ok' END AS VARCHAR(16)) AS state,
       l.matches,
       l.error
FROM identifier_lookups l
LEFT JOIN customers cu ON cu.company_id = {OWNER}
WHERE l.run_id = (SELECT MAX(run_id) FROM identifier_lookups)
ORDER BY l.line_number
"""

ORDERNUMBER = "key = 'ordernumber'"


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column("identifier_lookups", sa.Column(name, kind(), nullable=True))
    op.create_index(
        "ix_device_metadata_ordernumber",
        "device_metadata",
        ["value"],
        sqlite_where=sa.text(ORDERNUMBER),
        postgresql_where=sa.text(ORDERNUMBER),
        postgresql_using="hash",
    )
    op.execute(V_RECONCILIATION)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "COMMENT ON VIEW v_reconciliation IS 'One row per identifiers-CSV row of the "
            "newest run that looked identifiers up, and its state.'"
        )
        source = COMPANY_ID_SOURCE.replace("'", "''")
        op.execute(f"COMMENT ON COLUMN v_reconciliation.company_id IS '{source}'")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_reconciliation")
    op.drop_index("ix_device_metadata_ordernumber", table_name="device_metadata")
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+), as revision 0005 does.
    for name, _ in reversed(COLUMNS):
        op.drop_column("identifier_lookups", name)

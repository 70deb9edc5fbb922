"""JSON columns: SQL NULL for "none", and jsonb on PostgreSQL

SQLAlchemy's ``JSON`` type stored Python ``None`` as the JSON text ``null``, so
``google_workspace_account IS NULL`` found none of the customers without a Workspace account
(and likewise ``sync_runs.unknown_fields`` and ``warnings``). From this revision on the models
store SQL NULL; existing ``null`` texts become NULL here.

On PostgreSQL every JSON column becomes ``jsonb``: ``json`` has no equality operator, so
``WHERE metadata = '{}'``, ``DISTINCT``, ``GROUP BY`` and ``?`` failed on it. The conversion
rewrites each table once (one ``ALTER TABLE`` per table, ``null`` turned into NULL in the same
pass) and holds an exclusive lock on it while it runs. ``jsonb`` keeps the JSON's meaning, not
its text: key order and spacing of ``raw`` are PostgreSQL's own from now on.

No JSON column needs an index of its own: the lookups people make go through the identifier,
owner and Workspace-id columns, which are indexed already.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# table -> its JSON columns, as (name, nullable); the nullable ones may hold the text ``null``
JSON_COLUMNS: dict[str, tuple[tuple[str, bool], ...]] = {
    "customers": (
        ("owner_emails", False),
        ("admin_emails", False),
        ("google_workspace_account", True),
        ("raw", False),
    ),
    "devices": (("raw", False),),
    "device_versions": (("raw", True),),
    "sync_runs": (("unknown_fields", True), ("warnings", True)),
    "sync_listings": (("company_ids", False), ("google_workspace_customer_ids", False)),
    "sync_staging_customers": (
        ("owner_emails", False),
        ("admin_emails", False),
        ("google_workspace_account", True),
        ("raw", False),
    ),
    "sync_staging_devices": (("raw", True),),
}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, columns in JSON_COLUMNS.items():
        if postgres:
            changes = ", ".join(
                f"ALTER COLUMN {name} TYPE jsonb USING "
                + (f"NULLIF({name}::jsonb, 'null'::jsonb)" if nullable else f"{name}::jsonb")
                for name, nullable in columns
            )
            op.execute(f"ALTER TABLE {table} {changes}")
        else:
            for name, nullable in columns:
                if nullable:
                    op.execute(f"UPDATE {table} SET {name} = NULL WHERE {name} = 'null'")


def downgrade() -> None:
    # NULL stays NULL: the code of revision 0002 reads NULL and ``null`` alike.
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in JSON_COLUMNS.items():
        changes = ", ".join(
            f"ALTER COLUMN {name} TYPE json USING {name}::json" for name, _ in columns
        )
        op.execute(f"ALTER TABLE {table} {changes}")

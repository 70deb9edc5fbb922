"""sync_runs.scope and sync_runs.scope_customer_ids

A run records what it listed: ``full`` (every customer ``customers.list`` returned, plus the
configured Workspace ids), ``customers`` (``--customer`` or ``sync.customers``; their ids in
``scope_customer_ids``) or ``identifiers`` (lookups only). Only ``full`` runs tell how fresh
the fleet is (``status``, ``status --max-age``, the Prometheus metrics). Every run recorded
before this revision is ``full``: the column's default fills them in.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 09:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "sync_runs",
        sa.Column("scope", sa.String(length=16), server_default="full", nullable=False),
    )
    op.add_column(
        "sync_runs",
        sa.Column(
            "scope_customer_ids",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=True,
        ),
    )


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+), not a batch rebuild of sync_runs: the
    # rebuild would drop a table that device_versions, sync_listings and identifier_lookups
    # reference.
    op.drop_column("sync_runs", "scope_customer_ids")
    op.drop_column("sync_runs", "scope")

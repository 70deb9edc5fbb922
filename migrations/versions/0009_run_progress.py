"""sync_runs.progress: the live counters of a running run

A run writes its progress (``inventory.sync.progress.Progress``: customers, listings, devices
fetched against the best-known total, requests, the rate and an ETA) to its own row every few
seconds, so that ``zt-inventory status`` run from another shell or host shows how far it got.
It is NULL once the run ended, and for every run recorded before this revision.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "sync_runs",
        sa.Column(
            "progress", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
    )


def downgrade() -> None:
    # a plain DROP COLUMN, as in revision 0005: a batch rebuild would drop a referenced table
    op.drop_column("sync_runs", "progress")

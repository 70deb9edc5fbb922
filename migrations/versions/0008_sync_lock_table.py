"""sync_lock: a writer lock that a read-only role can neither take nor block

The writer lock was a PostgreSQL advisory lock, which any role that may connect can take: a
BI role granted SELECT alone could hold it and stop every sync. A sync now locks the table
``sync_lock`` in SHARE UPDATE EXCLUSIVE mode for its run (``inventory.store.lock``); a role
with SELECT alone may take only ACCESS SHARE on a table, which does not conflict with it, and
no row lock at all. The table holds no rows: only its lock matters. On SQLite the table exists
too (one schema for both) but the lock stays a file lock beside the database.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COMMENT = (
    "zt-inventory's writer lock: a sync locks this table for its run so that no two write at once"
)


def upgrade() -> None:
    op.create_table(
        "sync_lock",
        sa.Column("lock_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("lock_id", name=op.f("pk_sync_lock")),
        comment=COMMENT,
    )


def downgrade() -> None:
    op.drop_table("sync_lock")

"""unlogged staging tables on PostgreSQL

The ``sync_staging_*`` tables hold one run's pages until its merge and are emptied at the
start and end of every run: nothing in them needs to survive a server crash, and after one
the run they belonged to has failed anyway. As UNLOGGED tables they are written without WAL:
staging 100,000 devices writes about 130 MB less WAL (none of it shipped to replicas), and
took 2.36-2.45 s instead of 2.65 s. SQLite has no such setting: nothing to do there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 04:50:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STAGING = (
    "sync_staging_devices",
    "sync_staging_claims",
    "sync_staging_metadata",
    "sync_staging_coverage",
    "sync_staging_customers",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in STAGING:
            op.execute(f"ALTER TABLE {table} SET UNLOGGED")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in STAGING:
            op.execute(f"ALTER TABLE {table} SET LOGGED")

"""staging tables become TEMPORARY tables of the run's writer connection

The ``sync_staging_*`` tables held one run's pages between its fetching and its merge, in the
schema every reader sees (BI tools listed them beside the product's tables), and grew the
database file a user backs up: after a first sync of a million devices, 1.2 GB of SQLite free
pages. A run now creates them as TEMPORARY tables on its own connection (``inventory.sync.
staging``): private to the run, gone with it, never in the database file or a reader's schema.
This revision drops the permanent ones.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 13:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
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
    for table in STAGING:
        op.drop_table(table)


# what revision 0003 made of their JSON columns
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def downgrade() -> None:
    # the tables as revisions 0001 to 0005 left them
    op.create_table(
        "sync_staging_claims",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("device_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("section_type", sa.String(length=64), nullable=False),
        sa.Column("owner_company_id", sa.BigInteger(), nullable=True),
        sa.Column("reseller_id", sa.BigInteger(), nullable=True),
        sa.Column("vacation_mode_start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("vacation_mode_expire_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("additional_service", sa.Text(), nullable=True),
        sa.Column("google_workspace_customer_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint(
            "run_id", "device_id", "section_type", name=op.f("pk_sync_staging_claims")
        ),
    )
    op.create_table(
        "sync_staging_coverage",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("section_type", sa.String(length=64), nullable=False),
        sa.Column("owner_kind", sa.String(length=16), nullable=False),
        sa.Column("owner_key", sa.String(length=64), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint(
            "run_id",
            "section_type",
            "owner_kind",
            "owner_key",
            name=op.f("pk_sync_staging_coverage"),
        ),
    )
    op.create_table(
        "sync_staging_customers",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("company_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("partner_id", sa.BigInteger(), nullable=False),
        sa.Column("company_name", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("owner_emails", JSON_DOCUMENT, nullable=False),
        sa.Column("admin_emails", JSON_DOCUMENT, nullable=False),
        sa.Column("terms_status", sa.Text(), nullable=True),
        sa.Column("language_code", sa.Text(), nullable=True),
        sa.Column("skip_welcome_email", sa.Boolean(), nullable=True),
        sa.Column("google_workspace_account", JSON_DOCUMENT, nullable=True),
        sa.Column("google_workspace_customer_id", sa.Text(), nullable=True),
        sa.Column("raw", JSON_DOCUMENT, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "company_id", name=op.f("pk_sync_staging_customers")),
    )
    op.create_table(
        "sync_staging_devices",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("device_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("listing_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("imei", sa.Text(), nullable=True),
        sa.Column("imei2", sa.Text(), nullable=True),
        sa.Column("meid", sa.Text(), nullable=True),
        sa.Column("meid2", sa.Text(), nullable=True),
        sa.Column("serial_number", sa.Text(), nullable=True),
        sa.Column("manufacturer", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("device_type", sa.Text(), nullable=True),
        sa.Column("chrome_os_attested_device_id", sa.Text(), nullable=True),
        sa.Column("configuration", sa.Text(), nullable=True),
        sa.Column("owner_company_id", sa.BigInteger(), nullable=True),
        sa.Column("raw", JSON_DOCUMENT, nullable=True),
        sa.PrimaryKeyConstraint(
            "run_id", "device_id", "listing_id", name=op.f("pk_sync_staging_devices")
        ),
    )
    op.create_table(
        "sync_staging_metadata",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("device_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint(
            "run_id", "device_id", "key", name=op.f("pk_sync_staging_metadata")
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in STAGING:
            op.execute(f"ALTER TABLE {table} SET UNLOGGED")

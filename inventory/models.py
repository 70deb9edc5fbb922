"""SQLAlchemy 2.0 models: the tables of SPEC.md plus the private staging tables of a run.

The public tables (``customers``, ``devices``, ``device_claims``, ``device_metadata``,
``device_versions``, ``identifier_lookups``, ``sync_runs``, ``sync_run_partners``,
``sync_listings``, ``vendors``, ``vendor_customers``) and the views (``v_devices``,
``v_customer_device_counts``, ``v_device_changes``, ``v_reconciliation``, ``v_vendor_devices``)
are the product's interface: users' SQL and dashboards depend on their names. Their schema is
created by Alembic migrations (``migrations/``); a test checks that these models and the
migrations agree.

The ``sync_staging_*`` tables belong to the collector: a run creates them as TEMPORARY tables
on its own writer connection (see ``inventory.sync.staging``), pages stream into them, and one
short transaction merges them into the public tables. They live on a metadata of their own,
so no migration creates them and no reader of the database ever sees them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always binds UTC and always reads timezone-aware UTC.

    SQLite has no time zone type: values are stored as UTC wall time and tagged UTC on read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: zt-inventory stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# A JSON column: SQL NULL for Python None (never the JSON text ``null``, so ``IS NULL`` finds
# "none"), and ``jsonb`` on PostgreSQL (equality, DISTINCT, GROUP BY, ``?`` and GIN indexes work;
# ``json`` has none of them). Revision 0003 converted the existing columns.
JSON_DOCUMENT = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


LOCK_TABLE_COMMENT = (
    "zt-inventory's writer lock: a sync locks this table for its run so that no two write at once"
)


class Base(DeclarativeBase):
    """Declarative base on a ``MetaData`` with a constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dict[str, Any]: JSON_DOCUMENT,
        list[Any]: JSON_DOCUMENT,
        datetime: UTCDateTime(),
    }


# --- column groups shared by a public table and its staging table: declared once here, and
# every staging and merge statement is derived from the tables (``inventory.sync.columns``).


class CustomerFields:
    """What ``customers.list`` says of a company (``customers`` and its staging table), beside
    its key (the partner whose list it is on, and its company id)."""

    company_name: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    owner_emails: Mapped[list[Any]] = mapped_column(JSON_DOCUMENT)
    admin_emails: Mapped[list[Any]] = mapped_column(JSON_DOCUMENT)
    terms_status: Mapped[str | None] = mapped_column(Text)
    language_code: Mapped[str | None] = mapped_column(Text)
    skip_welcome_email: Mapped[bool | None] = mapped_column(Boolean)
    google_workspace_account: Mapped[dict[str, Any] | None] = mapped_column(JSON_DOCUMENT)
    google_workspace_customer_id: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT)
    content_hash: Mapped[str] = mapped_column(String(64))


class DeviceFields:
    """A device's identifiers and other flat content (``devices`` and its staging table)."""

    name: Mapped[str | None] = mapped_column(Text)
    imei: Mapped[str | None] = mapped_column(Text)
    imei2: Mapped[str | None] = mapped_column(Text)
    meid: Mapped[str | None] = mapped_column(Text)
    meid2: Mapped[str | None] = mapped_column(Text)
    serial_number: Mapped[str | None] = mapped_column(Text)
    manufacturer: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(Text)
    device_type: Mapped[str | None] = mapped_column(Text)
    chrome_os_attested_device_id: Mapped[str | None] = mapped_column(Text)
    configuration: Mapped[str | None] = mapped_column(Text)


class ClaimFields:
    """One claim of a device in one section type, beside its key (``device_claims`` and its
    staging table)."""

    owner_company_id: Mapped[int | None] = mapped_column(BigInteger)
    reseller_id: Mapped[int | None] = mapped_column(BigInteger)
    vacation_mode_start_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    vacation_mode_expire_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    additional_service: Mapped[str | None] = mapped_column(Text)
    google_workspace_customer_id: Mapped[str | None] = mapped_column(Text)


class VendorFields:
    """What ``vendors.list`` or ``vendors.customers.list`` says of a company (``vendors``,
    ``vendor_customers`` and their staging tables), beside its key."""

    company_name: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT)
    content_hash: Mapped[str] = mapped_column(String(64))


class ListedSince:
    """When a row of a list (``customers``, ``vendors``, ``vendor_customers``) was first seen,
    last changed, and left the list (NULL while it is on it)."""

    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


def _key(column_type: Any = BigInteger) -> Any:
    """A primary-key column that the API numbers (never autoincrement)."""
    return mapped_column(column_type, primary_key=True, autoincrement=False)


class MetadataFields:
    """One metadata entry's value, beside its key (``device_metadata`` and its staging table)."""

    value: Mapped[str | None] = mapped_column(Text)


class Customer(CustomerFields, ListedSince, Base):
    """One company from a partner's ``customers.list`` (a company that is a customer of two
    partners has a row for each, revision 0010)."""

    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_google_workspace_customer_id", "google_workspace_customer_id"),
    )

    partner_id: Mapped[int] = _key()
    company_id: Mapped[int] = _key()


class Vendor(VendorFields, ListedSince, Base):
    """One vendor (sub-reseller) of a partner, from ``partners.vendors.list``."""

    __tablename__ = "vendors"

    partner_id: Mapped[int] = _key()
    vendor_id: Mapped[int] = _key()


class VendorCustomer(VendorFields, ListedSince, Base):
    """One customer of a partner's vendor, from ``partners.vendors.customers.list``."""

    __tablename__ = "vendor_customers"
    __table_args__ = (Index("ix_vendor_customers_company_id", "company_id"),)

    partner_id: Mapped[int] = _key()
    vendor_id: Mapped[int] = _key()
    company_id: Mapped[int] = _key()


class Device(DeviceFields, Base):
    """One row per device ever seen; ``removed_at`` is NULL while it is in the newest snapshot."""

    __tablename__ = "devices"
    __table_args__ = tuple(
        Index(f"ix_devices_{column}", column)
        for column in ("imei", "imei2", "meid", "serial_number")
    )

    device_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    partner_id: Mapped[int] = mapped_column(BigInteger)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT)
    content_hash: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)


class DeviceClaim(ClaimFields, Base):
    """One claim of a current device (a device has at most one claim per section type)."""

    __tablename__ = "device_claims"
    __table_args__ = (
        Index("ix_device_claims_owner_company_id", "owner_company_id"),
        Index("ix_device_claims_google_workspace_customer_id", "google_workspace_customer_id"),
    )

    device_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("devices.device_id"), primary_key=True, autoincrement=False
    )
    section_type: Mapped[str] = mapped_column(String(64), primary_key=True)


class DeviceMetadata(MetadataFields, Base):
    """One metadata entry of a current device."""

    __tablename__ = "device_metadata"
    __table_args__ = (
        # an order's devices (``zt-inventory reconcile``: devices of an order the file missed);
        # partial, and a hash index on PostgreSQL, where a B-tree refuses values over 2.7 kB
        Index(
            "ix_device_metadata_ordernumber",
            "value",
            sqlite_where=text("key = 'ordernumber'"),
            postgresql_where=text("key = 'ordernumber'"),
            postgresql_using="hash",
        ),
    )

    device_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("devices.device_id"), primary_key=True, autoincrement=False
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)


class SyncRun(Base):
    """One sync run, from start to its final status."""

    __tablename__ = "sync_runs"

    run_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), index=True)
    trigger: Mapped[str] = mapped_column(String(16))
    partner_id: Mapped[int | None] = mapped_column(BigInteger)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    customers_seen: Mapped[int] = mapped_column(Integer, default=0)
    devices_seen: Mapped[int] = mapped_column(Integer, default=0)
    devices_added: Mapped[int] = mapped_column(Integer, default=0)
    devices_changed: Mapped[int] = mapped_column(Integer, default=0)
    devices_removed: Mapped[int] = mapped_column(Integer, default=0)
    devices_reappeared: Mapped[int] = mapped_column(Integer, default=0)
    api_requests: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    unknown_fields: Mapped[dict[str, Any] | None] = mapped_column(JSON_DOCUMENT)
    warnings: Mapped[list[Any] | None] = mapped_column(JSON_DOCUMENT)
    error: Mapped[str | None] = mapped_column(Text)
    # what the run listed (``inventory.store.runs.RunScope``); only ``full`` runs tell how fresh
    # the fleet is. Rows from before revision 0005 are ``full``.
    scope: Mapped[str] = mapped_column(String(16), server_default="full")
    scope_customer_ids: Mapped[list[Any] | None] = mapped_column(JSON_DOCUMENT)
    # the live counters of a running run (``inventory.sync.progress``), NULL once it ended
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON_DOCUMENT)


class SyncRunPartner(Base):
    """How one partner of a run went (revision 0010): a partner whose customers.list failed is
    ``failed`` and left as it was, one with an incomplete listing ``partial``, while the run's
    other partners apply. ``partner_id`` of ``sync_runs`` is the run's first partner."""

    __tablename__ = "sync_run_partners"

    run_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("sync_runs.run_id"), primary_key=True, autoincrement=False
    )
    partner_id: Mapped[int] = _key()
    status: Mapped[str] = mapped_column(String(16))
    customers_seen: Mapped[int] = mapped_column(Integer)
    devices_seen: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class SyncListing(Base):
    """One listing: a findByOwner query paged to its end (or the identifier lookups of a run)."""

    __tablename__ = "sync_listings"

    listing_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Integer, ForeignKey("sync_runs.run_id"), index=True)
    kind: Mapped[str] = mapped_column(String(32), default="find_by_owner")
    partner_id: Mapped[int | None] = mapped_column(BigInteger)  # revision 0010
    section_type: Mapped[str | None] = mapped_column(String(64))
    company_ids: Mapped[list[Any]] = mapped_column(JSON_DOCUMENT)
    google_workspace_customer_ids: Mapped[list[Any]] = mapped_column(JSON_DOCUMENT)
    total_size: Mapped[int | None] = mapped_column(Integer)
    devices_seen: Mapped[int] = mapped_column(Integer, default=0)
    api_requests: Mapped[int] = mapped_column(Integer, default=0)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)


class SyncLock(Base):
    """The writer lock's table (PostgreSQL): a sync holds a lock on it for its run.

    ``inventory.store.lock`` takes ``LOCK TABLE sync_lock IN SHARE UPDATE EXCLUSIVE MODE``,
    which a role with SELECT alone cannot take nor block. It holds no rows.
    """

    __tablename__ = "sync_lock"
    __table_args__ = {"comment": LOCK_TABLE_COMMENT}

    lock_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class DeviceVersion(Base):
    """Type-2 history: one row per version of a device, ``valid_to`` NULL for the current one."""

    __tablename__ = "device_versions"
    __table_args__ = (
        Index("ix_device_versions_device_id_valid_from", "device_id", "valid_from"),
        # v_device_changes: "what changed since T", oldest first, without a sort (revision 0004)
        Index("ix_device_versions_valid_from", "valid_from", "version_id"),
    )

    version_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[int] = mapped_column(BigInteger)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime())
    run_id: Mapped[int] = mapped_column(Integer, ForeignKey("sync_runs.run_id"), index=True)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    owner_company_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON_DOCUMENT)
    partner_id: Mapped[int | None] = mapped_column(BigInteger)  # whose listing saw it (0010)


class IdentifierLookup(Base):
    """One row of an identifiers CSV per run (``sync.identifiers_file`` or ``zt-inventory
    reconcile``), and what findByIdentifier found: the first matching device and its zero-touch
    owner as the API reported it (``owner_company_id``, or ``google_workspace_customer_id`` for
    a claim that names only a Workspace account; both NULL: no zero-touch claim). A row the
    file got wrong has ``error`` set and was not looked up. ``v_reconciliation`` reads these."""

    __tablename__ = "identifier_lookups"

    lookup_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Integer, ForeignKey("sync_runs.run_id"), index=True)
    line_number: Mapped[int] = mapped_column(Integer)
    imei: Mapped[str | None] = mapped_column(Text, index=True)
    meid: Mapped[str | None] = mapped_column(Text)
    serial_number: Mapped[str | None] = mapped_column(Text)
    manufacturer: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(Text)
    device_type: Mapped[str | None] = mapped_column(Text)
    chrome_os_attested_device_id: Mapped[str | None] = mapped_column(Text)
    found: Mapped[bool] = mapped_column(Boolean)
    device_id: Mapped[int | None] = mapped_column(BigInteger)
    matches: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    looked_up_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # revision 0007: what the file expects, and the owner the lookup found
    expected_company_id: Mapped[int | None] = mapped_column(BigInteger)
    order_number: Mapped[str | None] = mapped_column(Text)
    owner_company_id: Mapped[int | None] = mapped_column(BigInteger)
    google_workspace_customer_id: Mapped[str | None] = mapped_column(Text)
    # revision 0010: the partner that looked the row up (each partner looks every row up)
    partner_id: Mapped[int | None] = mapped_column(BigInteger)


# --- private staging tables of a run: TEMPORARY, on the run's writer connection only ---------


class StagingBase(DeclarativeBase):
    """The staging tables' own metadata: created per run, never by a migration."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = Base.type_annotation_map


_TEMPORARY = {"prefixes": ["TEMPORARY"]}


class StagingDevice(DeviceFields, StagingBase):
    """A device as one listing of the run saw it; content only when new or changed.
    ``change``: same / added / changed / reappeared, then incomplete or removed as the merge
    decides."""

    __tablename__ = "sync_staging_devices"
    __table_args__ = _TEMPORARY

    device_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    listing_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    change: Mapped[str] = mapped_column(String(16))
    content_hash: Mapped[str] = mapped_column(String(64))
    partner_id: Mapped[int | None] = mapped_column(BigInteger)
    owner_company_id: Mapped[int | None] = mapped_column(BigInteger)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON_DOCUMENT)


class StagingDuplicate(StagingBase):
    """A device that more than one listing of the run returned: the few devices the merge must
    choose one staged row for, found without a pass over every staged device."""

    __tablename__ = "sync_staging_duplicates"
    __table_args__ = _TEMPORARY

    device_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class StagingClaim(ClaimFields, StagingBase):
    """A claim of a new or changed device of a run."""

    __tablename__ = "sync_staging_claims"
    __table_args__ = _TEMPORARY

    device_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    listing_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    section_type: Mapped[str] = mapped_column(String(64), primary_key=True)


class StagingMetadata(MetadataFields, StagingBase):
    """A metadata entry of a new or changed device of a run."""

    __tablename__ = "sync_staging_metadata"
    __table_args__ = _TEMPORARY

    device_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    listing_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)


class StagingCoverage(StagingBase):
    """An owner a run asked about, and whether its listing arrived whole.

    A current device that a run did not see is marked removed only when every owner of its
    stored claims (in the synced section types) is covered by a complete listing or has left
    ``customers.list``.
    """

    __tablename__ = "sync_staging_coverage"
    __table_args__ = _TEMPORARY

    partner_id: Mapped[int] = _key()  # the partner whose listing asked
    section_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # company / workspace
    owner_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    complete: Mapped[bool] = mapped_column(Boolean)


class StagingCustomer(CustomerFields, StagingBase):
    """A customer as ``customers.list`` returned it in a run."""

    __tablename__ = "sync_staging_customers"
    __table_args__ = _TEMPORARY

    partner_id: Mapped[int] = _key()
    company_id: Mapped[int] = _key()


class StagingVendor(VendorFields, StagingBase):
    """A vendor as a partner's ``vendors.list`` returned it in a run."""

    __tablename__ = "sync_staging_vendors"
    __table_args__ = _TEMPORARY

    partner_id: Mapped[int] = _key()
    vendor_id: Mapped[int] = _key()


class StagingVendorCustomer(VendorFields, StagingBase):
    """A vendor's customer as ``vendors.customers.list`` returned it in a run."""

    __tablename__ = "sync_staging_vendor_customers"
    __table_args__ = _TEMPORARY

    partner_id: Mapped[int] = _key()
    vendor_id: Mapped[int] = _key()
    company_id: Mapped[int] = _key()


class StagingScope(StagingBase):
    """What a run may conclude about each configured partner's claims in each section type.

    ``mode``: ``everyone`` (the run listed every customer of the partner: an owner no listing
    asked about has left it), ``explicit`` (some customers: only owners a complete listing asked
    about are covered) or ``skipped`` (not synced, or its customers.list failed: its claims keep
    their devices). A claim of a partner and section with no row here is not the run's concern.
    """

    __tablename__ = "sync_staging_scope"
    __table_args__ = _TEMPORARY

    partner_id: Mapped[int] = _key()
    section_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))


def table_of(model: type[Base] | type[StagingBase]) -> Table:
    """The ``Table`` of a mapped class (``__table__`` is typed as a plain ``FromClause``)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


STAGING_TABLES = tuple(StagingBase.metadata.sorted_tables)

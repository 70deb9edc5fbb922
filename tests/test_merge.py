"""What the merge decides and writes (``inventory.sync.merge``), on both databases.

Each test fills staging with what a run saw (listings of the literal devices below, the
customers list) through ``tests/mergeutil.py``, runs the merge's decisions and its apply, and
asserts the exact rows of the public tables: ``devices``, ``device_claims``,
``device_metadata``, ``device_versions``, ``customers`` (SPEC "What a sync guarantees" 2, 3).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from inventory.transform import to_customer_row, to_device_rows
from tests.mergeutil import (
    KNOX,
    PARTNER,
    ZT,
    Listing,
    merge_run,
    public_rows,
    watch_writes,
    writes,
)

T1 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
T2 = datetime(2024, 3, 2, 9, 0, tzinfo=UTC)
T3 = datetime(2024, 3, 3, 9, 0, tzinfo=UTC)
ACME, GLOBEX = 1001, 1002
WORKSPACE = "C01abcdef"  # Acme's Google Workspace account

ACME_JSON = {
    "companyId": "1001",
    "companyName": "Acme",
    "name": "partners/7000000001/customers/1001",
    "ownerEmails": ["it@acme.test"],
    "termsStatus": "TERMS_STATUS_ACCEPTED",
    "googleWorkspaceAccount": {"customerId": WORKSPACE},
}
GLOBEX_JSON = {
    "companyId": "1002",
    "companyName": "Globex",
    "name": "partners/7000000001/customers/1002",
    "adminEmails": ["ops@globex.test"],
    "termsStatus": "TERMS_STATUS_NOT_ACCEPTED",
    "languageCode": "de",
    "skipWelcomeEmail": True,
}
CUSTOMERS = [ACME_JSON, GLOBEX_JSON]

# Acme's phone, claimed in two section types, with metadata
PHONE = {
    "deviceId": "501",
    "name": "partners/7000000001/devices/501",
    "deviceIdentifier": {
        "imei": "359881030000501",
        "manufacturer": "Google",
        "model": "Pixel 8",
        "deviceType": "DEVICE_TYPE_ANDROID",
    },
    "claims": [
        {
            "sectionType": ZT,
            "ownerCompanyId": "1001",
            "resellerId": "7000000001",
            "vacationModeStartTime": "2024-02-01T10:00:00Z",
            "vacationModeExpireTime": "2024-03-01T10:00:00Z",
        },
        {"sectionType": KNOX, "ownerCompanyId": "1001", "resellerId": "7000000001"},
    ],
    "deviceMetadata": {"entries": {"asset": "A-501", "site": "Berlin"}},
}
# Globex's tablet: one claim, no metadata
TABLET = {
    "deviceId": "502",
    "name": "partners/7000000001/devices/502",
    "deviceIdentifier": {
        "serialNumber": "R52N90ABCDE",
        "manufacturer": "Samsung",
        "model": "Galaxy Tab S9",
        "deviceType": "DEVICE_TYPE_ANDROID",
    },
    "claims": [
        {
            "sectionType": ZT,
            "ownerCompanyId": "1002",
            "resellerId": "7000000001",
            "additionalService": "ADDITIONAL_SERVICE_UNSPECIFIED",
        }
    ],
}
# a Chromebook claimed by Acme's Workspace account alone (no owner company)
CHROMEBOOK = {
    "deviceId": "503",
    "name": "partners/7000000001/devices/503",
    "deviceIdentifier": {
        "serialNumber": "5CD1234XYZ",
        "manufacturer": "HP",
        "model": "Chromebook 14",
        "deviceType": "DEVICE_TYPE_CHROME_OS",
        "chromeOsAttestedDeviceId": "5CD1234XYZ",
    },
    "claims": [
        {"sectionType": ZT, "googleWorkspaceCustomerId": WORKSPACE, "resellerId": "7000000001"}
    ],
}


def changed(device: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A deep copy of ``device`` with top-level ``fields`` replaced."""
    return {**copy.deepcopy(device), **copy.deepcopy(fields)}


def acme(*devices: dict[str, Any], number: int = 1, complete: bool = True) -> Listing:
    return Listing(number, list(devices), [ACME], [WORKSPACE], complete)


def globex(*devices: dict[str, Any], number: int = 2, complete: bool = True) -> Listing:
    return Listing(number, list(devices), [GLOBEX], [], complete)


def first_run(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Run 1 at T1 (the three devices, both customers); the public rows it left."""
    counts = merge_run(engine, T1, [acme(PHONE, CHROMEBOOK), globex(TABLET)], CUSTOMERS)
    assert counts == {"added": 3, "changed": 0, "reappeared": 0, "removed": 0}
    return public_rows(engine)


# --- the exact rows of each device ------------------------------------------------------------

NO_COLUMNS = dict.fromkeys(
    (
        "name", "imei", "imei2", "meid", "meid2", "serial_number", "manufacturer", "model",
        "device_type", "chrome_os_attested_device_id", "configuration",
    )
)  # fmt: skip
NO_CLAIM_COLUMNS = dict.fromkeys(
    (
        "owner_company_id", "reseller_id", "vacation_mode_start_time",
        "vacation_mode_expire_time", "additional_service", "google_workspace_customer_id",
    )
)  # fmt: skip


def digest(raw: dict[str, Any]) -> str:
    """The device's content hash as the transform computes it (the merge only copies it)."""
    return to_device_rows(raw, PARTNER).content_hash


def device_row(
    raw: dict[str, Any], seen: datetime, changed_at: datetime, removed: datetime | None = None
) -> dict[str, Any]:
    """The ``devices`` row of one of the devices above (its columns written out here)."""
    columns = {
        "501": {"imei": "359881030000501", "manufacturer": "Google", "model": "Pixel 8",
                "device_type": "DEVICE_TYPE_ANDROID"},
        "502": {"serial_number": "R52N90ABCDE", "manufacturer": "Samsung",
                "model": "Galaxy Tab S9", "device_type": "DEVICE_TYPE_ANDROID"},
        "503": {"serial_number": "5CD1234XYZ", "manufacturer": "HP", "model": "Chromebook 14",
                "device_type": "DEVICE_TYPE_CHROME_OS",
                "chrome_os_attested_device_id": "5CD1234XYZ"},
    }[raw["deviceId"]]  # fmt: skip
    return {
        **NO_COLUMNS,
        **columns,
        "device_id": int(raw["deviceId"]),
        "partner_id": PARTNER,
        "name": f"partners/7000000001/devices/{raw['deviceId']}",
        "raw": raw,
        "content_hash": digest(raw),
        "first_seen_at": seen,
        "last_changed_at": changed_at,
        "removed_at": removed,
    }


def claim(device_id: int, section: str, **values: Any) -> dict[str, Any]:
    return {**NO_CLAIM_COLUMNS, "device_id": device_id, "section_type": section, **values}


def meta(device_id: int, key: str, value: str) -> dict[str, Any]:
    return {"device_id": device_id, "key": key, "value": value}


def version(
    raw: dict[str, Any],
    start: datetime,
    end: datetime | None,
    run: int,
    owner: int | None,
    *,
    removed: bool = False,
) -> dict[str, Any]:
    return {
        "device_id": int(raw["deviceId"]),
        "valid_from": start,
        "valid_to": end,
        "run_id": run,
        "removed": removed,
        "owner_company_id": owner,
        "content_hash": digest(raw),
        "raw": raw,
        "partner_id": PARTNER,
    }


def customer_row(
    raw: dict[str, Any], seen: datetime, changed_at: datetime, removed: datetime | None = None
) -> dict[str, Any]:
    columns = {
        "1001": {"company_name": "Acme", "owner_emails": ["it@acme.test"], "admin_emails": [],
                 "terms_status": "TERMS_STATUS_ACCEPTED", "language_code": None,
                 "skip_welcome_email": None, "google_workspace_account": {"customerId": WORKSPACE},
                 "google_workspace_customer_id": WORKSPACE},
        "1002": {"company_name": "Globex", "owner_emails": [], "admin_emails": ["ops@globex.test"],
                 "terms_status": "TERMS_STATUS_NOT_ACCEPTED", "language_code": "de",
                 "skip_welcome_email": True, "google_workspace_account": None,
                 "google_workspace_customer_id": None},
    }[raw["companyId"]]  # fmt: skip
    return {
        **columns,
        "company_id": int(raw["companyId"]),
        "partner_id": PARTNER,
        "name": f"partners/7000000001/customers/{raw['companyId']}",
        "raw": raw,
        "content_hash": to_customer_row(raw, PARTNER)[0]["content_hash"],
        "first_seen_at": seen,
        "last_changed_at": changed_at,
        "removed_at": removed,
    }


PHONE_CLAIMS = [
    claim(501, KNOX, owner_company_id=ACME, reseller_id=7_000_000_001),
    claim(
        501,
        ZT,
        owner_company_id=ACME,
        reseller_id=7_000_000_001,
        vacation_mode_start_time=datetime(2024, 2, 1, 10, 0, tzinfo=UTC),
        vacation_mode_expire_time=datetime(2024, 3, 1, 10, 0, tzinfo=UTC),
    ),
]
TABLET_CLAIMS = [
    claim(
        502,
        ZT,
        owner_company_id=GLOBEX,
        reseller_id=7_000_000_001,
        additional_service="ADDITIONAL_SERVICE_UNSPECIFIED",
    )
]
CHROMEBOOK_CLAIMS = [
    claim(503, ZT, reseller_id=7_000_000_001, google_workspace_customer_id=WORKSPACE)
]
PHONE_METADATA = [meta(501, "asset", "A-501"), meta(501, "site", "Berlin")]


DEVICE_TABLES = ("devices", "device_claims", "device_metadata", "device_versions")


def device_rows(public: dict[str, list[dict[str, Any]]], *device_ids: int) -> dict[str, Any]:
    """The rows of these devices in each device table."""
    return {
        table: [r for r in public[table] if r["device_id"] in device_ids] for table in DEVICE_TABLES
    }


def device_writes(engine: Engine) -> set[tuple[str, int]]:
    """(table, device id) of every row written to a device table since the last call."""
    return {(t, k) for t, k in writes(engine) if t != "customers"}


# --- the tests ---------------------------------------------------------------------------------


def test_a_first_apply_writes_each_device_its_claims_metadata_and_first_version(
    engine: Engine,
) -> None:
    lookups = [
        {"imei": "359881030000501", "meid": None, "serial_number": None, "manufacturer": None,
         "model": None, "device_type": None, "chrome_os_attested_device_id": None,
         "line_number": 2, "found": True, "device_id": 501, "matches": 1, "error": None,
         "expected_company_id": ACME, "order_number": "SO-1", "owner_company_id": ACME,
         "google_workspace_customer_id": None, "partner_id": PARTNER},
        {"imei": "990000862471855", "meid": None, "serial_number": None, "manufacturer": None,
         "model": None, "device_type": None, "chrome_os_attested_device_id": None,
         "line_number": 3, "found": False, "device_id": None, "matches": 0, "error": None,
         "expected_company_id": None, "order_number": None, "owner_company_id": None,
         "google_workspace_customer_id": None, "partner_id": PARTNER},
    ]  # fmt: skip
    counts = merge_run(
        engine, T1, [acme(PHONE, CHROMEBOOK), globex(TABLET)], CUSTOMERS, lookups=lookups
    )
    assert counts == {"added": 3, "changed": 0, "reappeared": 0, "removed": 0}
    assert public_rows(engine) == {
        "customers": [customer_row(ACME_JSON, T1, T1), customer_row(GLOBEX_JSON, T1, T1)],
        "devices": [
            device_row(PHONE, T1, T1),
            device_row(TABLET, T1, T1),
            device_row(CHROMEBOOK, T1, T1),
        ],
        "device_claims": PHONE_CLAIMS + TABLET_CLAIMS + CHROMEBOOK_CLAIMS,
        "device_metadata": PHONE_METADATA,
        "device_versions": [
            version(PHONE, T1, None, 1, ACME),
            version(TABLET, T1, None, 1, GLOBEX),
            version(CHROMEBOOK, T1, None, 1, None),
        ],
        "identifier_lookups": [dict(x, run_id=1, looked_up_at=T1) for x in lookups],
    }


def test_an_unchanged_device_writes_no_row_and_no_version(engine: Engine) -> None:
    """Key order and claim order are not changes (SPEC guarantee 3)."""
    before = first_run(engine)
    watch_writes(engine)
    reordered = dict(reversed(list(copy.deepcopy(PHONE).items())))
    reordered["claims"] = list(reversed(reordered["claims"]))
    counts = merge_run(engine, T2, [acme(CHROMEBOOK, reordered), globex(TABLET)], CUSTOMERS)
    assert counts == {"added": 0, "changed": 0, "reappeared": 0, "removed": 0}
    assert writes(engine) == {}
    assert public_rows(engine) == before


def test_a_changed_device_replaces_its_claims_and_metadata_and_opens_a_version(
    engine: Engine,
) -> None:
    before = first_run(engine)
    watch_writes(engine)
    # moved to Globex, its Knox claim gone, one metadata entry dropped and one added
    moved = changed(
        PHONE,
        claims=[{"sectionType": ZT, "ownerCompanyId": "1002", "resellerId": "7000000001"}],
        deviceMetadata={"entries": {"asset": "A-501", "room": "2.14"}},
    )
    counts = merge_run(engine, T2, [acme(CHROMEBOOK), globex(TABLET, moved)], CUSTOMERS)
    assert counts == {"added": 0, "changed": 1, "reappeared": 0, "removed": 0}
    after = public_rows(engine)
    assert device_rows(after, 501) == {
        "devices": [device_row(moved, T1, T2)],
        "device_claims": [claim(501, ZT, owner_company_id=GLOBEX, reseller_id=7_000_000_001)],
        "device_metadata": [meta(501, "asset", "A-501"), meta(501, "room", "2.14")],
        "device_versions": [version(PHONE, T1, T2, 1, ACME), version(moved, T2, None, 2, GLOBEX)],
    }
    # nothing else moved: not a row of the other devices, nor of the customers, was written
    assert device_rows(after, 502, 503) == device_rows(before, 502, 503)
    assert after["customers"] == before["customers"]
    assert {k for _, k in device_writes(engine)} == {501}


def test_a_device_a_complete_listing_misses_is_removed_then_reappears(engine: Engine) -> None:
    before = first_run(engine)
    counts = merge_run(engine, T2, [acme(PHONE), globex(TABLET)], CUSTOMERS)
    assert counts == {"added": 0, "changed": 0, "reappeared": 0, "removed": 1}
    # nothing is deleted from devices; claims and metadata are of current devices only
    assert device_rows(public_rows(engine), 503) == {
        "devices": [device_row(CHROMEBOOK, T1, T1, removed=T2)],
        "device_claims": [],
        "device_metadata": [],
        "device_versions": [
            version(CHROMEBOOK, T1, T2, 1, None),
            version(CHROMEBOOK, T2, None, 2, None, removed=True),
        ],
    }
    back = changed(CHROMEBOOK, deviceMetadata={"entries": {"cart": "7"}})
    counts = merge_run(engine, T3, [acme(PHONE, back), globex(TABLET)], CUSTOMERS)
    assert counts == {"added": 0, "changed": 0, "reappeared": 1, "removed": 0}
    after = public_rows(engine)
    assert device_rows(after, 503) == {
        "devices": [device_row(back, T1, T3)],
        "device_claims": CHROMEBOOK_CLAIMS,
        "device_metadata": [meta(503, "cart", "7")],
        "device_versions": [
            version(CHROMEBOOK, T1, T2, 1, None),
            version(CHROMEBOOK, T2, T3, 2, None, removed=True),
            version(back, T3, None, 3, None),
        ],
    }
    assert device_rows(after, 501, 502) == device_rows(before, 501, 502)


def test_a_customer_that_left_customers_list_leaves_with_its_devices_and_returns(
    engine: Engine,
) -> None:
    """A full run lists every customer ``customers.list`` returns: an owner no listing asked
    about has left the reseller, and its devices are removed with it."""
    first_run(engine)
    counts = merge_run(engine, T2, [acme(PHONE, CHROMEBOOK)], [ACME_JSON])
    assert counts == {"added": 0, "changed": 0, "reappeared": 0, "removed": 1}
    gone = public_rows(engine)
    assert gone["customers"] == [
        customer_row(ACME_JSON, T1, T1),
        customer_row(GLOBEX_JSON, T1, T1, removed=T2),
    ]
    assert device_rows(gone, 502) == {
        "devices": [device_row(TABLET, T1, T1, removed=T2)],
        "device_claims": [],
        "device_metadata": [],
        "device_versions": [
            version(TABLET, T1, T2, 1, GLOBEX),
            version(TABLET, T2, None, 2, None, removed=True),
        ],
    }
    counts = merge_run(engine, T3, [acme(PHONE, CHROMEBOOK), globex(TABLET)], CUSTOMERS)
    assert counts == {"added": 0, "changed": 0, "reappeared": 1, "removed": 0}
    back = public_rows(engine)
    assert back["customers"] == [
        customer_row(ACME_JSON, T1, T1),
        customer_row(GLOBEX_JSON, T1, T3),
    ]
    assert device_rows(back, 502) == {
        "devices": [device_row(TABLET, T1, T3)],
        "device_claims": TABLET_CLAIMS,
        "device_metadata": [],
        "device_versions": [
            version(TABLET, T1, T2, 1, GLOBEX),
            version(TABLET, T2, T3, 2, None, removed=True),
            version(TABLET, T3, None, 3, GLOBEX),
        ],
    }


def test_devices_seen_only_by_an_incomplete_listing_are_left_exactly_as_they_were(
    engine: Engine,
) -> None:
    """SPEC guarantee 2: an incomplete listing changes, adds and removes nothing of its owners'
    devices, while a complete listing of the same run is applied."""
    before = first_run(engine)
    watch_writes(engine)
    phone = changed(PHONE, deviceMetadata={"entries": {"asset": "A-501"}})
    tablet = changed(TABLET, deviceMetadata={"entries": {"asset": "T-502"}})
    stranger = changed(TABLET, deviceId="504", name="partners/7000000001/devices/504")
    # Globex's listing broke off after returning its tablet, changed, and a device new to the
    # snapshot: neither is applied
    counts = merge_run(
        engine,
        T2,
        [acme(phone, CHROMEBOOK), globex(tablet, stranger, complete=False)],
        CUSTOMERS,
    )
    assert counts == {"added": 0, "changed": 1, "reappeared": 0, "removed": 0}
    after = public_rows(engine)
    assert device_rows(after, 502, 503, 504) == device_rows(before, 502, 503)
    assert device_rows(after, 501)["device_metadata"] == [meta(501, "asset", "A-501")]
    assert {k for _, k in device_writes(engine)} == {501}


def test_a_device_an_incomplete_listing_did_not_reach_is_not_removed(engine: Engine) -> None:
    before = first_run(engine)
    watch_writes(engine)
    counts = merge_run(engine, T2, [acme(PHONE, complete=False), globex(TABLET)], CUSTOMERS)
    assert counts == {"added": 0, "changed": 0, "reappeared": 0, "removed": 0}
    assert public_rows(engine) == before
    assert device_writes(engine) == set()


def _arrivals(moved_complete: bool) -> list[Any]:
    """Both orders of the two pages: the one that counts first, or the other."""
    kind = "two-complete" if moved_complete else "complete-and-incomplete"
    return [
        pytest.param(moved_complete, False, id=f"{kind}-kept-page-first"),
        pytest.param(moved_complete, True, id=f"{kind}-moved-page-first"),
    ]


@pytest.mark.parametrize(("moved_complete", "moved_page_first"), _arrivals(False) + _arrivals(True))
def test_a_device_two_listings_returned_takes_the_rows_of_the_listing_that_counts(
    engine: Engine, moved_complete: bool, moved_page_first: bool
) -> None:
    """The phone moved while the run paged: Acme's listing returned it with new metadata
    ("kept"), Globex's returned it moved. The row that counts is the complete listing's when
    Globex's broke off (even though Globex's is listing 1), else the first listing's (Acme's,
    listing 1); its claims and metadata with it, whichever page arrived first."""
    before = first_run(engine)
    kept = changed(PHONE, deviceMetadata={"entries": {"asset": "A-501", "site": "Hamburg"}})
    moved = changed(
        PHONE,
        claims=[{"sectionType": ZT, "ownerCompanyId": "1002", "resellerId": "7000000001"}],
        deviceMetadata={"entries": {"asset": "G-501"}},
    )
    first, second = (1, 2) if moved_complete else (2, 1)
    acmes = acme(kept, CHROMEBOOK, number=first)
    globexes = globex(TABLET, moved, number=second, complete=moved_complete)
    pages = [globexes, acmes] if moved_page_first else [acmes, globexes]
    counts = merge_run(engine, T2, pages, CUSTOMERS)
    assert counts == {"added": 0, "changed": 1, "reappeared": 0, "removed": 0}
    after = public_rows(engine)
    assert device_rows(after, 501) == {
        "devices": [device_row(kept, T1, T2)],
        "device_claims": PHONE_CLAIMS,
        "device_metadata": [meta(501, "asset", "A-501"), meta(501, "site", "Hamburg")],
        "device_versions": [version(PHONE, T1, T2, 1, ACME), version(kept, T2, None, 2, ACME)],
    }
    assert device_rows(after, 502, 503) == device_rows(before, 502, 503)

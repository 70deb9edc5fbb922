"""Pure tests of ``inventory.transform``: API JSON (literal dicts) to row dicts."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from inventory.transform import (
    BadRecordError,
    DeviceRows,
    canonical_device,
    content_hash,
    parse_int64,
    parse_timestamp,
    to_customer_row,
    to_device_rows,
    to_identifier,
)

PARTNER = 1234567
BIG_ID = 2**53 + 1  # not representable as a float: must survive exactly
MAX_INT64 = 2**63 - 1


def full_device() -> dict[str, Any]:
    """A device with every known field set, as the API sends it (int64 as strings)."""
    return {
        "deviceId": str(BIG_ID),
        "name": f"partners/{PARTNER}/devices/{BIG_ID}",
        "configuration": "customers/42/configurations/7",
        "deviceIdentifier": {
            "imei": "359881234567890",
            "imei2": "359881234567891",
            "meid": "A0000012345678",
            "meid2": "A0000012345679",
            "serialNumber": "SN-0001",
            "manufacturer": "Google",
            "model": "Pixel 8",
            "deviceType": "DEVICE_TYPE_ANDROID",
            "chromeOsAttestedDeviceId": "ATT-1",
        },
        "claims": [
            {
                "sectionType": "SECTION_TYPE_ZERO_TOUCH",
                "ownerCompanyId": str(MAX_INT64),
                "resellerId": str(PARTNER),
                "vacationModeStartTime": "2024-03-01T10:00:00.123456789Z",
                "vacationModeExpireTime": "2024-04-01T02:30:00+02:00",
                "additionalService": "DEVICE_PROTECTION",
            },
            {
                "sectionType": "SECTION_TYPE_SIM_LOCK",
                "ownerCompanyId": "555",
                "resellerId": str(PARTNER),
            },
        ],
        "deviceMetadata": {"entries": {"asset_tag": "A-1", "site": "Paris"}},
    }


def rows_of(device: Any) -> DeviceRows:
    return to_device_rows(device, PARTNER)


# --- to_device_rows: mapping -----------------------------------------------------------------


def test_full_device_maps_every_column() -> None:
    rows = rows_of(full_device())
    assert rows.device == {
        "device_id": BIG_ID,
        "partner_id": PARTNER,
        "raw": full_device(),
        "content_hash": content_hash(canonical_device(full_device(), BIG_ID)),
        "name": f"partners/{PARTNER}/devices/{BIG_ID}",
        "configuration": "customers/42/configurations/7",
        "imei": "359881234567890",
        "imei2": "359881234567891",
        "meid": "A0000012345678",
        "meid2": "A0000012345679",
        "serial_number": "SN-0001",
        "manufacturer": "Google",
        "model": "Pixel 8",
        "device_type": "DEVICE_TYPE_ANDROID",
        "chrome_os_attested_device_id": "ATT-1",
    }
    assert rows.unknown_fields == []
    assert rows.warnings == []


def test_full_device_claims_rows() -> None:
    rows = rows_of(full_device())
    assert rows.claims == [
        {
            "device_id": BIG_ID,
            "section_type": "SECTION_TYPE_ZERO_TOUCH",
            "owner_company_id": MAX_INT64,
            "reseller_id": PARTNER,
            "vacation_mode_start_time": datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC),
            "vacation_mode_expire_time": datetime(2024, 4, 1, 0, 30, 0, tzinfo=UTC),
            "additional_service": "DEVICE_PROTECTION",
            "google_workspace_customer_id": None,
        },
        {
            "device_id": BIG_ID,
            "section_type": "SECTION_TYPE_SIM_LOCK",
            "owner_company_id": 555,
            "reseller_id": PARTNER,
            "vacation_mode_start_time": None,
            "vacation_mode_expire_time": None,
            "additional_service": None,
            "google_workspace_customer_id": None,
        },
    ]
    # the owner is the zero-touch claim's company, not the SIM-lock one's
    assert rows.owner_company_id == MAX_INT64


def test_full_device_metadata_rows_and_raw() -> None:
    device = full_device()
    rows = rows_of(device)
    assert rows.metadata == [
        {"device_id": BIG_ID, "key": "asset_tag", "value": "A-1"},
        {"device_id": BIG_ID, "key": "site", "value": "Paris"},
    ]
    assert rows.raw == full_device()  # the JSON as the API sent it, int64 strings untouched
    assert rows.raw["deviceId"] == str(BIG_ID)


def test_device_id_above_2_53_is_exact() -> None:
    rows = rows_of({"deviceId": "9223372036854775807"})
    assert rows.device["device_id"] == 9223372036854775807
    assert type(rows.device["device_id"]) is int
    rows = rows_of({"deviceId": str(BIG_ID)})
    assert rows.device["device_id"] == 9007199254740993
    assert rows.device["device_id"] != float(BIG_ID)


def test_int64_sent_as_json_numbers() -> None:
    device = {
        "deviceId": BIG_ID,
        "claims": [
            {"sectionType": "SECTION_TYPE_ZERO_TOUCH", "ownerCompanyId": 77, "resellerId": 88}
        ],
    }
    rows = rows_of(device)
    assert rows.device["device_id"] == BIG_ID
    assert rows.claims[0]["owner_company_id"] == 77
    assert rows.claims[0]["reseller_id"] == 88
    assert rows.owner_company_id == 77
    assert rows.warnings == []


def test_proto3_omitted_fields_become_none_and_empty() -> None:
    rows = rows_of({"deviceId": "5"})
    assert rows.device == {
        "device_id": 5,
        "partner_id": PARTNER,
        "raw": {"deviceId": "5"},
        "content_hash": content_hash({"deviceId": "5"}),
        "name": None,
        "configuration": None,
        "imei": None,
        "imei2": None,
        "meid": None,
        "meid2": None,
        "serial_number": None,
        "manufacturer": None,
        "model": None,
        "device_type": None,
        "chrome_os_attested_device_id": None,
    }
    assert rows.claims == []
    assert rows.metadata == []
    assert rows.owner_company_id is None
    assert rows.unknown_fields == []
    assert rows.warnings == []


def test_empty_strings_and_empty_objects_are_omitted_fields() -> None:
    rows = rows_of(
        {
            "deviceId": "5",
            "name": "",
            "deviceIdentifier": {"imei": "", "model": "M"},
            "claims": [{"sectionType": "SECTION_TYPE_ZERO_TOUCH", "ownerCompanyId": ""}],
            "deviceMetadata": {},
        }
    )
    assert rows.device["name"] is None
    assert rows.device["imei"] is None
    assert rows.device["model"] == "M"
    assert rows.claims[0]["owner_company_id"] is None
    assert rows.claims[0]["reseller_id"] is None
    assert rows.metadata == []
    assert rows.warnings == []


def test_claim_without_section_type_is_unspecified() -> None:
    rows = rows_of({"deviceId": "5", "claims": [{"ownerCompanyId": "9"}]})
    assert rows.claims[0]["section_type"] == "SECTION_TYPE_UNSPECIFIED"
    assert rows.claims[0]["owner_company_id"] == 9
    assert rows.owner_company_id is None  # not a zero-touch claim


def test_non_string_identifier_is_stored_as_json_text() -> None:
    rows = rows_of({"deviceId": "5", "deviceIdentifier": {"imei": 359881234567890}})
    assert rows.device["imei"] == "359881234567890"


# --- to_device_rows: unknown fields and enums ------------------------------------------------


def test_unknown_fields_reported_by_schema_path() -> None:
    device = full_device()
    device["newTopLevel"] = {"x": 1}
    device["deviceIdentifier"]["esim"] = "E1"
    device["claims"][0]["claimSource"] = "PORTAL"
    device["claims"][1]["anotherOne"] = True
    device["deviceMetadata"]["labels"] = ["a"]
    rows = rows_of(device)
    assert rows.unknown_fields == [
        "Device.newTopLevel",
        "DeviceIdentifier.esim",
        "DeviceClaim.claimSource",
        "DeviceClaim.anotherOne",
        "DeviceMetadata.labels",
    ]
    assert rows.raw["newTopLevel"] == {"x": 1}  # kept in raw
    assert rows.raw["claims"][0]["claimSource"] == "PORTAL"
    assert rows.warnings == []


def test_unknown_enum_values_are_stored_as_sent() -> None:
    rows = rows_of(
        {
            "deviceId": "5",
            "deviceIdentifier": {"deviceType": "DEVICE_TYPE_WEAR_OS"},
            "claims": [
                {
                    "sectionType": "SECTION_TYPE_SOMETHING_NEW",
                    "ownerCompanyId": "3",
                    "additionalService": "ADDITIONAL_SERVICE_FUTURE",
                }
            ],
        }
    )
    assert rows.device["device_type"] == "DEVICE_TYPE_WEAR_OS"
    assert rows.claims[0]["section_type"] == "SECTION_TYPE_SOMETHING_NEW"
    assert rows.claims[0]["additional_service"] == "ADDITIONAL_SERVICE_FUTURE"
    assert rows.unknown_fields == []
    assert rows.warnings == []


def test_chrome_os_claim_with_only_workspace_customer_id() -> None:
    rows = rows_of(
        {
            "deviceId": "12",
            "deviceIdentifier": {
                "chromeOsAttestedDeviceId": "CRATT",
                "serialNumber": "5CD1",
                "deviceType": "DEVICE_TYPE_CHROME_OS",
            },
            "claims": [
                {
                    "sectionType": "SECTION_TYPE_ZERO_TOUCH",
                    "googleWorkspaceCustomerId": "C01abcd2e",
                }
            ],
        }
    )
    assert rows.claims == [
        {
            "device_id": 12,
            "section_type": "SECTION_TYPE_ZERO_TOUCH",
            "owner_company_id": None,
            "reseller_id": None,
            "vacation_mode_start_time": None,
            "vacation_mode_expire_time": None,
            "additional_service": None,
            "google_workspace_customer_id": "C01abcd2e",
        }
    ]
    assert rows.owner_company_id is None
    assert rows.device["chrome_os_attested_device_id"] == "CRATT"
    assert rows.device["device_type"] == "DEVICE_TYPE_CHROME_OS"
    assert rows.warnings == []


# --- to_device_rows: odd records -------------------------------------------------------------


def test_duplicate_section_claims_keep_the_first_with_a_warning() -> None:
    rows = rows_of(
        {
            "deviceId": "5",
            "claims": [
                {"sectionType": "SECTION_TYPE_ZERO_TOUCH", "ownerCompanyId": "100"},
                {"sectionType": "SECTION_TYPE_SIM_LOCK", "ownerCompanyId": "300"},
                {"sectionType": "SECTION_TYPE_ZERO_TOUCH", "ownerCompanyId": "200"},
            ],
        }
    )
    assert [(c["section_type"], c["owner_company_id"]) for c in rows.claims] == [
        ("SECTION_TYPE_ZERO_TOUCH", 100),
        ("SECTION_TYPE_SIM_LOCK", 300),
    ]
    assert rows.owner_company_id == 100
    assert rows.warnings == [
        "device 5: more than one SECTION_TYPE_ZERO_TOUCH claim; kept the first"
    ]


def test_bad_timestamps_become_none_with_a_warning() -> None:
    rows = rows_of(
        {
            "deviceId": "5",
            "claims": [
                {
                    "sectionType": "SECTION_TYPE_ZERO_TOUCH",
                    "vacationModeStartTime": "yesterday",
                    "vacationModeExpireTime": "2024-02-30T00:00:00Z",
                }
            ],
        }
    )
    claim = rows.claims[0]
    assert claim["vacation_mode_start_time"] is None
    assert claim["vacation_mode_expire_time"] is None
    assert rows.warnings == [
        "device 5: timestamp 'yesterday' is not RFC 3339; stored NULL",
        "device 5: timestamp '2024-02-30T00:00:00Z' is not RFC 3339; stored NULL",
    ]


def test_garbage_claim_int64_becomes_none_with_a_warning() -> None:
    rows = rows_of(
        {
            "deviceId": "5",
            "claims": [
                {
                    "sectionType": "SECTION_TYPE_ZERO_TOUCH",
                    "ownerCompanyId": "12x",
                    "resellerId": True,
                }
            ],
        }
    )
    assert rows.claims[0]["owner_company_id"] is None
    assert rows.claims[0]["reseller_id"] is None
    assert rows.owner_company_id is None
    assert rows.warnings == [
        "DeviceClaim.ownerCompanyId is not an int64: '12x'",
        "DeviceClaim.resellerId is not an int64: True",
    ]


def test_malformed_sections_warn_and_are_skipped() -> None:
    rows = rows_of(
        {
            "deviceId": "5",
            "deviceIdentifier": "imei:1",
            "claims": {"sectionType": "SECTION_TYPE_ZERO_TOUCH"},
            "deviceMetadata": ["a"],
        }
    )
    assert rows.device["imei"] is None
    assert rows.claims == []
    assert rows.metadata == []
    assert rows.warnings == [
        "device 5: deviceIdentifier is not an object",
        "device 5: claims is not a list",
        "device 5: deviceMetadata is not an object",
    ]


def test_claim_that_is_not_an_object_and_bad_entries() -> None:
    rows = rows_of(
        {
            "deviceId": "5",
            "claims": ["SECTION_TYPE_ZERO_TOUCH", {"sectionType": "SECTION_TYPE_SIM_LOCK"}],
            "deviceMetadata": {"entries": [["k", "v"]]},
        }
    )
    assert [c["section_type"] for c in rows.claims] == ["SECTION_TYPE_SIM_LOCK"]
    assert rows.metadata == []
    assert rows.warnings == [
        "device 5: a claim is not an object",
        "device 5: deviceMetadata.entries is not an object",
    ]


def test_nanosecond_timestamp_is_truncated_to_microseconds() -> None:
    rows = rows_of(
        {
            "deviceId": "5",
            "claims": [
                {
                    "sectionType": "SECTION_TYPE_ZERO_TOUCH",
                    "vacationModeStartTime": "2025-01-31T23:59:59.999999999Z",
                }
            ],
        }
    )
    assert rows.claims[0]["vacation_mode_start_time"] == datetime(
        2025, 1, 31, 23, 59, 59, 999999, tzinfo=UTC
    )
    assert rows.warnings == []


@pytest.mark.parametrize(
    "device_id", [None, "", "abc", "12.5", "1e5", " 5", "+5", "99999999999999999999", True, 1.5]
)
def test_missing_or_garbage_device_id_is_a_bad_record(device_id: Any) -> None:
    device = {"deviceIdentifier": {"imei": "1"}}
    if device_id is not None:
        device["deviceId"] = device_id
    with pytest.raises(BadRecordError, match=r"^Device\.deviceId is not an int64: "):
        rows_of(device)


@pytest.mark.parametrize("record", [None, "device", 42, ["deviceId", "5"]])
def test_non_object_device_is_a_bad_record(record: Any) -> None:
    with pytest.raises(BadRecordError, match="a device is not a JSON object"):
        rows_of(record)


def test_out_of_range_timestamp_is_none_with_a_warning() -> None:
    rows = rows_of(
        {
            "deviceId": "5",
            "claims": [
                {
                    "sectionType": "SECTION_TYPE_ZERO_TOUCH",
                    "vacationModeStartTime": "0001-01-01T00:00:00+01:00",
                }
            ],
        }
    )
    assert rows.claims[0]["vacation_mode_start_time"] is None
    assert len(rows.warnings) == 1


# --- content hash ----------------------------------------------------------------------------


def reorder(obj: Any) -> Any:
    """The same JSON with every object's keys in reverse order."""
    if isinstance(obj, dict):
        return {key: reorder(obj[key]) for key in reversed(list(obj))}
    if isinstance(obj, list):
        return [reorder(item) for item in obj]
    return obj


def hash_of(device: dict[str, Any]) -> str:
    return rows_of(device).content_hash


def test_hash_is_sha256_hex() -> None:
    digest = hash_of(full_device())
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert hash_of(full_device()) == digest


def test_hash_ignores_key_order() -> None:
    device = full_device()
    shuffled = reorder(device)
    assert list(shuffled) != list(device)
    assert list(shuffled["deviceMetadata"]["entries"]) == ["site", "asset_tag"]
    assert hash_of(shuffled) == hash_of(device)


def test_hash_ignores_claim_order() -> None:
    device = full_device()
    swapped = copy.deepcopy(device)
    swapped["claims"].reverse()
    assert hash_of(swapped) == hash_of(device)


def test_hash_ignores_int64_string_versus_number() -> None:
    device = full_device()
    numeric = copy.deepcopy(device)
    numeric["deviceId"] = BIG_ID
    for claim in numeric["claims"]:
        claim["ownerCompanyId"] = int(claim["ownerCompanyId"])
        claim["resellerId"] = int(claim["resellerId"])
    numeric["claims"].reverse()  # and both at once
    assert hash_of(numeric) == hash_of(device)


def test_content_hash_function_ignores_key_order() -> None:
    assert content_hash({"a": 1, "b": [1, {"x": 1, "y": 2}]}) == content_hash(
        {"b": [1, {"y": 2, "x": 1}], "a": 1}
    )
    assert content_hash({"a": 1}) != content_hash({"a": "1"})


def _set_metadata_value(d: dict[str, Any]) -> None:
    d["deviceMetadata"]["entries"]["site"] = "Lyon"


def _add_metadata_key(d: dict[str, Any]) -> None:
    d["deviceMetadata"]["entries"]["room"] = "12"


def _drop_metadata(d: dict[str, Any]) -> None:
    del d["deviceMetadata"]


def _change_owner(d: dict[str, Any]) -> None:
    d["claims"][0]["ownerCompanyId"] = "43"


def _drop_claim(d: dict[str, Any]) -> None:
    d["claims"].pop()


def _change_vacation(d: dict[str, Any]) -> None:
    d["claims"][0]["vacationModeExpireTime"] = "2024-05-01T00:00:00Z"


def _change_imei(d: dict[str, Any]) -> None:
    d["deviceIdentifier"]["imei"] = "359881234567899"


def _drop_identifier(d: dict[str, Any]) -> None:
    del d["deviceIdentifier"]["imei2"]


def _add_unknown_field(d: dict[str, Any]) -> None:
    d["newField"] = "x"


@pytest.mark.parametrize(
    "change",
    [
        _set_metadata_value,
        _add_metadata_key,
        _drop_metadata,
        _change_owner,
        _drop_claim,
        _change_vacation,
        _change_imei,
        _drop_identifier,
        _add_unknown_field,
    ],
)
def test_hash_changes_with_content(change: Any) -> None:
    changed = full_device()
    change(changed)
    assert hash_of(changed) != hash_of(full_device())


def test_hash_distinguishes_devices_by_id() -> None:
    assert hash_of({"deviceId": "1"}) != hash_of({"deviceId": "2"})


# --- to_customer_row -------------------------------------------------------------------------


def full_company() -> dict[str, Any]:
    return {
        "companyId": "9007199254740995",
        "companyName": "ACME Ltd",
        "name": f"partners/{PARTNER}/customers/9007199254740995",
        "ownerEmails": ["owner@example.com"],
        "adminEmails": ["a@example.com", "b@example.com"],
        "termsStatus": "TERMS_STATUS_ACCEPTED",
        "languageCode": "en-GB",
        "skipWelcomeEmail": False,
        "googleWorkspaceAccount": {"customerId": "C0abc", "preProvisioningTokens": ["t1"]},
    }


def test_customer_row_maps_every_column() -> None:
    company = full_company()
    row, unknown = to_customer_row(company, PARTNER)
    assert unknown == []
    expected_hash = row.pop("content_hash")
    assert row == {
        "company_id": 9007199254740995,
        "partner_id": PARTNER,
        "company_name": "ACME Ltd",
        "name": f"partners/{PARTNER}/customers/9007199254740995",
        "owner_emails": ["owner@example.com"],
        "admin_emails": ["a@example.com", "b@example.com"],
        "terms_status": "TERMS_STATUS_ACCEPTED",
        "language_code": "en-GB",
        "skip_welcome_email": False,
        "google_workspace_account": {"customerId": "C0abc", "preProvisioningTokens": ["t1"]},
        "google_workspace_customer_id": "C0abc",
        "raw": full_company(),
    }
    assert expected_hash == content_hash(full_company())
    assert expected_hash == to_customer_row(reorder(full_company()), PARTNER)[0]["content_hash"]


def test_customer_row_minimal() -> None:
    row, unknown = to_customer_row({"companyId": 7}, PARTNER)
    assert unknown == []
    assert row["company_id"] == 7
    assert row["company_name"] is None
    assert row["name"] is None
    assert row["owner_emails"] == []
    assert row["admin_emails"] == []
    assert row["terms_status"] is None
    assert row["language_code"] is None
    assert row["skip_welcome_email"] is None
    assert row["google_workspace_account"] is None
    assert row["google_workspace_customer_id"] is None


def test_customer_row_unknown_fields_and_odd_values() -> None:
    company = {
        "companyId": "7",
        "termsStatus": "TERMS_STATUS_FUTURE",
        "skipWelcomeEmail": "yes",
        "adminEmails": "not-a-list",
        "ownerEmails": [1, "x@example.com"],
        "resellerNotes": "n",
        "googleWorkspaceAccount": {"customerId": "C1", "domain": "example.com"},
    }
    row, unknown = to_customer_row(company, PARTNER)
    assert unknown == ["Company.resellerNotes", "GoogleWorkspaceAccount.domain"]
    assert row["terms_status"] == "TERMS_STATUS_FUTURE"
    assert row["skip_welcome_email"] is None
    assert row["admin_emails"] == []
    assert row["owner_emails"] == ["1", "x@example.com"]
    assert row["google_workspace_customer_id"] == "C1"


def test_customer_workspace_account_that_is_not_an_object() -> None:
    row, unknown = to_customer_row({"companyId": "7", "googleWorkspaceAccount": "C1"}, PARTNER)
    assert row["google_workspace_account"] is None
    assert row["google_workspace_customer_id"] is None
    assert unknown == []


@pytest.mark.parametrize("company", [{"companyName": "x"}, {"companyId": "abc"}, {"companyId": ""}])
def test_customer_without_usable_company_id(company: dict[str, Any]) -> None:
    with pytest.raises(BadRecordError, match=r"^Company\.companyId is not an int64"):
        to_customer_row(company, PARTNER)


@pytest.mark.parametrize("record", [None, [], "acme"])
def test_customer_that_is_not_an_object(record: Any) -> None:
    with pytest.raises(BadRecordError, match="a customer is not a JSON object"):
        to_customer_row(record, PARTNER)


# --- parse_int64 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("-42", -42),
        ("007", 7),
        (str(BIG_ID), BIG_ID),
        ("9223372036854775807", MAX_INT64),
        ("-9223372036854775808", -(2**63)),
        (42, 42),
        (BIG_ID, BIG_ID),
        (42.0, 42),
        (-3.0, -3),
    ],
)
def test_parse_int64_accepts(value: Any, expected: int) -> None:
    result = parse_int64(value, "X.y")
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "abc",
        "1.0",
        "1e3",
        "0x10",
        " 1",
        "1 ",
        "+1",
        "--1",
        "9223372036854775808",  # 2**63
        "-9223372036854775809",
        "12345678901234567890",  # 20 digits
        True,
        False,
        1.5,
        float(2**53),  # a float this big may already have lost digits
        float("nan"),
        [1],
        {"v": 1},
    ],
)
def test_parse_int64_rejects(value: Any) -> None:
    with pytest.raises(BadRecordError) as info:
        parse_int64(value, "Device.deviceId")
    assert str(info.value) == f"Device.deviceId is not an int64: {value!r}"


@pytest.mark.parametrize("value", [2**63, 2**64, -(2**63) - 1])
def test_parse_int64_rejects_json_numbers_outside_int64(value: int) -> None:
    with pytest.raises(BadRecordError):
        parse_int64(value, "Device.deviceId")


@pytest.mark.parametrize("value", ["123\n", "\u0661\u0662\u0663"])
def test_parse_int64_rejects_non_ascii_or_trailing_newline(value: str) -> None:
    with pytest.raises(BadRecordError):
        parse_int64(value, "Device.deviceId")


# --- parse_timestamp -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10, tzinfo=UTC)),
        ("2024-03-01t10:00:00z", datetime(2024, 3, 1, 10, tzinfo=UTC)),
        ("2024-03-01 10:00:00Z", datetime(2024, 3, 1, 10, tzinfo=UTC)),
        ("2024-03-01T10:00:00.5Z", datetime(2024, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2024-03-01T10:00:00.000001Z", datetime(2024, 3, 1, 10, 0, 0, 1, tzinfo=UTC)),
        ("2024-03-01T10:00:00.123456789Z", datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2024-03-01T10:00:00.999999999Z", datetime(2024, 3, 1, 10, 0, 0, 999999, tzinfo=UTC)),
        ("2024-03-01T10:00:00+02:00", datetime(2024, 3, 1, 8, tzinfo=UTC)),
        ("2024-03-01T01:00:00-05:30", datetime(2024, 3, 1, 6, 30, tzinfo=UTC)),
        ("2024-01-01T00:30:00+01:00", datetime(2023, 12, 31, 23, 30, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_accepts(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        1709287200,
        "2024-03-01",
        "2024-03-01T10:00:00",  # no zone
        "2024-03-01T10:00Z",  # no seconds
        "2024-13-01T10:00:00Z",
        "2024-02-30T10:00:00Z",
        "2024-03-01T25:00:00Z",
        "2024-03-01T10:00:00.Z",
        "2024-03-01T10:00:00+0200",
        "01/03/2024 10:00",
        "x2024-03-01T10:00:00Z",
    ],
)
def test_parse_timestamp_rejects(value: Any) -> None:
    assert parse_timestamp(value) is None


def test_parse_timestamp_rejects_trailing_newline() -> None:
    assert parse_timestamp("2024-03-01T10:00:00Z\n") is None


def test_parse_timestamp_offset_gives_same_instant() -> None:
    local = parse_timestamp("2024-06-01T12:00:00+09:00")
    assert local == datetime(2024, 6, 1, 12, tzinfo=timezone(timedelta(hours=9)))


# --- to_identifier ---------------------------------------------------------------------------


def test_to_identifier_maps_columns_and_drops_empty_cells() -> None:
    row = {
        "imei": "359881234567890",
        "meid": "",
        "serial_number": "SN1",
        "manufacturer": "Google",
        "model": "Pixel 8",
        "device_type": "DEVICE_TYPE_ANDROID",
        "chrome_os_attested_device_id": "ATT",
    }
    assert to_identifier(row) == {
        "imei": "359881234567890",
        "serialNumber": "SN1",
        "manufacturer": "Google",
        "model": "Pixel 8",
        "deviceType": "DEVICE_TYPE_ANDROID",
        "chromeOsAttestedDeviceId": "ATT",
    }


def test_to_identifier_ignores_unknown_columns() -> None:
    assert to_identifier({"imei2": "1", "meid2": "2", "colour": "red", "imei": "3"}) == {
        "imei2": "1",
        "meid2": "2",
        "imei": "3",
    }
    assert to_identifier({}) == {}

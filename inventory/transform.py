"""Pure functions from the API's JSON to row dicts: camelCase to snake_case, int64 strings to int.

The API speaks proto3 JSON: empty fields are omitted, int64 values arrive as strings (a
conforming server may also send numbers), enums by name (an unknown one is stored as sent),
timestamps as RFC 3339. Fields this version does not know are kept in ``raw`` and reported by
their schema path (``Device.someNewField``) so a run can count and warn about them once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

DEVICE_FIELDS = frozenset(
    {"claims", "configuration", "deviceId", "deviceIdentifier", "deviceMetadata", "name"}
)
IDENTIFIER_FIELDS = {
    "imei": "imei",
    "imei2": "imei2",
    "meid": "meid",
    "meid2": "meid2",
    "serialNumber": "serial_number",
    "manufacturer": "manufacturer",
    "model": "model",
    "deviceType": "device_type",
    "chromeOsAttestedDeviceId": "chrome_os_attested_device_id",
}
CLAIM_FIELDS = frozenset(
    {
        "additionalService",
        "googleWorkspaceCustomerId",
        "ownerCompanyId",
        "resellerId",
        "sectionType",
        "vacationModeExpireTime",
        "vacationModeStartTime",
    }
)
METADATA_FIELDS = frozenset({"entries"})
COMPANY_FIELDS = frozenset(
    {
        "adminEmails",
        "companyId",
        "companyName",
        "googleWorkspaceAccount",
        "languageCode",
        "name",
        "ownerEmails",
        "skipWelcomeEmail",
        "termsStatus",
    }
)
WORKSPACE_FIELDS = frozenset({"customerId", "preProvisioningTokens"})
_IDENTIFIER_KEYS = frozenset(IDENTIFIER_FIELDS)
_IDENTIFIER_ITEMS = tuple(IDENTIFIER_FIELDS.items())
_INT64_DIGITS = 18  # any string of at most 18 ASCII digits is an int64: the fast path
# json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False), built once
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
ZERO_TOUCH = "SECTION_TYPE_ZERO_TOUCH"
_INT64 = re.compile(r"-?[0-9]{1,19}")
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]+))?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


class BadRecordError(ValueError):
    """An API record that cannot be stored (e.g. a device without a usable ``deviceId``)."""


@dataclass
class DeviceRows:
    """One device as rows keyed by column names: its ``devices`` row (``raw`` and
    ``content_hash`` included), its ``device_claims`` and ``device_metadata`` rows, its
    zero-touch owner, and what was odd about it."""

    device: dict[str, Any]
    claims: list[dict[str, Any]]
    metadata: list[dict[str, Any]]
    owner_company_id: int | None
    unknown_fields: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def raw(self) -> dict[str, Any]:
        """The device's JSON as the API sent it."""
        return self.device["raw"]  # type: ignore[no-any-return]

    @property
    def content_hash(self) -> str:
        """The hash that decides whether the device changed."""
        return self.device["content_hash"]  # type: ignore[no-any-return]


def parse_int64(value: Any, what: str) -> int:
    """An int64 from its JSON form (a decimal string, or a number from a lenient server).

    Raises:
        BadRecordError: the value is not an int64.
    """
    if (
        value.__class__ is str
        and len(value) <= _INT64_DIGITS
        and value.isdigit()
        and value.isascii()
    ):
        return int(value)
    if isinstance(value, bool):
        raise BadRecordError(f"{what} is not an int64: {value!r}")
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, str) and _INT64.fullmatch(value):
        number = int(value)
        if -(2**63) <= number < 2**63:
            return number
    raise BadRecordError(f"{what} is not an int64: {value!r}")


def parse_timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (nanosecond precision allowed) as an aware UTC datetime."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.fullmatch(value)
    if not match:
        return None
    day, clock, fraction, zone = match.groups()
    micros = (fraction or "0")[:6].ljust(6, "0")
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        return datetime.fromisoformat(f"{day}T{clock}.{micros}{zone}").astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _optional_int64(value: Any, what: str, warnings: list[str]) -> int | None:
    if value is None or value == "":
        return None
    try:
        return parse_int64(value, what)
    except BadRecordError as exc:
        warnings.append(str(exc))
        return None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _unknown(obj: dict[str, Any], known: frozenset[str], path: str) -> list[str]:
    if known.issuperset(obj):  # the common case, without building a keys view
        return []
    return [f"{path}.{key}" for key in obj if key not in known]


def canonical_device(device: dict[str, Any], device_id: int) -> dict[str, Any]:
    """The device with int64 fields normalised and claims sorted: the basis of change detection.

    Key order and claim order must not make a device look changed; neither must a server that
    sends an int64 as a number one day and as a string the next.
    """
    canon = dict(device)
    canon["deviceId"] = str(device_id)
    claims = device.get("claims")
    if isinstance(claims, list):
        normalised = []
        for claim in claims:
            if not isinstance(claim, dict):
                normalised.append(claim)
                continue
            owner, reseller = claim.get("ownerCompanyId"), claim.get("resellerId")
            # int64 as strings, the usual form, need nothing (the class test is the cheap way
            # to say so); numbers become their strings
            if (owner.__class__ is not str or reseller.__class__ is not str) and (
                _is_number(owner) or _is_number(reseller)
            ):
                claim = dict(claim)
                for key in ("ownerCompanyId", "resellerId"):
                    if _is_number(claim.get(key)):
                        claim[key] = str(int(claim[key]))
            normalised.append(claim)
        if len(normalised) > 1:  # one claim needs no sort key (the common case)
            normalised.sort(key=_sort_key)
        canon["claims"] = normalised
    return canon


def _sort_key(obj: Any) -> bytes:
    """The canonical JSON of ``obj`` as bytes: the same order as the text's code points."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return _CANONICAL_JSON.encode(obj).encode("utf-8")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_PARTNER_PREFIX = re.compile(r"^partners/[^/]+/")


def device_hash_as_seen_by(device: dict[str, Any], device_id: int, partner_id: int) -> str:
    """The content hash of a device as partner ``partner_id`` would name it: its ``name``
    (``partners/P/devices/D``) is the only part of a device that says whose view it is."""
    name = device.get("name")
    if isinstance(name, str):
        device = dict(device, name=_PARTNER_PREFIX.sub(f"partners/{partner_id}/", name))
    return content_hash(canonical_device(device, device_id))


def content_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj`` (keys sorted, no whitespace, UTF-8).

    orjson writes the same bytes as ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` for what a JSON parser returns, about ten times faster; the standard
    library takes what orjson refuses (integers beyond 64 bits, NaN from a lenient parse).
    """
    return hashlib.sha256(_sort_key(obj)).hexdigest()


def json_text(obj: Any) -> str:
    """Compact JSON text of ``obj`` (the stored form of ``raw`` columns)."""
    try:
        return orjson.dumps(obj).decode("utf-8")
    except orjson.JSONEncodeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def to_device_rows(device: Any, partner_id: int) -> DeviceRows:
    """Flatten one API ``Device`` into rows for ``devices``, ``device_claims`` and metadata.

    Raises:
        BadRecordError: the record is not an object or has no usable ``deviceId``.
    """
    if not isinstance(device, dict):
        raise BadRecordError(f"a device is not a JSON object: {str(device)[:80]!r}")
    device_id = parse_int64(device.get("deviceId"), "Device.deviceId")
    warnings: list[str] = []
    unknown = _unknown(device, DEVICE_FIELDS, "Device")

    ident = device.get("deviceIdentifier") or {}
    if not isinstance(ident, dict):
        warnings.append(f"device {device_id}: deviceIdentifier is not an object")
        ident = {}
    unknown += _unknown(ident, _IDENTIFIER_KEYS, "DeviceIdentifier")
    row: dict[str, Any] = {
        "device_id": device_id,
        "partner_id": partner_id,
        "raw": device,
        "name": _text(device.get("name")),
        "configuration": _text(device.get("configuration")),
    }
    get = ident.get
    for api_name, column in _IDENTIFIER_ITEMS:
        value = get(api_name)
        row[column] = value if value.__class__ is str and value else _text(value)

    claims: list[dict[str, Any]] = []
    seen_sections: set[str] = set()
    owner: int | None = None
    raw_claims = device.get("claims") or []
    if not isinstance(raw_claims, list):
        warnings.append(f"device {device_id}: claims is not a list")
        raw_claims = []
    for claim in raw_claims:
        if not isinstance(claim, dict):
            warnings.append(f"device {device_id}: a claim is not an object")
            continue
        unknown += _unknown(claim, CLAIM_FIELDS, "DeviceClaim")
        section = claim.get("sectionType")
        if section.__class__ is not str or not section:
            section = _text(section) or "SECTION_TYPE_UNSPECIFIED"
        if section in seen_sections:
            warnings.append(f"device {device_id}: more than one {section} claim; kept the first")
            continue
        seen_sections.add(section)
        claim_row: dict[str, Any] = {
            "device_id": device_id,
            "section_type": section,
            "owner_company_id": _optional_int64(
                claim.get("ownerCompanyId"), "DeviceClaim.ownerCompanyId", warnings
            ),
            "reseller_id": _optional_int64(
                claim.get("resellerId"), "DeviceClaim.resellerId", warnings
            ),
            "vacation_mode_start_time": _timestamp(
                claim.get("vacationModeStartTime"), device_id, warnings
            ),
            "vacation_mode_expire_time": _timestamp(
                claim.get("vacationModeExpireTime"), device_id, warnings
            ),
            "additional_service": _text(claim.get("additionalService")),
            "google_workspace_customer_id": _text(claim.get("googleWorkspaceCustomerId")),
        }
        if section == ZERO_TOUCH:
            owner = claim_row["owner_company_id"]
        claims.append(claim_row)

    metadata: list[dict[str, Any]] = []
    meta = device.get("deviceMetadata") or {}
    if isinstance(meta, dict):
        unknown += _unknown(meta, METADATA_FIELDS, "DeviceMetadata")
        entries = meta.get("entries") or {}
        if isinstance(entries, dict):
            metadata = [
                {
                    "device_id": device_id,
                    "key": str(key),
                    # an empty value is a value: keep "" (NULL only for JSON null)
                    "value": value if isinstance(value, str) or value is None else _text(value),
                }
                for key, value in entries.items()
            ]
        else:
            warnings.append(f"device {device_id}: deviceMetadata.entries is not an object")
    else:
        warnings.append(f"device {device_id}: deviceMetadata is not an object")

    row["content_hash"] = content_hash(canonical_device(device, device_id))
    return DeviceRows(
        device=row,
        claims=claims,
        metadata=metadata,
        owner_company_id=owner,
        unknown_fields=unknown,
        warnings=warnings,
    )


def _timestamp(value: Any, device_id: int, warnings: list[str]) -> datetime | None:
    if value is None or value == "":
        return None
    parsed = parse_timestamp(value)
    if parsed is None:
        warnings.append(f"device {device_id}: timestamp {value!r} is not RFC 3339; stored NULL")
    return parsed


def to_customer_row(company: Any, partner_id: int) -> tuple[dict[str, Any], list[str]]:
    """Flatten one API ``Company`` into a ``customers`` row; returns (row, unknown field paths).

    Raises:
        BadRecordError: the record is not an object or has no usable ``companyId``.
    """
    if not isinstance(company, dict):
        raise BadRecordError(f"a customer is not a JSON object: {str(company)[:80]!r}")
    company_id = parse_int64(company.get("companyId"), "Company.companyId")
    unknown = _unknown(company, COMPANY_FIELDS, "Company")
    workspace = company.get("googleWorkspaceAccount")
    workspace_id: str | None = None
    if isinstance(workspace, dict):
        unknown += _unknown(workspace, WORKSPACE_FIELDS, "GoogleWorkspaceAccount")
        workspace_id = _text(workspace.get("customerId"))
    skip = company.get("skipWelcomeEmail")
    row = {
        "company_id": company_id,
        "partner_id": partner_id,
        "company_name": _text(company.get("companyName")),
        "name": _text(company.get("name")),
        "owner_emails": _string_list(company.get("ownerEmails")),
        "admin_emails": _string_list(company.get("adminEmails")),
        "terms_status": _text(company.get("termsStatus")),
        "language_code": _text(company.get("languageCode")),
        "skip_welcome_email": skip if isinstance(skip, bool) else None,
        "google_workspace_account": workspace if isinstance(workspace, dict) else None,
        "google_workspace_customer_id": workspace_id,
        "raw": company,
        "content_hash": content_hash(dict(company, companyId=str(company_id))),
    }
    return row, unknown


def to_vendor_row(
    company: Any, partner_id: int, vendor_id: int | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Flatten one API ``Company`` of ``vendors.list`` (``vendor_id`` None) or of a vendor's
    ``vendors.customers.list`` into a ``vendors`` or ``vendor_customers`` row; returns (row,
    unknown field paths).

    Raises:
        BadRecordError: the record is not an object or has no usable ``companyId``.
    """
    if not isinstance(company, dict):
        raise BadRecordError(f"a company is not a JSON object: {str(company)[:80]!r}")
    company_id = parse_int64(company.get("companyId"), "Company.companyId")
    row: dict[str, Any] = {"partner_id": partner_id}
    if vendor_id is None:
        row["vendor_id"] = company_id
    else:
        row["vendor_id"], row["company_id"] = vendor_id, company_id
    row["company_name"] = _text(company.get("companyName"))
    row["raw"] = company
    row["content_hash"] = content_hash(dict(company, companyId=str(company_id)))
    return row, _unknown(company, COMPANY_FIELDS, "Company")


def _string_list(value: Any) -> list[Any]:
    return [str(item) for item in value] if isinstance(value, list) else []


def to_identifier(row: dict[str, str]) -> dict[str, str]:
    """A ``DeviceIdentifier`` request object from an identifiers-CSV row (empty cells dropped)."""
    columns = {column: api for api, column in IDENTIFIER_FIELDS.items()}
    return {columns[key]: value for key, value in row.items() if key in columns and value}


def from_identifier(identifier: Mapping[str, str]) -> dict[str, str | None]:
    """The identifier columns of a ``DeviceIdentifier`` object (None where it has no value):
    the inverse of :func:`to_identifier`."""
    return {column: identifier.get(api) or None for api, column in IDENTIFIER_FIELDS.items()}

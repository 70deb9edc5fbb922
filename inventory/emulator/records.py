"""Plain records of the emulated API: companies and claims, and their proto3 JSON.

proto3 JSON rules applied here and in ``fleet.py``: fields at their default (empty string, empty
list, false, 0) are omitted; int64 values are decimal strings; enums are their names;
timestamps are RFC 3339 in UTC with a ``Z``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JsonObject = dict[str, Any]

SECTION_UNSPECIFIED = "SECTION_TYPE_UNSPECIFIED"
SECTION_SIM_LOCK = "SECTION_TYPE_SIM_LOCK"
SECTION_ZERO_TOUCH = "SECTION_TYPE_ZERO_TOUCH"
SECTION_TYPES = (SECTION_SIM_LOCK, SECTION_ZERO_TOUCH)  # enum order; claims are listed so
DEVICE_TYPE_ANDROID = "DEVICE_TYPE_ANDROID"
DEVICE_TYPE_CHROME_OS = "DEVICE_TYPE_CHROME_OS"
DEVICE_PROTECTION = "DEVICE_PROTECTION"
TERMS_STATUSES = ("TERMS_STATUS_NOT_ACCEPTED", "TERMS_STATUS_ACCEPTED", "TERMS_STATUS_STALE")

# DeviceIdentifier's fields (the discovery document's names).
IDENTIFIER_FIELDS = (
    "chromeOsAttestedDeviceId",
    "deviceType",
    "imei",
    "imei2",
    "manufacturer",
    "meid",
    "meid2",
    "model",
    "serialNumber",
)


@dataclass(slots=True)
class Company:
    """A customer or vendor company of the reseller.

    ``owner_emails`` is input-only in the discovery document; ``to_json`` returns it only when
    asked to (see ``Emulator(echo_input_only=...)``).
    """

    company_id: int
    company_name: str
    owner_emails: tuple[str, ...] = ()
    admin_emails: tuple[str, ...] = ()
    terms_status: str = "TERMS_STATUS_ACCEPTED"
    google_workspace_customer_id: str | None = None
    removed: bool = False

    def to_json(self, name: str, *, echo_input_only: bool = True) -> JsonObject:
        """Return the Company JSON with resource ``name``.

        Args:
            name: the resource name, e.g. ``partners/1/customers/2``.
            echo_input_only: include ``ownerEmails`` (input-only in the API) when True.

        Returns:
            The Company as the API encodes it.
        """
        out: JsonObject = {
            "companyId": str(self.company_id),
            "companyName": self.company_name,
            "name": name,
        }
        if self.admin_emails:
            out["adminEmails"] = list(self.admin_emails)
        if echo_input_only and self.owner_emails:
            out["ownerEmails"] = list(self.owner_emails)
        if self.terms_status:
            out["termsStatus"] = self.terms_status
        if self.google_workspace_customer_id:
            out["googleWorkspaceAccount"] = {"customerId": self.google_workspace_customer_id}
        return out


@dataclass(slots=True)
class Vendor:
    """A vendor (sub-reseller) of the partner and its customers."""

    company_id: int
    company_name: str
    customers: list[Company] = field(default_factory=list)

    def to_json(self, partner_id: int) -> JsonObject:
        """Return the vendor as ``vendors.list`` reports it (name, companyId, companyName)."""
        return {
            "companyId": str(self.company_id),
            "companyName": self.company_name,
            "name": f"partners/{partner_id}/vendors/{self.company_id}",
        }


@dataclass(frozen=True, slots=True)
class Claim:
    """One provisioning claim on a device (a DeviceClaim).

    ``reseller_id`` is the partner that made the claim; None means the partner that registered
    the device (``FleetStore.home``), as for every claim of a single-partner fleet.
    """

    section_type: str
    owner_company_id: int | None = None
    google_workspace_customer_id: str | None = None
    vacation_mode_start_time: str | None = None
    vacation_mode_expire_time: str | None = None
    additional_service: str | None = None
    reseller_id: int | None = None

    def to_json(self, reseller_id: int) -> JsonObject:
        """Return the DeviceClaim JSON; ``reseller_id`` is the device's registering partner."""
        out: JsonObject = {"sectionType": self.section_type}
        if self.owner_company_id is not None:
            out["ownerCompanyId"] = str(self.owner_company_id)
        if self.google_workspace_customer_id:
            out["googleWorkspaceCustomerId"] = self.google_workspace_customer_id
        out["resellerId"] = str(reseller_id if self.reseller_id is None else self.reseller_id)
        if self.vacation_mode_start_time:
            out["vacationModeStartTime"] = self.vacation_mode_start_time
        if self.vacation_mode_expire_time:
            out["vacationModeExpireTime"] = self.vacation_mode_expire_time
        if self.additional_service:
            out["additionalService"] = self.additional_service
        return out


def sort_claims(claims: list[Claim] | tuple[Claim, ...]) -> tuple[Claim, ...]:
    """Return ``claims`` in section-enum order (SIM lock before zero-touch)."""
    return tuple(sorted(claims, key=lambda c: SECTION_TYPES.index(c.section_type)))

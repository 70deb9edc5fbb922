"""``Fleet``: the emulated reseller's inventory plus the mutations tests make between syncs.

Mutations change the fleet the way the real service would show it: a moved device is one
unclaim plus one claim (vacation mode and additional services do not follow it), metadata
updates replace the whole map (as ``partners.devices.metadata`` does), and a removed customer
leaves its devices unclaimed. In a fleet of several partners, a claim is made by one partner for
one of its customers, and ``transfer_device`` hands a device to another partner.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import replace

from inventory.emulator.names import MODELS, PHONE
from inventory.emulator.records import (
    DEVICE_TYPE_ANDROID,
    DEVICE_TYPE_CHROME_OS,
    IDENTIFIER_FIELDS,
    SECTION_TYPES,
    SECTION_ZERO_TOUCH,
    Claim,
    Company,
    JsonObject,
    sort_claims,
)
from inventory.emulator.store import FleetStore

__all__ = ["Fleet"]


def _check_section(section_type: str) -> None:
    if section_type not in SECTION_TYPES:
        raise ValueError(f"section_type must be one of {SECTION_TYPES}, not {section_type!r}")


class Fleet(FleetStore):
    """A reseller's devices, customers and vendors; build one with ``generate_fleet``.

    Every mutation raises ``KeyError`` for an unknown (or removed) device or customer and
    ``ValueError`` for a change the API would refuse. ``partner_id`` arguments pick one partner
    of a fleet of several; None means the first (``fleet.partner_id``) where a partner is needed.
    """

    # ------------------------------------------------------------------------ customers
    def current_customers(self, partner_id: int | None = None) -> list[Company]:
        """Return the customers ``customers.list`` shows (to ``partner_id``; None: to any)."""
        return [
            c
            for c in self.customers
            if not c.removed
            and (partner_id is None or partner_id in self.partners_of(c.company_id))
        ]

    def customer_json(
        self, company: Company, *, echo_input_only: bool = True, partner_id: int | None = None
    ) -> JsonObject:
        """Return a customer's Company JSON as ``customers.list`` (of ``partner_id``) encodes it."""
        pid = self.partners_of(company.company_id)[0] if partner_id is None else partner_id
        name = f"partners/{pid}/customers/{company.company_id}"
        return company.to_json(name, echo_input_only=echo_input_only)

    def require_customer(self, company_id: int, partner_id: int | None = None) -> Company:
        """Return the current customer ``company_id`` (of ``partner_id``), or a customer of
        one of its vendors (a reseller registers devices for those too); ``KeyError`` if
        none."""
        company = self.company(company_id, partner_id) or self._vendor_customer(
            company_id, partner_id
        )
        if company is None:
            of = "" if partner_id is None else f" of partner {partner_id}"
            raise KeyError(f"no customer with companyId {company_id}{of}")
        return company

    def _vendor_customer(self, company_id: int, partner_id: int | None) -> Company | None:
        partners = self.partner_ids if partner_id is None else (partner_id,)
        for pid in partners:
            for vendor in self.vendors_of(pid):
                for company in vendor.customers:
                    if company.company_id == company_id and not company.removed:
                        return company
        return None

    def require_partner(self, partner_id: int | None) -> int:
        """Return ``partner_id`` (None: the first partner); ``KeyError`` for a foreign one."""
        if partner_id is None:
            return self.partner_id
        if partner_id not in self.partner_ids:
            raise KeyError(f"no partner {partner_id} in this fleet")
        return partner_id

    def add_customer(
        self,
        company_name: str,
        *,
        owner_emails: tuple[str, ...] = (),
        admin_emails: tuple[str, ...] = (),
        google_workspace_customer_id: str | None = None,
        terms_status: str = "TERMS_STATUS_NOT_ACCEPTED",
        partner_id: int | None = None,
    ) -> int:
        """Add a customer (a new companyId above every other) of ``partner_id`` (None: the
        first partner) and return its companyId."""
        pid = self.require_partner(partner_id)
        company_id = max((c.company_id for c in self.customers), default=1_000_000_000) + 13
        company = Company(
            company_id,
            company_name,
            owner_emails or (f"owner@{company_id}.example.com",),
            admin_emails,
            terms_status,
            google_workspace_customer_id,
        )
        self._company_index[company_id] = len(self.customers)
        self.customers.append(company)
        if pid != self.partner_id:
            self._members[company_id] = (pid,)
        self.version += 1
        return company_id

    def remove_customer(self, company_id: int) -> None:
        """Remove a customer from every ``customers.list`` and drop every claim it owns."""
        company = self.require_customer(company_id)
        for section in SECTION_TYPES:
            for pid in self.partner_ids:
                arr = self.index.get((section, pid, "c", company_id))
                for i in list(arr or ()):
                    kept = [c for c in self.claims(i) if c.owner_company_id != company_id]
                    self._set_claims(i, kept)
        company.removed = True
        self.version += 1

    # -------------------------------------------------------------------------- devices
    def require(self, device_id: int) -> int:
        """Return the index of current device ``device_id``; raise ``KeyError`` if none."""
        i = self.index_of(device_id)
        if i is None:
            raise KeyError(f"no device with deviceId {device_id}")
        return i

    def _set_claims(self, i: int, claims: list[Claim]) -> None:
        new = sort_claims(claims)
        self._reindex(i, self.claims(i), new)
        self._claims_over[i] = new
        self.version += 1

    def _new_claim(
        self, i: int, company_id: int, section_type: str, partner_id: int | None = None
    ) -> Claim:
        """A claim by ``partner_id`` (None: the section's current claimant, else the device's
        home partner) for its customer ``company_id``."""
        home = self.home(i)
        if partner_id is None:
            current = self.section_claim(i, section_type)
            if current is not None and current.reseller_id is not None:
                partner_id = current.reseller_id
            else:
                partner_id = home
        company = self.require_customer(company_id, self.require_partner(partner_id))
        chrome = self.identifiers(i).get("deviceType") == DEVICE_TYPE_CHROME_OS
        gws = company.google_workspace_customer_id if chrome else None
        return Claim(
            section_type,
            company.company_id,
            gws if section_type == SECTION_ZERO_TOUCH else None,
            reseller_id=None if partner_id == home else partner_id,
        )

    def move_device(
        self,
        device_id: int,
        company_id: int,
        section_type: str = SECTION_ZERO_TOUCH,
        partner_id: int | None = None,
    ) -> None:
        """Give device ``device_id``'s ``section_type`` claim to customer ``company_id`` (of
        ``partner_id``; None: of the partner holding the claim, else the device's own)."""
        _check_section(section_type)
        i = self.require(device_id)
        new = self._new_claim(i, company_id, section_type, partner_id)
        others = [c for c in self.claims(i) if c.section_type != section_type]
        self._set_claims(i, [*others, new])

    def claim(
        self,
        device_id: int,
        company_id: int,
        section_type: str = SECTION_ZERO_TOUCH,
        partner_id: int | None = None,
    ) -> None:
        """Claim an unclaimed (in ``section_type``) device for customer ``company_id`` of
        ``partner_id`` (None: the partner that registered the device)."""
        _check_section(section_type)
        i = self.require(device_id)
        if self.section_claim(i, section_type) is not None:
            raise ValueError(f"device {device_id} already has a {section_type} claim")
        new = self._new_claim(i, company_id, section_type, partner_id)
        self._set_claims(i, [*self.claims(i), new])

    def transfer_device(
        self,
        device_id: int,
        to_partner_id: int,
        company_id: int,
        section_type: str = SECTION_ZERO_TOUCH,
    ) -> None:
        """Hand device ``device_id`` to another partner: its ``section_type`` claim becomes
        ``to_partner_id``'s, for that partner's customer ``company_id``, and the device counts
        as registered by ``to_partner_id``. Claims the old partner holds in other sections stay
        (so it still knows the device); without them it no longer sees the device at all."""
        _check_section(section_type)
        i = self.require(device_id)
        home = self.home(i)
        new = self._new_claim(i, company_id, section_type, to_partner_id)
        # claims keep the partner that made them, whoever registers the device from now on
        others = [
            c if c.reseller_id is not None else replace(c, reseller_id=home)
            for c in self.claims(i)
            if c.section_type != section_type
        ]
        self._set_claims(i, [*others, replace(new, reseller_id=to_partner_id)])
        self._home_over[i] = to_partner_id

    def unclaim(self, device_id: int, section_type: str = SECTION_ZERO_TOUCH) -> None:
        """Remove device ``device_id``'s ``section_type`` claim."""
        _check_section(section_type)
        i = self.require(device_id)
        claims = self.claims(i)
        if not any(c.section_type == section_type for c in claims):
            raise ValueError(f"device {device_id} has no {section_type} claim")
        self._set_claims(i, [c for c in claims if c.section_type != section_type])

    def set_metadata(self, device_id: int, entries: Mapping[str, str]) -> None:
        """Replace device ``device_id``'s metadata entries (an empty mapping clears them)."""
        i = self.require(device_id)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in entries.items()):
            raise ValueError("metadata keys and values must be strings")
        self._meta_over[i] = dict(entries)
        self.version += 1

    def add_device(
        self,
        *,
        company_id: int | None = None,
        identifiers: Mapping[str, str] | None = None,
        section_type: str = SECTION_ZERO_TOUCH,
        metadata: Mapping[str, str] | None = None,
        google_workspace_customer_id: str | None = None,
        partner_id: int | None = None,
    ) -> int:
        """Register a new device (deviceId above every other) and return its deviceId.

        Args:
            company_id: claim it for this customer in ``section_type``; None leaves it unclaimed
                (unless ``google_workspace_customer_id`` is given).
            identifiers: DeviceIdentifier JSON fields; None generates a new Android phone.
            section_type: the section of the claim.
            metadata: metadata entries.
            google_workspace_customer_id: claim it (zero-touch) for this Workspace account.
            partner_id: the partner that registers (and claims) it; None: the first.

        Returns:
            The new device's deviceId.
        """
        _check_section(section_type)
        pid = self.require_partner(partner_id)
        company = None if company_id is None else self.require_customer(company_id, pid)
        i = self._n_total
        ident = dict(identifiers) if identifiers is not None else self._new_phone(i)
        unknown = set(ident) - set(IDENTIFIER_FIELDS)
        if unknown or not all(isinstance(v, str) and v for v in ident.values()):
            raise ValueError(f"bad identifiers {ident!r}: unknown fields {sorted(unknown)}")
        self._n_total += 1
        if pid != self.partner_id:
            self._home_over[i] = pid
        self._ident_over[i] = ident
        for field, group in (
            ("imei", "imei"),
            ("imei2", "imei"),
            ("meid", "meid"),
            ("meid2", "meid"),
            ("serialNumber", "serial"),
            ("chromeOsAttestedDeviceId", "attested"),
        ):
            if field in ident:
                value = ident[field].strip()
                value = value.upper() if group in ("meid", "serial") else value
                self._ident_lookup.setdefault((group, value), set()).add(i)
        claims: list[Claim] = []
        if company is not None:
            claims.append(self._new_claim(i, company.company_id, section_type, pid))
            if google_workspace_customer_id and section_type == SECTION_ZERO_TOUCH:
                claims[-1] = Claim(section_type, company.company_id, google_workspace_customer_id)
        elif google_workspace_customer_id:
            claims.append(Claim(SECTION_ZERO_TOUCH, None, google_workspace_customer_id))
        self._claims_over[i] = ()
        self._set_claims(i, claims)
        if metadata:
            self._meta_over[i] = dict(metadata)
        return self.device_id(i)

    def _new_phone(self, i: int) -> dict[str, str]:
        phones = [m for m, spec in enumerate(MODELS) if spec.kind == PHONE]
        m = random.Random(self.seed * 1_000_003 + i).choice(phones)
        return {
            "imei": self._codec.imei_of(i, 0, m),
            "deviceType": DEVICE_TYPE_ANDROID,
            "manufacturer": MODELS[m].manufacturer,
            "model": MODELS[m].model,
        }

    def remove_device(self, device_id: int) -> None:
        """Delete device ``device_id``: it vanishes from every listing and lookup."""
        i = self.require(device_id)
        self._reindex(i, self.claims(i), ())
        self._removed.add(i)
        self.version += 1

    # ------------------------------------------------------------------ identifier lookup
    def lookup(self, group: str, value: str) -> set[int]:
        """Return current devices whose identifier ``group`` equals ``value``.

        Args:
            group: ``imei`` (imei or imei2), ``meid`` (meid or meid2), ``serial`` (any case),
                or ``attested`` (chromeOsAttestedDeviceId).
            value: the identifier as sent.

        Returns:
            Matching device indexes (manufacturer/model are not checked here).
        """
        norm = value.strip()
        if group in ("meid", "serial"):
            norm = norm.upper()
        found = {i for i in self._ident_lookup.get((group, norm), ()) if i not in self._removed}
        codec = self._codec
        if group in ("imei", "meid"):
            decoded = codec.decode_imei(norm) if group == "imei" else codec.decode_meid(norm)
            if decoded and self._is_generated(decoded[0]):
                i = decoded[0]
                ident = self.identifiers(i)
                if norm in (ident.get(group, "").upper(), ident.get(group + "2", "").upper()):
                    found.add(i)
        elif group == "serial":
            for m, spec in enumerate(MODELS):
                i2 = codec.decode_serial(norm, spec.serial_prefix)
                if (
                    i2 is not None
                    and self._is_generated(i2)
                    and self._models[i2] == m
                    and self.identifiers(i2).get("serialNumber", "").upper() == norm
                ):
                    found.add(i2)
        elif group == "attested":
            i3 = codec.decode_attested(norm)
            if (
                i3 is not None
                and self._is_generated(i3)
                and self.identifiers(i3).get("chromeOsAttestedDeviceId") == norm
            ):
                found.add(i3)
        return found

    def _is_generated(self, i: int) -> bool:
        return 0 <= i < self._n_base and i not in self._removed and i not in self._ident_over

    # ------------------------------------------------------------------------ iteration
    def iter_devices(self, partner_id: int | None = None) -> Iterator[JsonObject]:
        """Yield every current device's JSON, deviceId ascending (claimed or not).

        Args:
            partner_id: only the devices this partner knows, named as it sees them; None: all.
        """
        if partner_id is None:
            return (self.device_json(i) for i in self.iter_indexes())
        return (
            self.device_json(i, partner_id)
            for i in self.iter_indexes()
            if self.knows(i, partner_id)
        )

    def iter_customers(
        self, *, echo_input_only: bool = True, partner_id: int | None = None
    ) -> Iterator[JsonObject]:
        """Yield every current customer's Company JSON (of ``partner_id``), companyId ascending."""
        return (
            self.customer_json(c, echo_input_only=echo_input_only, partner_id=partner_id)
            for c in self.current_customers(partner_id)
        )

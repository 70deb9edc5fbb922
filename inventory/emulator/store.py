"""The emulated reseller's devices and customers, stored compactly, with owner indexes.

A generated device is an index ``i``. Per index the fleet stores one byte (its model) and two
int32s (its zero-touch and SIM-lock owners); identifiers, flags, vacation mode and metadata are
derived from ``(seed, i)`` on demand (``codec.py``, ``derive.py``). Mutations are kept as
per-device overrides, and devices added later get indexes past the generated ones, so device-ID
order is index order.

Owner codes in ``zt``/``sl``: ``k >= 0`` is ``customers[k]``; ``-1`` no claim; ``-2 - g`` (``zt``
only) a claim by Google Workspace account ``workspace_accounts[g]`` alone (no ownerCompanyId).

One fleet may serve several reseller partners (``PartnerLayout``): each partner's generated
devices are one block of indexes, a customer is shown to the partners it is a member of, and a
claim carries the partner that made it (``Claim.reseller_id``; None: the device's ``home``
partner, the one that registered it). A partner knows a device it registered or holds a claim on.

``index`` (``index.OwnerIndex``) maps ``(section, partner, "c", companyId)`` and
``(section, partner, "g", workspaceId)`` to the sorted indexes of the devices claimed so, so
findByOwner pages cost O(page), not O(fleet).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from inventory.emulator.codec import IdentifierCodec, mix64
from inventory.emulator.derive import ORDER_KEY, android_zt_claim, metadata, order_number
from inventory.emulator.index import OwnerIndex, claim_keys
from inventory.emulator.names import CDMA, CHROME, MODELS, PHONE, WIFI
from inventory.emulator.records import (
    DEVICE_TYPE_ANDROID,
    DEVICE_TYPE_CHROME_OS,
    SECTION_SIM_LOCK,
    SECTION_ZERO_TOUCH,
    Claim,
    Company,
    JsonObject,
    Vendor,
)

DEVICE_ID_STRIDE = 7
LOW_DEVICE_BASE = 30_000_000_000  # ids like the real service's 11-digit ones...
HIGH_DEVICE_BASE = 2**53 + 1_000_003  # ...and ids a float64 cannot hold exactly
_KINDS = [m.kind for m in MODELS]


@dataclass(frozen=True)
class PartnerLayout:
    """How one fleet's devices, customers and vendors divide among reseller partners.

    Attributes:
        ids: the partner ids; the first is ``fleet.partner_id``.
        starts: per partner, the first index of its block of generated devices (the first is 0).
        members: companyId -> the partners whose customers.list shows it (absent: the first).
        vendors: partner id -> its vendors.
    """

    ids: tuple[int, ...]
    starts: tuple[int, ...] = (0,)
    members: dict[int, tuple[int, ...]] = field(default_factory=dict)
    vendors: dict[int, list[Vendor]] = field(default_factory=dict)


class FleetStore:
    """Storage and queries of a fleet; ``fleet.Fleet`` adds the mutations.

    Args:
        partner_id: the (first) reseller's partner ID.
        seed: the seed every derived value depends on.
        customers: every partner's customers, companyId ascending.
        workspace_accounts: Google Workspace customer IDs that Chrome OS devices are claimed by
            alone (no ownerCompanyId): accounts of no zero-touch customer, and customers' own.
        vendors: the (first) partner's vendors.
        models: per device index, an index into ``names.MODELS``.
        zt: per device index, the zero-touch owner code (module docstring).
        sl: per device index, the SIM-lock owner code.
        partners: the layout of a fleet of several partners (None: one partner, ``partner_id``).
    """

    def __init__(
        self,
        *,
        partner_id: int,
        seed: int,
        customers: list[Company],
        workspace_accounts: list[str],
        vendors: list[Vendor],
        models: bytearray,
        zt: array[int],
        sl: array[int],
        partners: PartnerLayout | None = None,
    ) -> None:
        layout = partners or PartnerLayout((partner_id,))
        if layout.ids[0] != partner_id or len(layout.starts) != len(layout.ids):
            raise ValueError("the layout must list partner_id first and one start per partner")
        self.partner_id = partner_id
        self.partner_ids = layout.ids
        self.seed = seed
        self.customers = customers
        self.workspace_accounts = workspace_accounts
        self.vendors = vendors
        self.version = 0  # bumped by every mutation
        self._starts = layout.starts
        self._members = dict(layout.members)
        self._vendors = {**layout.vendors, partner_id: vendors}
        self._home_over: dict[int, int] = {}  # added or transferred devices
        self._models = models
        self._zt = zt
        self._sl = sl
        self._n_base = len(models)
        self._n_total = self._n_base
        self._n_low = self._n_base * 2 // 5
        self._key = mix64(seed ^ 0x5EED)
        self._codec = IdentifierCodec(seed, len(MODELS))
        self._company_index = {c.company_id: k for k, c in enumerate(customers)}
        self._claims_over: dict[int, tuple[Claim, ...]] = {}
        self._meta_over: dict[int, dict[str, str]] = {}
        self._ident_over: dict[int, dict[str, str]] = {}
        self._ident_lookup: dict[tuple[str, str], set[int]] = {}
        self._removed: set[int] = set()
        self.index = OwnerIndex()
        self._build_index()

    # ----------------------------------------------------------------- identity and order
    @property
    def index_limit(self) -> int:
        """One past the highest device index ever used (removed devices included)."""
        return self._n_total

    def __len__(self) -> int:
        return self._n_total - len(self._removed)

    def device_id(self, i: int) -> int:
        """Return the deviceId of index ``i`` (strictly increasing in ``i``)."""
        jitter = mix64(self._key ^ i) % DEVICE_ID_STRIDE
        if i < self._n_low:
            return LOW_DEVICE_BASE + i * DEVICE_ID_STRIDE + jitter
        return HIGH_DEVICE_BASE + (i - self._n_low) * DEVICE_ID_STRIDE + jitter

    def index_of(self, device_id: int) -> int | None:
        """Return the index of a current device, or None when no such device exists."""
        if device_id >= HIGH_DEVICE_BASE:
            q, r = divmod(device_id - HIGH_DEVICE_BASE, DEVICE_ID_STRIDE)
            i = q + self._n_low
        elif device_id >= LOW_DEVICE_BASE:
            i, r = divmod(device_id - LOW_DEVICE_BASE, DEVICE_ID_STRIDE)
            if i >= self._n_low:
                return None
        else:
            return None
        if i >= self._n_total or i in self._removed:
            return None
        return i if mix64(self._key ^ i) % DEVICE_ID_STRIDE == r else None

    def exists(self, i: int) -> bool:
        """Return True when index ``i`` is a current (not removed) device."""
        return 0 <= i < self._n_total and i not in self._removed

    def iter_indexes(self) -> Iterator[int]:
        """Yield every current device index in deviceId order."""
        removed = self._removed
        return (i for i in range(self._n_total) if i not in removed)

    def company(self, company_id: int, partner_id: int | None = None) -> Company | None:
        """Return the current customer with ``company_id`` (of ``partner_id``), or None."""
        k = self._company_index.get(company_id)
        if k is None or self.customers[k].removed:
            return None
        if partner_id is not None and partner_id not in self.partners_of(company_id):
            return None
        return self.customers[k]

    # ----------------------------------------------------------------------- partners
    def partners_of(self, company_id: int) -> tuple[int, ...]:
        """Return the partners whose customers.list shows customer ``company_id``."""
        return self._members.get(company_id, (self.partner_id,))

    def vendors_of(self, partner_id: int) -> list[Vendor]:
        """Return partner ``partner_id``'s vendors."""
        return self._vendors.get(partner_id, [])

    def home(self, i: int) -> int:
        """Return the partner that registered device ``i``."""
        over = self._home_over.get(i)
        if over is not None:
            return over
        if len(self._starts) == 1 or i >= self._n_base:
            return self.partner_id
        return self.partner_ids[bisect_right(self._starts, i) - 1]

    def knows(self, i: int, partner_id: int) -> bool:
        """Return True when partner ``partner_id`` registered device ``i`` or claimed it."""
        home = self.home(i)
        return home == partner_id or any(
            (home if c.reseller_id is None else c.reseller_id) == partner_id for c in self.claims(i)
        )

    # ------------------------------------------------------------------- derived content
    def _hash(self, i: int) -> int:
        return mix64(self._key ^ (i << 1 | 1))

    def model_of(self, i: int) -> int:
        """Return the ``names.MODELS`` index of a generated device (-1 for an added one)."""
        return self._models[i] if i < self._n_base else -1

    def identifiers(self, i: int) -> dict[str, str]:
        """Return device ``i``'s DeviceIdentifier JSON."""
        given = self._ident_over.get(i)
        if given is not None:
            return dict(given)
        m = self._models[i]
        spec = MODELS[m]
        h = self._hash(i)
        codec = self._codec
        out: dict[str, str] = {}
        if spec.kind == PHONE:
            out["imei"] = codec.imei_of(i, 0, m)
            if h & 1023 < 358:
                out["imei2"] = codec.imei_of(i, 1, m)
        elif spec.kind == CDMA:
            out["meid"] = codec.meid_of(i, 0, m)
            if h & 1023 < 100:
                out["meid2"] = codec.meid_of(i, 1, m)
        if spec.kind in (WIFI, CHROME) or (h >> 10) & 1023 < 410:
            out["serialNumber"] = codec.serial_of(i, spec.serial_prefix)
        if spec.kind == CHROME:
            out["chromeOsAttestedDeviceId"] = codec.attested_of(i)
            out["deviceType"] = DEVICE_TYPE_CHROME_OS
        elif (h >> 20) & 1023 < 880:  # older registrations carry no deviceType
            out["deviceType"] = DEVICE_TYPE_ANDROID
        out["manufacturer"] = spec.manufacturer
        out["model"] = spec.model
        return out

    def claims(self, i: int) -> tuple[Claim, ...]:
        """Return device ``i``'s claims in section-enum order."""
        over = self._claims_over.get(i)
        if over is not None:
            return over
        if i >= self._n_base:
            return ()
        out: list[Claim] = []
        s = self._sl[i]
        if s >= 0:
            out.append(Claim(SECTION_SIM_LOCK, self.customers[s].company_id))
        z = self._zt[i]
        if z >= 0:
            cust = self.customers[z]
            if _KINDS[self._models[i]] == CHROME:
                out.append(
                    Claim(SECTION_ZERO_TOUCH, cust.company_id, cust.google_workspace_customer_id)
                )
            else:
                out.append(self._android_zt_claim(i, cust.company_id))
        elif z <= -2:
            out.append(Claim(SECTION_ZERO_TOUCH, None, self.workspace_accounts[-2 - z]))
        return tuple(out)

    def _android_zt_claim(self, i: int, company_id: int) -> Claim:
        return android_zt_claim(self._hash(i), company_id)

    def metadata(self, i: int) -> dict[str, str]:
        """Return device ``i``'s metadata entries (often none; sometimes dozens, long, unicode;
        a generated device of a zero-touch customer often has its ``ordernumber``)."""
        over = self._meta_over.get(i)
        if over is not None:
            return dict(over)
        if i >= self._n_base:
            return {}
        h = self._hash(i)
        out = metadata(h)
        z = self._zt[i]
        order = order_number(h, z) if z >= 0 else None
        if order is not None:
            out[ORDER_KEY] = order
        return out

    def device_json(self, i: int, partner_id: int | None = None) -> JsonObject:
        """Return device ``i`` exactly as the API encodes a Device for ``partner_id``.

        Args:
            i: the device index.
            partner_id: the partner asking (its id is in ``name``); None: the device's home.
        """
        did = self.device_id(i)
        out: JsonObject = {"deviceId": str(did)}
        claims = self.claims(i)
        home = self.home(i)
        if claims:
            out["claims"] = [c.to_json(home) for c in claims]
        out["deviceIdentifier"] = self.identifiers(i)
        meta = self.metadata(i)
        if meta:
            out["deviceMetadata"] = {"entries": meta}
        out["name"] = f"partners/{home if partner_id is None else partner_id}/devices/{did}"
        return out

    # -------------------------------------------------------------------- owner indexes
    def _blocks(self) -> Iterator[tuple[int, int, int]]:
        """Yield ``(start, end, partner)`` for each partner's block of generated devices."""
        ends = [*self._starts[1:], self._n_base]
        return zip(self._starts, ends, self.partner_ids, strict=True)

    def block(self, partner_id: int) -> range:
        """Return the indexes of the devices generated for ``partner_id``."""
        for start, end, pid in self._blocks():
            if pid == partner_id:
                return range(start, end)
        return range(0)

    def _build_index(self) -> None:
        customers, accounts, models = self.customers, self.workspace_accounts, self._models
        arrays = self.index.arrays
        for start, end, pid in self._blocks():
            for section, codes in ((SECTION_ZERO_TOUCH, self._zt), (SECTION_SIM_LOCK, self._sl)):
                owned: list[array[int]] = [array("I") for _ in customers]
                add = [a.append for a in owned]
                for i, z in enumerate(codes[start:end], start):
                    if z >= 0:
                        add[z](i)
                for k, c in enumerate(customers):
                    if owned[k]:
                        arrays[(section, pid, "c", c.company_id)] = owned[k]
        chrome: list[int] = []  # Chrome OS devices, found at C speed with bytearray.find
        for m, spec in enumerate(MODELS):
            if spec.kind == CHROME:
                pos = models.find(m)
                while pos >= 0:
                    chrome.append(pos)
                    pos = models.find(m, pos + 1)
        for i in sorted(chrome):
            z = self._zt[i]
            gws = customers[z].google_workspace_customer_id if z >= 0 else None
            if z <= -2:
                gws = accounts[-2 - z]
            if gws:
                key = (SECTION_ZERO_TOUCH, self.home(i), "g", gws)
                arrays.setdefault(key, array("I")).append(i)

    def _reindex(self, i: int, old: Iterable[Claim], new: Iterable[Claim]) -> None:
        home = self.home(i)
        self.index.replace(i, list(claim_keys(old, home)), list(claim_keys(new, home)))

    def owner_lists(
        self,
        section: str,
        company_ids: Iterable[int],
        workspace_ids: Iterable[str],
        partner_id: int | None = None,
    ) -> list[array[int]]:
        """Return the sorted index arrays of devices claimed in ``section`` by these owners.

        Args:
            section: the section type.
            company_ids: companies (customers).
            workspace_ids: Google Workspace customer ids.
            partner_id: the partner whose claims count (None: the first).
        """
        partner = self.partner_id if partner_id is None else partner_id
        return self.index.lists(section, partner, company_ids, workspace_ids)

    def section_claim(self, i: int, section: str) -> Claim | None:
        """Return device ``i``'s claim in ``section`` (a device has at most one), or None."""
        return next((c for c in self.claims(i) if c.section_type == section), None)

    def count_owned(
        self,
        section: str,
        company_ids: set[int],
        workspace_ids: set[str],
        partner_id: int | None = None,
    ) -> int:
        """Count distinct devices claimed in ``section`` by any of these owners."""
        total = sum(len(a) for a in self.owner_lists(section, company_ids, [], partner_id))
        for arr in self.owner_lists(section, [], workspace_ids, partner_id):
            total += len(arr)
            if company_ids:  # a claim can name both a company and a Workspace account
                for i in arr:
                    claim = self.section_claim(i, section)
                    if claim is not None and claim.owner_company_id in company_ids:
                        total -= 1
        return total

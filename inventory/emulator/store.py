"""The emulated reseller's devices and customers, stored compactly, with owner indexes.

A generated device is an index ``i``. Per index the fleet stores one byte (its model) and two
int32s (its zero-touch and SIM-lock owners); identifiers, flags, vacation mode and metadata are
derived from ``(seed, i)`` on demand (``codec.py``). Mutations are kept as per-device overrides,
and devices added later get indexes past the generated ones, so device-ID order is index order.

Owner codes in ``zt``/``sl``: ``k >= 0`` is ``customers[k]``; ``-1`` no claim; ``-2 - g`` (``zt``
only) a claim by Google Workspace account ``workspace_accounts[g]`` alone (no ownerCompanyId).

``_index`` maps ``(section, "c", companyId)`` and ``(section, "g", workspaceId)`` to the sorted
indexes of the devices claimed so, so findByOwner pages cost O(page), not O(fleet).
"""

from __future__ import annotations

import heapq
import random
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from inventory.emulator.codec import IdentifierCodec, mix64
from inventory.emulator.names import (
    CDMA,
    CHROME,
    LONG_VALUE_UNIT,
    METADATA_KEYS,
    METADATA_VALUES,
    MODELS,
    PHONE,
    WIFI,
)
from inventory.emulator.records import (
    DEVICE_PROTECTION,
    DEVICE_TYPE_ANDROID,
    DEVICE_TYPE_CHROME_OS,
    SECTION_ZERO_TOUCH,
    Claim,
    Company,
    JsonObject,
    Vendor,
)

DEVICE_ID_STRIDE = 7
LOW_DEVICE_BASE = 30_000_000_000  # ids like the real service's 11-digit ones...
HIGH_DEVICE_BASE = 2**53 + 1_000_003  # ...and ids a float64 cannot hold exactly
_VACATION_EPOCH = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
_KINDS = [m.kind for m in MODELS]

IndexKey = tuple[str, str, int | str]


def rfc3339(seconds: int, millis: int = 0) -> str:
    """Format a UTC Unix time as RFC 3339 with a ``Z``, with milliseconds only when nonzero."""
    text = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


class FleetStore:
    """Storage and queries of a fleet; ``fleet.Fleet`` adds the mutations.

    Args:
        partner_id: the reseller's partner ID (also every claim's resellerId).
        seed: the seed every derived value depends on.
        customers: the partner's customers, companyId ascending.
        workspace_accounts: Google Workspace customer IDs that own Chrome OS devices without a
            zero-touch customer of their own.
        vendors: the partner's vendors.
        models: per device index, an index into ``names.MODELS``.
        zt: per device index, the zero-touch owner code (module docstring).
        sl: per device index, the SIM-lock owner code.
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
    ) -> None:
        self.partner_id = partner_id
        self.seed = seed
        self.customers = customers
        self.workspace_accounts = workspace_accounts
        self.vendors = vendors
        self.version = 0  # bumped by every mutation
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
        self._index: dict[IndexKey, array[int]] = {}
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

    def company(self, company_id: int) -> Company | None:
        """Return the current customer with ``company_id``, or None."""
        k = self._company_index.get(company_id)
        if k is None or self.customers[k].removed:
            return None
        return self.customers[k]

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
            out.append(Claim("SECTION_TYPE_SIM_LOCK", self.customers[s].company_id))
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
        h = self._hash(i)
        start = expire = service = None
        if (h >> 30) & 1023 < 12:
            h2 = mix64(h)
            begin = _VACATION_EPOCH + h2 % (540 * 86400)
            start = rfc3339(begin, (h2 >> 40) % 1000 if (h2 >> 38) & 1 else 0)
            expire = rfc3339(begin + (30 + (h2 >> 20) % 150) * 86400)
        if (h >> 40) & 1023 < 25:
            service = DEVICE_PROTECTION
        return Claim(SECTION_ZERO_TOUCH, company_id, None, start, expire, service)

    def metadata(self, i: int) -> dict[str, str]:
        """Return device ``i``'s metadata entries (often none; sometimes dozens, long, unicode)."""
        over = self._meta_over.get(i)
        if over is not None:
            return dict(over)
        if i >= self._n_base:
            return {}
        h = self._hash(i)
        c = (h >> 50) & 1023
        if c < 460:
            return {}
        n = (
            1 + c % 2
            if c < 770
            else 3 + c % 4
            if c < 945
            else 7 + c % 9
            if c < 1015
            else 16 + c % 25
        )
        rng = random.Random(h)
        keys = rng.sample(METADATA_KEYS, min(n, len(METADATA_KEYS)))
        keys += [f"custom_field_{k}" for k in range(n - len(keys))]
        out: dict[str, str] = {}
        for key in keys:
            roll = rng.random()
            if key == "asset_tag":
                out[key] = f"AT-{rng.randrange(10**6):06d}"
            elif roll < 0.04:
                out[key] = LONG_VALUE_UNIT * rng.randint(8, 60)
            else:
                out[key] = rng.choice(METADATA_VALUES)
        return out

    def device_json(self, i: int) -> JsonObject:
        """Return device ``i`` exactly as the API encodes a Device."""
        did = self.device_id(i)
        out: JsonObject = {"deviceId": str(did)}
        claims = self.claims(i)
        if claims:
            pid = self.partner_id
            out["claims"] = [c.to_json(pid) for c in claims]
        out["deviceIdentifier"] = self.identifiers(i)
        meta = self.metadata(i)
        if meta:
            out["deviceMetadata"] = {"entries": meta}
        out["name"] = f"partners/{self.partner_id}/devices/{did}"
        return out

    # -------------------------------------------------------------------- owner indexes
    def _build_index(self) -> None:
        customers, accounts, models = self.customers, self.workspace_accounts, self._models
        zc: list[array[int]] = [array("I") for _ in customers]
        sc: list[array[int]] = [array("I") for _ in customers]
        zg: dict[str, array[int]] = {}
        z_add = [a.append for a in zc]
        for i, z in enumerate(self._zt):
            if z >= 0:
                z_add[z](i)
        s_add = [a.append for a in sc]
        for i, s in enumerate(self._sl):
            if s >= 0:
                s_add[s](i)
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
                zg.setdefault(gws, array("I")).append(i)
        for k, c in enumerate(customers):
            if zc[k]:
                self._index[(SECTION_ZERO_TOUCH, "c", c.company_id)] = zc[k]
            if sc[k]:
                self._index[("SECTION_TYPE_SIM_LOCK", "c", c.company_id)] = sc[k]
        for gws, arr in zg.items():
            self._index[(SECTION_ZERO_TOUCH, "g", gws)] = arr

    @staticmethod
    def _claim_keys(claims: Iterable[Claim]) -> Iterator[IndexKey]:
        for c in claims:
            if c.owner_company_id is not None:
                yield (c.section_type, "c", c.owner_company_id)
            if c.google_workspace_customer_id:
                yield (c.section_type, "g", c.google_workspace_customer_id)

    def _reindex(self, i: int, old: Iterable[Claim], new: Iterable[Claim]) -> None:
        for key in self._claim_keys(old):
            arr = self._index.get(key)
            if arr is not None:
                pos = bisect_left(arr, i)
                if pos < len(arr) and arr[pos] == i:
                    del arr[pos]
        for key in self._claim_keys(new):
            arr = self._index.setdefault(key, array("I"))
            pos = bisect_left(arr, i)
            if pos == len(arr) or arr[pos] != i:
                arr.insert(pos, i)

    def owner_lists(
        self, section: str, company_ids: Iterable[int], workspace_ids: Iterable[str]
    ) -> list[array[int]]:
        """Return the sorted index arrays of devices claimed in ``section`` by these owners."""
        keys: list[IndexKey] = [(section, "c", c) for c in set(company_ids)]
        keys += [(section, "g", g) for g in set(workspace_ids)]
        return [arr for key in keys if (arr := self._index.get(key))]

    @staticmethod
    def merge_after(lists: list[array[int]], after: int, limit: int) -> list[int]:
        """Return up to ``limit`` distinct indexes above ``after`` from sorted ``lists``."""
        heap = []
        for n, arr in enumerate(lists):
            pos = bisect_right(arr, after)
            if pos < len(arr):
                heap.append((arr[pos], n, pos))
        heapq.heapify(heap)
        out: list[int] = []
        while heap and len(out) < limit:
            value, n, pos = heap[0]
            if not out or out[-1] != value:
                out.append(value)
            arr = lists[n]
            if pos + 1 < len(arr):
                heapq.heapreplace(heap, (arr[pos + 1], n, pos + 1))
            else:
                heapq.heappop(heap)
        return out

    def count_owned(self, section: str, company_ids: set[int], workspace_ids: set[str]) -> int:
        """Count distinct devices claimed in ``section`` by any of these owners."""
        total = sum(len(a) for a in self.owner_lists(section, company_ids, []))
        for arr in self.owner_lists(section, [], workspace_ids):
            total += len(arr)
            if company_ids:  # a claim can name both a company and a Workspace account
                for i in arr:
                    for c in self.claims(i):
                        if c.section_type == section and c.owner_company_id in company_ids:
                            total -= 1
        return total

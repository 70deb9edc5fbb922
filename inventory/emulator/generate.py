"""``generate_fleet``: a deterministic, realistic reseller inventory for a seed.

Shape of a generated fleet (fractions are of devices):

- customers with company names, owner/admin emails, a terms status; ~30% have a Google
  Workspace account. Devices spread over customers by a Zipf-like law (a few big customers,
  many small ones) and one customer owns nothing, when there are three or more.
- ~3% unclaimed devices (only findByIdentifier and devices.get see them); ~8% of Android
  devices also carry a SIM-lock claim and ~2% only a SIM-lock claim.
- Chrome OS devices (by model weight, ~8%) are claimed for a customer's Workspace account
  (the claim names both) or for a standalone Workspace account (no ownerCompanyId).
- Identifiers, vacation mode, DEVICE_PROTECTION and metadata are derived per device
  (``store.py``). Device IDs and company IDs run both below and above 2**53.
"""

from __future__ import annotations

import random
import unicodedata
from array import array
from collections.abc import Sequence

from inventory.emulator.fleet import Fleet
from inventory.emulator.names import (
    CHROME,
    COMPANY_CORE,
    COMPANY_FIRST,
    COMPANY_SUFFIX,
    FIRST_NAMES,
    LAST_NAMES,
    MODELS,
    ROLE_MAILBOXES,
    TLDS,
)
from inventory.emulator.records import TERMS_STATUSES, Company, Vendor

COMPANY_ID_STRIDE = 9_973
LOW_COMPANY_BASE = 1_200_000_000
HIGH_COMPANY_BASE = 2**53 + 7_000_001
_WORKSPACE_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = "".join(ch if ch.isalnum() else " " for ch in ascii_text.lower()).split()
    return "-".join(words)


def _workspace_id(rng: random.Random) -> str:
    value = rng.getrandbits(40)
    chars = []
    for _ in range(7):
        value, rem = divmod(value, 36)
        chars.append(_WORKSPACE_CHARS[rem])
    return "C0" + "".join(chars)


def _company_ids(rng: random.Random, count: int, low_share: float = 0.4) -> list[int]:
    n_low = int(count * low_share)
    ids = [LOW_COMPANY_BASE + k * COMPANY_ID_STRIDE + rng.randrange(100) for k in range(n_low)]
    ids += [
        HIGH_COMPANY_BASE + k * COMPANY_ID_STRIDE + rng.randrange(100) for k in range(count - n_low)
    ]
    return ids


def _pick(rng: random.Random, items: Sequence[str]) -> str:
    return items[int(rng.random() * len(items))]


def _companies(rng: random.Random, count: int, workspace_share: float) -> list[Company]:
    names: set[str] = set()
    domains: dict[str, int] = {}
    slugs: dict[str, str] = {}
    out: list[Company] = []
    rand = rng.random
    for company_id in _company_ids(rng, count):
        first, core = _pick(rng, COMPANY_FIRST), _pick(rng, COMPANY_CORE)
        name = f"{first} {core} {_pick(rng, COMPANY_SUFFIX)}".strip()
        if name in names:  # names repeat in real life too, but keep them apart here
            name = f"{name} {len(names)}"
        names.add(name)
        stem = first + " " + core
        slug = slugs.get(stem) or slugs.setdefault(stem, _slug(stem))
        domain = f"{slug}.{_pick(rng, TLDS)}"
        seen = domains.get(domain, 0)
        domains[domain] = seen + 1
        if seen:
            domain = f"{slug}{seen + 1}.{domain.split('.', 1)[1]}"
        owners = tuple(
            f"{_pick(rng, FIRST_NAMES)}.{_pick(rng, LAST_NAMES)}@{domain}"
            for _ in range(2 if rand() < 0.25 else 1)
        )
        n_admins = int(rand() * 4)
        admins = [f"{_pick(rng, ROLE_MAILBOXES)}@{domain}"] if n_admins else []
        admins += [
            f"{_pick(rng, FIRST_NAMES)}.{_pick(rng, LAST_NAMES)}@{domain}"
            for _ in range(n_admins - 1)
        ]
        roll = rand()
        terms = TERMS_STATUSES[0 if roll < 0.1 else 2 if roll < 0.2 else 1]
        gws = _workspace_id(rng) if rand() < workspace_share else None
        out.append(Company(company_id, name, owners, tuple(dict.fromkeys(admins)), terms, gws))
    return out


def _vendors(rng: random.Random, count: int) -> list[Vendor]:
    vendors = []
    for v in range(count):
        name = f"{rng.choice(COMPANY_FIRST)} Mobile Distribution"
        customers = _companies(rng, rng.randint(1, 4), 0.0)
        for k, c in enumerate(customers):  # vendor customers get their own id range
            c.company_id = 9_000_000_000 + 1000 * v + k
        vendors.append(Vendor(800_000_000 + 101 * v, name, customers))
    return vendors


def generate_fleet(
    devices: int = 1000,
    customers: int = 50,
    seed: int = 7,
    partner_id: int = 1234567,
    *,
    skew: float = 1.1,
    weights: Sequence[float] | None = None,
    unclaimed_share: float = 0.03,
    workspace_share: float = 0.3,
    vendors: int = 3,
) -> Fleet:
    """Generate a deterministic fleet: the same arguments always give the same fleet.

    Args:
        devices: number of devices (claimed or not).
        customers: number of customers in ``customers.list``.
        seed: the seed.
        partner_id: the reseller's partner ID.
        skew: Zipf exponent of devices per customer (0 spreads them evenly).
        weights: explicit relative device share per customer (overrides ``skew``; zeros make
            empty customers).
        unclaimed_share: share of devices with no claim at all.
        workspace_share: share of customers with a Google Workspace account.
        vendors: number of vendors (each with 1-4 customers of its own).

    Returns:
        The fleet.

    Raises:
        ValueError: for negative sizes or a ``weights`` list of the wrong length.
    """
    if devices < 0 or customers < 0:
        raise ValueError("devices and customers must not be negative")
    if weights is not None and len(weights) != customers:
        raise ValueError(f"weights has {len(weights)} entries for {customers} customers")
    rng = random.Random(f"zt-emulator:{seed}")
    companies = _companies(rng, customers, workspace_share)
    accounts = sorted({_workspace_id(rng) for _ in range(max(1, customers // 8))})
    if weights is None:
        ranks = list(range(customers))
        rng.shuffle(ranks)
        weights = [1.0 / (r + 1) ** skew for r in ranks]
        if customers >= 3:
            weights[rng.randrange(customers)] = 0.0  # one customer with no devices
    models = bytearray(rng.choices(range(len(MODELS)), [m.weight for m in MODELS], k=devices))
    if customers and sum(weights) > 0:
        zt = array("i", rng.choices(range(customers), weights, k=devices))
    else:
        zt = array("i", [-1]) * devices
    sl = array("i", [-1]) * devices
    with_gws = [
        k for k, c in enumerate(companies) if c.google_workspace_customer_id and weights[k] > 0
    ]
    chrome = [m.kind == CHROME for m in MODELS]
    unclaimed = int(unclaimed_share * 1024)
    getrandbits = rng.getrandbits
    for i in range(devices):
        r = getrandbits(40)
        if r & 1023 < unclaimed:
            zt[i] = -1
            continue
        v = (r >> 10) & 1023
        if chrome[models[i]]:
            owner = zt[i]
            if v >= 700 or not with_gws:
                zt[i] = -2 - (r >> 20) % len(accounts)
            elif owner < 0 or not companies[owner].google_workspace_customer_id:
                zt[i] = with_gws[(r >> 20) % len(with_gws)]
        elif zt[i] < 0:
            continue
        elif v < 82:
            sl[i] = zt[i]
        elif v < 102:
            sl[i] = zt[i]
            zt[i] = -1
    return Fleet(
        partner_id=partner_id,
        seed=seed,
        customers=companies,
        workspace_accounts=accounts,
        vendors=_vendors(rng, vendors),
        models=models,
        zt=zt,
        sl=sl,
    )

"""``generate_fleet``: a deterministic, realistic reseller inventory for a seed.

Shape of a generated fleet (fractions are of devices):

- customers with company names, owner/admin emails, a terms status; ~30% have a Google
  Workspace account. Devices spread over customers by a Zipf-like law (a few big customers,
  many small ones) and one customer owns nothing, when there are three or more.
- ~3% unclaimed devices (only findByIdentifier and devices.get see them); ~8% of Android
  devices also carry a SIM-lock claim and ~2% only a SIM-lock claim.
- Chrome OS devices (by model weight, ~8%; ``chrome_share`` sets it) are claimed for a
  customer's Workspace account: the claim names both (~60%), or the customer's Workspace account
  alone, without ownerCompanyId (~10%); the rest for a standalone Workspace account, of no
  customer (no ownerCompanyId). ``workspace_alone_share`` gives every Chrome OS device to a
  customer's Workspace account instead: that share alone, the rest together with the company.
- Identifiers, vacation mode, DEVICE_PROTECTION and metadata are derived per device
  (``store.py``). Device IDs and company IDs run both below and above 2**53.

``partners=N`` generates one fleet per partner (ids ``partner_id``, ``partner_id + 1``, ...),
each from its own seed (the first from ``seed``, as a single-partner fleet, only its devices'
ids and identifiers differ), with distinct companyIds, and serves them from one ``Fleet``:

- ``shared_customers`` customers of the first partner are customers of every other partner too
  (the same companyId in both customers.lists; each partner claims devices for them);
- ``shared_devices`` devices of each partner's predecessor, claimed there in the zero-touch
  section, also carry a SIM-lock claim by the partner, for one of its own customers: both
  partners know these devices, each claimed in one section.
"""

from __future__ import annotations

import random
import unicodedata
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

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
from inventory.emulator.records import (
    SECTION_SIM_LOCK,
    SECTION_ZERO_TOUCH,
    TERMS_STATUSES,
    Company,
    Vendor,
)
from inventory.emulator.store import PartnerLayout

COMPANY_ID_STRIDE = 9_973
LOW_COMPANY_BASE = 1_200_000_000
HIGH_COMPANY_BASE = 2**53 + 7_000_001
_WORKSPACE_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
MAX_PARTNERS = 80  # partner k's companyIds sit k * 113 above the first's: 80 fit in a stride
_PARTNER_ID_SHIFT = 113


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


def _vendors(rng: random.Random, count: int, nth: int = 0) -> list[Vendor]:
    vendors = []
    for v in range(count):
        name = f"{rng.choice(COMPANY_FIRST)} Mobile Distribution"
        customers = _companies(rng, rng.randint(1, 4), 0.0)
        for k, c in enumerate(customers):  # vendor customers get their own id range
            c.company_id = 9_000_000_000 + 1_000_000 * nth + 1000 * v + k
        vendors.append(Vendor(800_000_000 + 10_000 * nth + 101 * v, name, customers))
    return vendors


@dataclass
class _Part:
    """One partner's generated inventory, before it joins a fleet."""

    companies: list[Company]
    weights: list[float]
    accounts: list[str]  # standalone Workspace accounts, then customers' own
    vendors: list[Vendor]
    models: bytearray
    zt: array[int]
    sl: array[int]


def _part(
    rng: random.Random,
    devices: int,
    customers: int,
    *,
    skew: float,
    weights: Sequence[float] | None,
    unclaimed_share: float,
    workspace_share: float,
    chrome_share: float | None,
    workspace_alone_share: float | None,
    vendors: int,
    nth: int = 0,
    shared: Sequence[Company] = (),
) -> _Part:
    """Generate one partner's inventory; the ``nth`` partner's companyIds are shifted apart,
    and ``shared`` companies replace its first customers."""
    companies = _companies(rng, customers, workspace_share)
    for c in companies:
        c.company_id += nth * _PARTNER_ID_SHIFT
    companies[: len(shared)] = shared
    accounts = sorted({_workspace_id(rng) for _ in range(max(1, customers // 8))})
    if weights is None:
        ranks = list(range(customers))
        rng.shuffle(ranks)
        weights = [1.0 / (r + 1) ** skew for r in ranks]
        if customers >= 3:
            weights[rng.randrange(customers)] = 0.0  # one customer with no devices
    models = bytearray(rng.choices(range(len(MODELS)), _model_weights(chrome_share), k=devices))
    if customers and sum(weights) > 0:
        zt = array("i", rng.choices(range(customers), weights, k=devices))
    else:
        zt = array("i", [-1]) * devices
    sl = array("i", [-1]) * devices
    with_gws = [
        k for k, c in enumerate(companies) if c.google_workspace_customer_id and weights[k] > 0
    ]
    # a customer's own Workspace account, as a claimant alone: code -2 - own[k]
    own = {k: len(accounts) + n for n, k in enumerate(with_gws)}
    standalone = len(accounts)
    accounts += [str(companies[k].google_workspace_customer_id) for k in with_gws]
    chrome = [m.kind == CHROME for m in MODELS]
    unclaimed = int(unclaimed_share * 1024)
    # Chrome OS claims by a draw v in 0..1023: both below `alone`, the customer's Workspace
    # account alone below `standalone`, a standalone Workspace account from there on
    if workspace_alone_share is None:
        alone, standalone_from = 600, 700
    else:
        alone, standalone_from = round((1 - workspace_alone_share) * 1024), 1024
    getrandbits = rng.getrandbits
    for i in range(devices):
        r = getrandbits(40)
        if r & 1023 < unclaimed:
            zt[i] = -1
            continue
        v = (r >> 10) & 1023
        if chrome[models[i]]:
            owner = zt[i]
            if v >= standalone_from or not with_gws:
                zt[i] = -2 - (r >> 20) % standalone
                continue
            if owner < 0 or not companies[owner].google_workspace_customer_id:
                zt[i] = with_gws[(r >> 20) % len(with_gws)]
            if v >= alone:  # claimed for the customer's Workspace account alone
                zt[i] = -2 - own[zt[i]]
        elif zt[i] < 0:
            continue
        elif v < 82:
            sl[i] = zt[i]
        elif v < 102:
            sl[i] = zt[i]
            zt[i] = -1
    return _Part(companies, list(weights), accounts, _vendors(rng, vendors, nth), models, zt, sl)


def _model_weights(chrome_share: float | None) -> list[float]:
    """Each model's weight: as listed, or scaled so Chrome OS models make ``chrome_share``."""
    weights = [float(m.weight) for m in MODELS]
    if chrome_share is None:
        return weights
    chrome = sum(w for w, m in zip(weights, MODELS, strict=True) if m.kind == CHROME)
    other = sum(weights) - chrome
    return [
        w * chrome_share / chrome if m.kind == CHROME else w * (1 - chrome_share) / other
        for w, m in zip(weights, MODELS, strict=True)
    ]


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
    chrome_share: float | None = None,
    workspace_alone_share: float | None = None,
    vendors: int = 3,
    partners: int = 1,
    shared_customers: int = 2,
    shared_devices: int = 3,
) -> Fleet:
    """Generate a deterministic fleet: the same arguments always give the same fleet.

    Args:
        devices: number of devices (claimed or not), per partner.
        customers: number of customers in ``customers.list``, per partner.
        seed: the seed.
        partner_id: the reseller's partner ID (the first one's, with ``partners``).
        skew: Zipf exponent of devices per customer (0 spreads them evenly).
        weights: explicit relative device share per customer (overrides ``skew``; zeros make
            empty customers).
        unclaimed_share: share of devices with no claim at all.
        workspace_share: share of customers with a Google Workspace account.
        chrome_share: share of devices that are Chrome OS devices (None: by model weight,
            about 8%).
        workspace_alone_share: None, or every Chrome OS device is claimed for a customer's
            Workspace account, this share of them without ownerCompanyId and the rest with
            it (none for a standalone Workspace account).
        vendors: number of vendors per partner (each with 1-4 customers of its own).
        partners: how many reseller partners the fleet serves (module docstring).
        shared_customers: with ``partners``, customers of the first partner that every other
            partner has too.
        shared_devices: with ``partners``, devices each partner claims (SIM lock) among its
            predecessor's (zero touch).

    Returns:
        The fleet.

    Raises:
        ValueError: for negative sizes, a ``weights`` list of the wrong length, a share out of
            0..1, or a number of partners out of 1..80.
    """
    if devices < 0 or customers < 0 or shared_customers < 0 or shared_devices < 0:
        raise ValueError("devices, customers and shared counts must not be negative")
    if weights is not None and len(weights) != customers:
        raise ValueError(f"weights has {len(weights)} entries for {customers} customers")
    for share in (unclaimed_share, workspace_share, chrome_share, workspace_alone_share):
        if share is not None and not 0 <= share <= 1:
            raise ValueError(f"shares are between 0 and 1, not {share}")
    if not 1 <= partners <= MAX_PARTNERS:
        raise ValueError(f"partners must be between 1 and {MAX_PARTNERS}, not {partners}")
    make = partial(
        _part,
        devices=devices,
        customers=customers,
        skew=skew,
        weights=weights,
        unclaimed_share=unclaimed_share,
        workspace_share=workspace_share,
        chrome_share=chrome_share,
        workspace_alone_share=workspace_alone_share,
        vendors=vendors,
    )
    first = make(random.Random(f"zt-emulator:{seed}"))
    if partners == 1:
        return Fleet(
            partner_id=partner_id,
            seed=seed,
            customers=first.companies,
            workspace_accounts=first.accounts,
            vendors=first.vendors,
            models=first.models,
            zt=first.zt,
            sl=first.sl,
        )
    shared = [c for k, c in enumerate(first.companies) if first.weights[k] > 0]
    shared = shared[: min(shared_customers, customers)]
    parts = [first] + [
        make(random.Random(f"zt-emulator:{seed}:partner:{nth}"), nth=nth, shared=shared)
        for nth in range(1, partners)
    ]
    fleet = _join(parts, [partner_id + nth for nth in range(partners)], seed)
    _share_devices(fleet, shared_devices, random.Random(f"zt-emulator:{seed}:shared-devices"))
    return fleet


def _join(parts: list[_Part], ids: list[int], seed: int) -> Fleet:
    """One fleet serving every part: devices in blocks, customers merged in companyId order."""
    by_id: dict[int, Company] = {}
    members: dict[int, tuple[int, ...]] = {}
    for part, pid in zip(parts, ids, strict=True):
        for c in part.companies:
            by_id[c.company_id] = c
            members[c.company_id] = (*members.get(c.company_id, ()), pid)
    companies = sorted(by_id.values(), key=lambda c: c.company_id)
    position = {c.company_id: k for k, c in enumerate(companies)}
    models, accounts = bytearray(), list[str]()
    zt, sl = array("i"), array("i")
    starts = []
    for part in parts:
        starts.append(len(models))
        local = [position[c.company_id] for c in part.companies]
        shift = len(accounts)
        models += part.models
        accounts += part.accounts
        zt.extend(local[z] if z >= 0 else z if z == -1 else z - shift for z in part.zt)
        sl.extend(local[s] if s >= 0 else s for s in part.sl)
    return Fleet(
        partner_id=ids[0],
        seed=seed,
        customers=companies,
        workspace_accounts=accounts,
        vendors=parts[0].vendors,
        models=models,
        zt=zt,
        sl=sl,
        partners=PartnerLayout(
            tuple(ids),
            tuple(starts),
            {cid: pids for cid, pids in members.items() if pids != (ids[0],)},
            {pid: part.vendors for part, pid in zip(parts, ids, strict=True)},
        ),
    )


def _share_devices(fleet: Fleet, count: int, rng: random.Random) -> None:
    """Give ``count`` Android devices of each partner's predecessor, claimed there in the
    zero-touch section only, a SIM-lock claim by the partner, for one of its own customers."""
    ids = fleet.partner_ids
    for before, pid in zip(ids, ids[1:], strict=False):
        own = [
            c.company_id
            for c in fleet.current_customers(pid)
            if before not in fleet.partners_of(c.company_id)
        ]
        block = fleet.block(before)
        if not own or not block:
            continue
        chosen: set[int] = set()
        for _ in range(100 * count):  # a random probe finds a zero-touch-only device soon
            if len(chosen) >= count:
                break
            i = block[rng.randrange(len(block))]
            claims = fleet.claims(i)
            android = MODELS[fleet.model_of(i)].kind != CHROME  # SIM lock is for phones
            if android and [c.section_type for c in claims] == [SECTION_ZERO_TOUCH]:
                chosen.add(i)
        for i in sorted(chosen):
            company = own[rng.randrange(len(own))]
            fleet.claim(fleet.device_id(i), company, SECTION_SIM_LOCK, partner_id=pid)

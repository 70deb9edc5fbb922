"""The fleet generator: deterministic, realistic, compact, and its identifier encodings invert."""

from __future__ import annotations

import json
import random
import statistics
import time
from collections import Counter
from typing import Any

import pytest

from inventory.emulator import Coverage, Emulator, Fleet, coverage, generate_fleet
from inventory.emulator.codec import IdentifierCodec, Scrambler, luhn_valid
from inventory.emulator.names import MODELS

ZT = "SECTION_TYPE_ZERO_TOUCH"
SL = "SECTION_TYPE_SIM_LOCK"


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return generate_fleet(devices=3000, customers=60, seed=7, partner_id=1234567)


@pytest.fixture(scope="module")
def devices(fleet: Fleet) -> list[dict[str, Any]]:
    return list(fleet.iter_devices())


def test_same_seed_same_fleet_other_seed_other_fleet() -> None:
    def snapshot(seed: int) -> str:
        f = generate_fleet(devices=200, customers=9, seed=seed)
        return json.dumps([list(f.iter_devices()), list(f.iter_customers())])

    assert snapshot(1) == snapshot(1)
    assert snapshot(1) != snapshot(2)


def test_identifiers_look_real(devices: list[dict[str, Any]]) -> None:
    idents = [d["deviceIdentifier"] for d in devices]
    imeis = [i[k] for i in idents for k in ("imei", "imei2") if k in i]
    assert imeis
    assert all(len(x) == 15 and luhn_valid(x) for x in imeis)
    assert any("imei2" in i for i in idents)
    meid_only = [i for i in idents if "meid" in i and "imei" not in i]
    assert meid_only
    assert all(len(i["meid"]) == 14 and int(i["meid"], 16) >= 0 for i in meid_only)
    pairs = {(m.manufacturer, m.model) for m in MODELS}
    assert all((i["manufacturer"], i["model"]) in pairs for i in idents)
    assert ("Google", "Pixel 8") in {(i["manufacturer"], i["model"]) for i in idents}
    wifi = [i for i in idents if "imei" not in i and "meid" not in i]
    assert all("serialNumber" in i for i in wifi)
    assert {i.get("deviceType") for i in idents} == {
        None,
        "DEVICE_TYPE_ANDROID",
        "DEVICE_TYPE_CHROME_OS",
    }


def test_identifiers_are_unique(devices: list[dict[str, Any]]) -> None:
    for fields in (
        ("imei", "imei2"),
        ("meid", "meid2"),
        ("serialNumber",),
        ("chromeOsAttestedDeviceId",),
    ):
        values = [
            d["deviceIdentifier"][f] for d in devices for f in fields if f in d["deviceIdentifier"]
        ]
        assert values
        assert len(values) == len(set(values)), fields


def test_chrome_os_devices(devices: list[dict[str, Any]]) -> None:
    chrome = [
        d for d in devices if d["deviceIdentifier"].get("deviceType") == "DEVICE_TYPE_CHROME_OS"
    ]
    assert chrome
    assert all(
        {"serialNumber", "chromeOsAttestedDeviceId"} <= set(d["deviceIdentifier"]) for d in chrome
    )
    claims = [c for d in chrome for c in d.get("claims", [])]
    assert all(c["sectionType"] == ZT and "googleWorkspaceCustomerId" in c for c in claims)
    assert any("ownerCompanyId" not in c for c in claims)  # Workspace account alone
    assert any("ownerCompanyId" in c for c in claims)  # a customer's Workspace account


def test_chrome_os_claims_of_every_kind(devices: list[dict[str, Any]], fleet: Fleet) -> None:
    """Claims naming a customer and its Workspace account, the customer's Workspace account
    alone (no ownerCompanyId), and a standalone Workspace account of no customer."""
    own = {
        c["googleWorkspaceAccount"]["customerId"]: c["companyId"]
        for c in fleet.iter_customers()
        if "googleWorkspaceAccount" in c
    }
    kinds: Counter[str] = Counter()
    for d in devices:
        for c in d.get("claims", []):
            gws = c.get("googleWorkspaceCustomerId")
            if gws is None:
                continue
            if "ownerCompanyId" in c:
                assert own[gws] == c["ownerCompanyId"]
                kinds["both"] += 1
            else:
                kinds["customer's own alone" if gws in own else "standalone"] += 1
    assert kinds["both"] > kinds["standalone"] > kinds["customer's own alone"] > 10


def test_coverage_counts_what_a_default_sync_lists(
    devices: list[dict[str, Any]], fleet: Fleet
) -> None:
    customers = list(fleet.iter_customers())
    cids = {c["companyId"] for c in customers}
    own = {
        c["googleWorkspaceAccount"]["customerId"]
        for c in customers
        if "googleWorkspaceAccount" in c
    }
    zt = [next((c for c in d.get("claims", []) if c["sectionType"] == ZT), None) for d in devices]
    listed = [
        c
        for c in zt
        if c and (c.get("ownerCompanyId") in cids or c.get("googleWorkspaceCustomerId") in own)
    ]
    seen = coverage(fleet)
    assert seen == Coverage(fleet.partner_id, len(devices), len(listed), seen.workspace_only, ZT)
    assert seen.workspace_only == sum(1 for c in zt if c) - len(listed) > 0
    assert seen.unlisted == sum(1 for c in zt if c is None) > 0


def test_claims_sections_vacation_and_services(devices: list[dict[str, Any]], fleet: Fleet) -> None:
    sections = [tuple(c["sectionType"] for c in d.get("claims", [])) for d in devices]
    kinds = Counter(sections)
    assert kinds[()] > 0  # unclaimed
    assert kinds[(ZT,)] > kinds[(SL, ZT)] > 0
    assert kinds[(SL,)] > 0
    claims = [c for d in devices for c in d.get("claims", [])]
    assert all(c["resellerId"] == str(fleet.partner_id) for c in claims)
    vacation = [c for c in claims if "vacationModeStartTime" in c]
    assert vacation
    assert all(c["vacationModeExpireTime"] > c["vacationModeStartTime"] for c in vacation)
    assert all(c["vacationModeStartTime"].endswith("Z") for c in vacation)
    assert any(c.get("additionalService") == "DEVICE_PROTECTION" for c in claims)


def test_metadata_range(devices: list[dict[str, Any]]) -> None:
    entries = [d.get("deviceMetadata", {}).get("entries", {}) for d in devices]
    sizes = [len(e) for e in entries]
    assert min(sizes) == 0
    assert max(sizes) >= 15
    values = [v for e in entries for v in e.values()]
    assert any(len(v) > 500 for v in values)
    assert any(not v.isascii() for v in values)


def test_ids_cross_2_pow_53_and_customers_are_uneven(
    devices: list[dict[str, Any]], fleet: Fleet
) -> None:
    ids = [int(d["deviceId"]) for d in devices]
    assert ids == sorted(ids)
    assert min(ids) < 2**53 < max(ids)
    company_ids = [int(c["companyId"]) for c in fleet.iter_customers()]
    assert min(company_ids) < 2**53 < max(company_ids)
    owners = Counter(
        c["ownerCompanyId"]
        for d in devices
        for c in d.get("claims", [])
        if c["sectionType"] == ZT and "ownerCompanyId" in c
    )
    per_customer = [owners.get(str(c), 0) for c in company_ids]
    assert 0 in per_customer  # an empty customer
    assert max(per_customer) > 5 * statistics.median(per_customer)
    workspaces = [c for c in fleet.iter_customers() if "googleWorkspaceAccount" in c]
    assert workspaces
    assert all(c["googleWorkspaceAccount"]["customerId"].startswith("C0") for c in workspaces)
    assert all("@" in e for c in fleet.iter_customers() for e in c.get("ownerEmails", []))


def test_device_id_round_trip(fleet: Fleet) -> None:
    for i in range(0, fleet.index_limit, 37):
        assert fleet.index_of(fleet.device_id(i)) == i
    assert fleet.index_of(fleet.device_id(5) + 1) in (None, 6)
    assert fleet.index_of(12) is None
    assert fleet.index_of(2**63 - 1) is None


def test_codecs_invert() -> None:
    rng = random.Random(0)
    for modulus, split in ((10**8, 10**4), (16**8, 16**4), (36**8, 36**4)):
        s = Scrambler(modulus, split, seed=5)
        for x in [0, 1, modulus - 1] + [rng.randrange(modulus) for _ in range(200)]:
            assert s.backward(s.forward(x)) == x
    codec = IdentifierCodec(seed=9, model_count=len(MODELS))
    assert codec.decode_imei(codec.imei_of(1234, 1, 3)) == (1234, 1, 3)
    assert codec.decode_meid(codec.meid_of(77, 0, 19).lower()) == (77, 0, 19)
    assert codec.decode_serial(codec.serial_of(42, "R5CW").lower(), "R5CW") == 42
    assert codec.decode_attested(codec.attested_of(4242)) == 4242
    assert codec.decode_imei("12345") is None


def test_generator_arguments() -> None:
    with pytest.raises(ValueError, match="weights"):
        generate_fleet(devices=10, customers=3, weights=[1.0])
    empty = generate_fleet(devices=0, customers=0)
    assert list(empty.iter_devices()) == []
    no_customers = generate_fleet(devices=30, customers=0)
    assert all(
        "ownerCompanyId" not in c for d in no_customers.iter_devices() for c in d.get("claims", [])
    )


@pytest.mark.parametrize("alone", [0.0, 0.5, 1.0])
def test_chrome_share_and_workspace_alone_share(alone: float) -> None:
    """Every Chrome OS device goes to a customer's Workspace account, this share without the
    company; none to a standalone account, so a default sync lists them all."""
    fleet = generate_fleet(
        devices=4000, customers=40, seed=3, chrome_share=0.4, workspace_alone_share=alone
    )
    own = {
        c["googleWorkspaceAccount"]["customerId"]: c["companyId"]
        for c in fleet.iter_customers()
        if "googleWorkspaceAccount" in c
    }
    kinds: Counter[str] = Counter()
    for d in fleet.iter_devices():
        if d["deviceIdentifier"].get("deviceType") != "DEVICE_TYPE_CHROME_OS":
            continue
        for c in d.get("claims", []):
            company = own[c["googleWorkspaceCustomerId"]]  # a customer's own account
            assert c.get("ownerCompanyId", company) == company
            kinds["alone" if "ownerCompanyId" not in c else "both"] += 1
    chrome = kinds["alone"] + kinds["both"]
    assert 0.35 < chrome / 4000 < 0.42  # 40 % less the unclaimed 3 %
    assert kinds["alone"] / chrome == pytest.approx(alone, abs=0.03)
    assert coverage(fleet).workspace_only == 0


def test_default_shares_leave_the_fleet_as_it_was() -> None:
    assert list(generate_fleet(devices=500, customers=9, chrome_share=None).iter_devices()) == (
        list(generate_fleet(devices=500, customers=9).iter_devices())
    )
    with pytest.raises(ValueError, match="between 0 and 1"):
        generate_fleet(devices=10, customers=3, chrome_share=1.5)


def test_hundred_thousand_devices_build_fast() -> None:
    started = time.perf_counter()
    fleet = generate_fleet(devices=100_000, customers=2_000, seed=1)
    assert time.perf_counter() - started < 5.0  # about 0.3 s here; generous for slow CI
    assert len(fleet) == 100_000
    emu = Emulator(fleet)
    biggest = max(
        fleet.current_customers(), key=lambda c: fleet.count_owned(ZT, {c.company_id}, set())
    )
    started = time.perf_counter()
    page = emu.api.find_by_owner(
        {},
        {},
        json.dumps(
            {"customerId": [str(biggest.company_id)], "sectionType": ZT, "limit": 100}
        ).encode(),
    )
    assert len(page["devices"]) == 100
    assert page["totalSize"] > 1000
    assert time.perf_counter() - started < 0.5

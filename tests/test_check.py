"""``zt-inventory check`` against the emulator in each of its ``Behaviour`` modes: what it
reports for each reading of what the discovery document leaves open."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from inventory.api.retry import AUTH_HINT
from inventory.auth import SCOPE
from inventory.check import Report, run_checks
from inventory.config import settings_from
from inventory.emulator import Behaviour, Emulator, generate_fleet, write_service_account_key
from inventory.errors import ConfigError
from tests.syncutil import FakeSleep, settings_for

PARTNER = 1234567
TOKEN_AND_PARTNER = [
    "ok      token and scope: auth.credentials = anonymous: no token; customers.list accepted "
    "the call",
    f"ok      partner id: customers.list answered for partner {PARTNER} (totalSize 40)",
    "ok      customers.list page size: asked for 1000, 40 came back, no next page",
]
PACKING = [
    "ok      packing company ids: findByOwner naming 3 companies: totalSize 359 = 81 + 226 + "
    "52, each alone",
    "ok      packing Workspace ids: findByOwner naming 3 Workspace ids: totalSize 45 = 12 + 24 "
    "+ 9, each alone",
]
MIXED = (
    "ok      company and Workspace ids together: {kind}, {n} devices: company 1200119702 alone "
    "lists 52, Workspace account C0xpsn7id alone 9, 7 in both{counted}; the sync never names "
    "both in one request"
)
IDS_OK = (
    "ok      ids per request: findByOwner naming 100 company ids was accepted; the sync names "
    "at most api.max_ids_per_request = 100 in one request"
)
TOKENS_OK = (
    "ok      page tokens: 2 pages of company 1200119702 (limit 26) read twice: the same 52 "
    "devices in the same order"
)
REFUSED_400 = "findByOwner: HTTP 400 INVALID_ARGUMENT on /v1/partners/1234567/devices:findByOwner"


def emulator(**behaviour: Any) -> Emulator:
    fleet = generate_fleet(devices=2000, customers=40, seed=3, partner_id=PARTNER)
    return Emulator(fleet, auth="anonymous", behaviour=Behaviour(**behaviour))


def check(
    emu: Emulator, transport: httpx.BaseTransport | None = None, **api: Any
) -> tuple[list[str], Report]:
    settings = settings_for(emu, "sqlite:///unused.db", api=api)
    report = run_checks(settings, transport=transport or emu.transport(), sleep=FakeSleep())
    return [f.line() for f in report.findings], report


def test_the_emulators_usual_behaviour_passes_every_check() -> None:
    lines, report = check(emulator())
    assert lines == [
        *TOKEN_AND_PARTNER,
        *PACKING,
        MIXED.format(kind="the union", n=54, counted=""),
        IDS_OK,
        TOKENS_OK,
    ]
    assert report.failed == []
    assert report.requests == 17  # a handful of calls


@pytest.mark.parametrize(
    ("owners", "expected"),
    [
        ("union", MIXED.format(kind="the union", n=54, counted="")),
        ("intersect", MIXED.format(kind="the intersection", n=7, counted="")),
        (
            "reject",
            "ok      company and Workspace ids together: refused with 400 ("
            f"{REFUSED_400}: Request contains an invalid argument: customer_id and "
            "google_workspace_customer_id cannot be set in the same request.); the sync never "
            "names both in one request",
        ),
    ],
)
def test_it_tells_what_a_request_naming_both_kinds_of_owner_answers(
    owners: str, expected: str
) -> None:
    lines, report = check(emulator(owners=owners))
    assert lines[5] == expected
    assert report.failed == []  # the sync never mixes them: whatever the answer, it is safe


def test_a_totalsize_that_counts_a_device_once_per_owner_is_reported() -> None:
    lines, report = check(emulator(total_size="per_owner"))
    counted = "; its totalSize 61 counts a device once per owner it matches"
    assert lines[3:6] == [*PACKING, MIXED.format(kind="the union", n=54, counted=counted)]
    assert report.failed == []


def test_a_cap_on_the_ids_of_one_request_fails_and_finds_the_cap() -> None:
    lines, report = check(emulator(max_ids_per_request=30))
    assert lines[6] == (
        f"FAILED  ids per request: findByOwner naming 100 company ids was refused ({REFUSED_400}: "
        "Request contains an invalid argument: at most 30 customer_id and "
        "google_workspace_customer_id values are allowed in one request; got 100.); the most "
        "accepted is 30, and the sync names at most api.max_ids_per_request = 100 in one "
        "request: set it to 30"
    )
    assert [f.name for f in report.failed] == ["ids per request"]
    # configured within the cap, the check passes
    lines, report = check(emulator(max_ids_per_request=30), max_ids_per_request=30)
    assert lines[6].startswith("ok      ids per request: findByOwner naming 30 company ids ")
    assert report.failed == []


def test_offset_page_tokens_read_alike_while_nothing_changes() -> None:
    lines, report = check(emulator(page_tokens="offset"))
    assert lines[7] == TOKENS_OK
    assert report.failed == []


def test_page_tokens_over_a_listing_that_changes_fail() -> None:
    lines, report = check(emulator(page_tokens="offset", churn_every=2))
    assert lines[7].startswith(
        "FAILED  page tokens: 2 pages of company 1200119702 (limit 26) read twice: "
    )
    assert "page tokens may be offsets into a listing that changes" in lines[7]
    assert "page tokens" in [f.name for f in report.failed]


def test_a_refused_page_of_1000_customers_falls_back_to_100() -> None:
    emu = emulator()
    served = emu.transport()

    def strict(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("pageSize") == "1000":
            body = {"error": {"code": 400, "message": "page size too large", "status": "X"}}
            return httpx.Response(400, json=body)
        return served.handle_request(request)

    lines, report = check(emu, transport=httpx.MockTransport(strict))
    assert lines[2] == (
        "ok      customers.list page size: asked for 100, 40 came back, no next page; 1000 was "
        "refused (customers.list: HTTP 400 X on /v1/partners/1234567/customers: page size too "
        "large), as the sync's fallback does"
    )
    assert report.failed == []


def test_a_dead_endpoint_fails_the_first_check_and_skips_the_rest() -> None:
    emu = emulator()
    settings = settings_for(emu, "sqlite:///unused.db", endpoint="http://127.0.0.1:1")
    report = run_checks(settings, sleep=FakeSleep())
    assert [f.line() for f in report.findings] == [
        "FAILED  token and scope: customers.list: connection refused by 127.0.0.1:1 on "
        f"/v1/partners/{PARTNER}/customers (gave up after 9 attempts)",
        "skipped partner id: needs customers.list to answer",
        "skipped customers.list page size: needs customers.list to answer",
        *(
            f"skipped {name}: needs customers.list to answer"
            for name in (
                "packing company ids",
                "packing Workspace ids",
                "company and Workspace ids together",
                "ids per request",
                "page tokens",
            )
        ),
    ]


def test_a_partner_id_the_account_does_not_have_is_refused() -> None:
    emu = emulator()
    settings = settings_from(
        {
            "partner": {"id": 7654321},
            "auth": {"credentials": "anonymous"},
            "api": {"endpoint": "http://emulator.test", "max_retries": 0},
        }
    )
    lines = [f.line() for f in run_checks(settings, transport=emu.transport()).findings]
    assert lines[0].startswith(
        "FAILED  token and scope: customers.list: HTTP 403 PERMISSION_DENIED on "
        "/v1/partners/7654321/customers: "
    )
    assert lines[0].endswith(f"; {AUTH_HINT}")
    assert lines[1:3] == [
        "skipped partner id: needs customers.list to answer (a 403 also comes for a partner id "
        "other than the linked account's)",
        "skipped customers.list page size: needs customers.list to answer",
    ]


def test_no_partner_is_bad_configuration() -> None:
    settings = settings_from(
        {"auth": {"credentials": "anonymous"}, "api": {"endpoint": "http://emulator.test"}}
    )
    with pytest.raises(ConfigError, match="partner.id is not set"):
        run_checks(settings)


@pytest.mark.parametrize("trusted", [True, False])
def test_a_token_is_fetched_with_the_scope(tmp_path: Path, trusted: bool) -> None:
    fleet = generate_fleet(devices=200, customers=6, seed=3, partner_id=PARTNER)
    emu = Emulator(fleet, auth="token")
    uri = "http://zt-emulator.invalid/token"
    key = write_service_account_key(tmp_path / "sa.json", uri)
    if not trusted:  # the key file's id, signed with another key: the endpoint refuses it
        other = json.loads(write_service_account_key(tmp_path / "other.json", uri).read_text())
        info = json.loads(key.read_text())
        key.write_text(json.dumps({**info, "private_key": other["private_key"]}))
    settings = settings_for(emu, "sqlite:///unused.db", credentials=str(key))
    lines = [f.line() for f in run_checks(settings, transport=emu.transport()).findings]
    if trusted:
        assert lines[0] == (
            f"ok      token and scope: a token for {SCOPE} was fetched and customers.list "
            "accepted it"
        )
    else:
        assert lines[:2] == [
            "FAILED  token and scope: the token endpoint refused the credentials (invalid_grant: "
            "Invalid JWT Signature.); check that the key is current and the service account is "
            "enabled",
            "skipped partner id: needs a token",
        ]


def test_a_server_that_counts_packed_owners_differently_fails_the_packing_check() -> None:
    emu = emulator()
    served = emu.transport()

    def fewer_when_packed(request: httpx.Request) -> httpx.Response:
        answer = served.handle_request(request)
        body = json.loads(request.content or b"{}")
        if len(body.get("customerId", [])) in (2, 3):  # several companies, not the id-cap test
            data = json.loads(answer.read())
            data["totalSize"] -= 10
            return httpx.Response(answer.status_code, json=data)
        return answer

    lines, report = check(emu, transport=httpx.MockTransport(fewer_when_packed))
    assert lines[3] == (
        "FAILED  packing company ids: findByOwner naming 3 companies: totalSize 349, but 81 + "
        "226 + 52 = 359 each alone: a request naming several owners does not list what they "
        "list alone; set api.max_ids_per_request = 1"
    )
    assert [f.name for f in report.failed] == ["packing company ids"]


def test_an_account_that_changes_during_the_check_is_no_verdict_on_packing() -> None:
    lines, _report = check(emulator(churn_every=2))
    assert lines[3].startswith("skipped packing company ids: findByOwner naming 3 companies: ")
    assert lines[3].endswith("the account changed between the calls; run the check again")

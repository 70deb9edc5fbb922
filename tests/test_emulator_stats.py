"""The emulator's request counts (``emu.stats``) and the loopback server's two paths of its own,
``GET /_emulator/stats`` and ``POST /_emulator/reset``, which benchmarks read."""

from __future__ import annotations

import httpx
import pytest

from inventory.emulator import (
    RESET_PATH,
    STATS_PATH,
    Emulator,
    FaultConfig,
    generate_fleet,
    serve,
)

PID = 1234567
ZT = "SECTION_TYPE_ZERO_TOUCH"
CUSTOMERS = f"/v1/partners/{PID}/customers"
OWNER = f"/v1/partners/{PID}/devices:findByOwner"


@pytest.fixture
def emu() -> Emulator:
    return Emulator(generate_fleet(devices=300, customers=6, seed=4, partner_id=PID), log_limit=1)


def test_counts_every_request_by_method_status_and_bytes(emu: Emulator) -> None:
    emu.faults.script = [429, "drop"]
    with httpx.Client(transport=emu.transport(), base_url="http://emulator.test") as client:
        assert client.get(CUSTOMERS).status_code == 429
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(CUSTOMERS)
        cid = client.get(CUSTOMERS).json()["customers"][0]["companyId"]
        page = client.post(OWNER, json={"customerId": [cid], "sectionType": ZT, "limit": 5})
        client.post("/token", data={"grant_type": "nonsense"})
    stats = emu.stats.snapshot()
    assert len(emu.request_log) == 1  # the log keeps one; the counts keep everything
    assert stats["requests"] == 5
    assert stats["by_method"] == {"customers.list": 3, "findByOwner": 1, "token": 1}
    assert stats["by_status"] == {"0": 1, "200": 2, "400": 1, "429": 1}
    assert stats["bytes_sent"] > len(page.content) > 0
    times = stats["times"]
    assert len(times) == 4  # the token request uses no quota: no arrival time
    assert times == sorted(times)
    assert emu.counts() == stats["by_method"]
    emu.clear_log()
    assert emu.stats.snapshot() == {
        "requests": 0,
        "by_method": {},
        "by_status": {},
        "bytes_sent": 0,
        "times": [],
    }


def test_the_loopback_server_serves_and_resets_the_counts(emu: Emulator) -> None:
    with serve(emu) as server, httpx.Client(base_url=server.url) as http:
        pretty = http.get(CUSTOMERS)
        compact = http.get(CUSTOMERS, params={"prettyPrint": "false"})
        stats = http.get(STATS_PATH).json()
        assert stats["by_method"] == {"customers.list": 2}
        assert stats["by_status"] == {"200": 2}
        assert stats["bytes_sent"] == len(pretty.content) + len(compact.content)
        assert len(stats["times"]) == 2
        assert http.get(STATS_PATH).json() == stats  # reading them counts no request
        assert http.post(STATS_PATH).status_code == 405
        assert http.get(RESET_PATH).status_code == 405
        assert http.post(RESET_PATH).json() == {}
        assert http.get(STATS_PATH).json()["requests"] == 0
        assert emu.request_log == []


def test_only_the_loopback_server_has_the_emulators_own_paths(emu: Emulator) -> None:
    with httpx.Client(transport=emu.transport(), base_url="http://emulator.test") as client:
        answer = client.get(STATS_PATH)
    assert answer.status_code == 404
    assert emu.stats.by_method() == {"unknown": 1}


def test_quota_refusals_are_counted_as_429(emu: Emulator) -> None:
    emu.faults = FaultConfig(quota_requests=2, quota_window_s=100.0)
    with httpx.Client(transport=emu.transport(), base_url="http://emulator.test") as client:
        statuses = [client.get(CUSTOMERS).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert emu.stats.snapshot()["by_status"] == {"200": 2, "429": 1}

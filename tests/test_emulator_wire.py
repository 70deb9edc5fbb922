"""The emulator's answers on the wire, as Google sends them: indented JSON unless
``prettyPrint=false``, gzip only when the request accepts it AND its User-Agent says ``gzip``,
the bytes sent in the request log, and a loopback server that stays quiet when a client hangs
up mid-answer."""

from __future__ import annotations

import gzip
import json
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from inventory.emulator import Emulator, generate_fleet, serve

PID = 1234567
ZT = "SECTION_TYPE_ZERO_TOUCH"
CUSTOMERS = f"/v1/partners/{PID}/customers"
OWNER = f"/v1/partners/{PID}/devices:findByOwner"
GZIP_AGENT = "zt-inventory-test (gzip)"


@pytest.fixture
def emu() -> Emulator:
    return Emulator(generate_fleet(devices=300, customers=6, seed=4, partner_id=PID))


@pytest.fixture
def client(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(transport=emu.transport(), base_url="http://emulator.test") as c:
        yield c


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_json_is_indented_by_default_and_compact_on_request(
    emu: Emulator, client: httpx.Client
) -> None:
    default = client.get(CUSTOMERS)
    assert default.text.startswith('{\n  "customers": [\n    {\n      "companyId": ')
    assert default.text == _pretty(default.json())
    for value in ("true", "TRUE", "yes"):
        assert client.get(CUSTOMERS, params={"prettyPrint": value}).text == default.text
    for value in ("false", "False", "0"):
        compact = client.get(CUSTOMERS, params={"prettyPrint": value})
        assert compact.text == _compact(default.json())
    sizes = [r.bytes_sent for r in emu.request_log]
    assert sizes[0] == len(default.content) > sizes[-1] == len(compact.content)
    error = client.get("/v1/partners/999/customers")
    assert error.text == _pretty({"error": error.json()["error"]})  # errors too


def test_gzip_needs_both_the_header_and_the_user_agent(emu: Emulator, client: httpx.Client) -> None:
    plain = client.get(CUSTOMERS, params={"prettyPrint": "false"})
    asks = [
        {"Accept-Encoding": "gzip, deflate"},  # httpx's default agent says nothing of gzip
        {"Accept-Encoding": "identity", "User-Agent": GZIP_AGENT},
        {"Accept-Encoding": "gzip;q=0", "User-Agent": GZIP_AGENT},
        {"Accept-Encoding": "deflate, gzip;q=0.5", "User-Agent": GZIP_AGENT},
    ]
    answers = [client.get(CUSTOMERS, params={"prettyPrint": "false"}, headers=h) for h in asks]
    assert [a.headers.get("Content-Encoding") for a in answers] == [None, None, None, "gzip"]
    for answer in answers:
        assert answer.headers["Vary"] == "Accept-Encoding, User-Agent"
        assert answer.json() == plain.json()  # httpx decodes gzip transparently
    zipped = answers[-1]
    sent = emu.request_log[-1].bytes_sent
    assert sent == int(zipped.headers["Content-Length"])
    assert sent < len(zipped.content) == len(plain.content)
    raw = emu.handle(zipped.request)  # what went on the wire is a gzip stream
    assert isinstance(raw.stream, httpx.ByteStream)
    assert gzip.decompress(b"".join(raw.stream)) == plain.content


def test_bytes_sent_per_device_for_a_benchmark(emu: Emulator, client: httpx.Client) -> None:
    cid = next(emu.iter_customers())["companyId"]
    body = {"customerId": [cid], "sectionType": ZT, "limit": 100}
    sizes = {}
    for name, params, headers in (
        ("pretty", {}, {}),
        ("compact", {"prettyPrint": "false"}, {}),
        ("gzip", {"prettyPrint": "false"}, {"User-Agent": GZIP_AGENT}),
    ):
        page = client.post(OWNER, params=params, headers=headers, json=body)
        assert page.status_code == 200
        sizes[name] = emu.request_log[-1].bytes_sent / len(page.json()["devices"])
    assert sizes["pretty"] > sizes["compact"] > 3 * sizes["gzip"] > 0


def test_the_loopback_server_sends_what_the_emulator_encoded(emu: Emulator) -> None:
    with serve(emu) as server, httpx.Client(base_url=server.url) as http:
        pretty = http.get(CUSTOMERS)
        assert pretty.text == _pretty(pretty.json())
        compact = http.get(CUSTOMERS, params={"prettyPrint": "false"})
        assert compact.text == _compact(pretty.json())
        zipped = http.get(CUSTOMERS, headers={"User-Agent": GZIP_AGENT})
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert zipped.text == pretty.text
        assert zipped.num_bytes_downloaded == emu.request_log[-1].bytes_sent < len(pretty.content)


def test_a_client_hanging_up_mid_answer_leaves_no_traceback(
    emu: Emulator, capfd: pytest.CaptureFixture[str]
) -> None:
    server = serve(emu)
    hung_up = threading.Event()
    peer = socket.create_connection(("127.0.0.1", server.port))

    def hang_up(_: Emulator) -> None:  # the client goes away while the answer is made
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # a reset, as a cancelled client's socket sends
        hung_up.set()

    emu.after_requests(1, hang_up, method="customers.list")
    try:
        peer.sendall(f"GET {CUSTOMERS} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert hung_up.wait(10)
    finally:
        server.close()  # joins the connection's thread, so its error (if any) is printed
    with httpx.Client(transport=emu.transport(), base_url="http://x") as client:
        assert client.get(CUSTOMERS).status_code == 200
    err = capfd.readouterr().err
    for word in ("Traceback", "ConnectionResetError", "BrokenPipeError", "Exception occurred"):
        assert word not in err

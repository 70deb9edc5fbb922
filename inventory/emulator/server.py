"""Serving an ``Emulator`` over HTTP/1.1 on a loopback port, in a background thread.

``serve(emu)`` starts a threaded server (keep-alive, one thread per connection) and returns a
``LoopbackServer``; ``close()`` (or leaving its ``with`` block) stops it and closes every open
connection. A dropped-connection fault closes the socket without answering. Bodies go out as
the emulator encoded them (gzipped when the request asked the Google way). A client that hangs
up mid-answer (a cancelled sync) is no error: the server drops the connection quietly, with no
traceback on stderr. Beside the API, the server answers ``GET /_emulator/stats`` and
``POST /_emulator/reset`` (the emulator's request counts, ``stats.py``; not Google's).
``run_server_forever`` is what ``zt-inventory emulator`` calls.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx
import orjson

from inventory.emulator.app import Emulator
from inventory.emulator.behaviour import Behaviour
from inventory.emulator.faults import FaultConfig
from inventory.emulator.generate import generate_fleet
from inventory.emulator.oauth import write_service_account_key
from inventory.emulator.requestlog import TOKEN_PATH
from inventory.emulator.stats import RESET_PATH, STATS_PATH

_HOP_HEADERS = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive"})


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() joins the connection threads
    block_on_close = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _Handler)
        host, port = str(self.server_address[0]), self.server_address[1]
        self.base_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        """Stay quiet when the client went away (reset, broken pipe); report anything else."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 120  # idle keep-alive connections are closed after this

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes; without NODELAY, Nagle + delayed ACK cost 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        """Stay quiet: the emulator's own request log records every request."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        if self.path.partition("?")[0] in (STATS_PATH, RESET_PATH):
            self._control()
            return
        request = httpx.Request(
            self.command,
            self.server.base_url + self.path,
            headers=[(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS],
            content=body,
        )
        try:
            response = self.server.emulator.handle(request)
        except httpx.TransportError:
            self.close_connection = True  # the fault: close without a byte of answer
            return
        body = _wire_bytes(response)
        self.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() not in _HOP_HEADERS:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _control(self) -> None:
        """The emulator's own two paths: its request counts, and their reset."""
        path, emu = self.path.partition("?")[0], self.server.emulator
        if (self.command, path) == ("GET", STATS_PATH):
            status, answer = 200, emu.stats.snapshot()
        elif (self.command, path) == ("POST", RESET_PATH):
            emu.clear_log()
            status, answer = 200, {}
        else:
            status, answer = 405, {"error": f"{self.command} {path}: method not allowed"}
        data = orjson.dumps(answer)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


def _wire_bytes(response: httpx.Response) -> bytes:
    """The body as encoded for the wire: ``response.content`` is already decoded from gzip."""
    if isinstance(response.stream, httpx.ByteStream):
        return b"".join(response.stream)
    return response.content


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the emulator serves on loopback only, not {host!r}")


class LoopbackServer:
    """A running loopback server; a context manager that closes it on exit.

    Attributes:
        url: the base URL, e.g. ``http://127.0.0.1:54321``.
        token_uri: the token endpoint's absolute URL (``url + "/token"``).
        emulator: the emulator it serves.
    """

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> None:
        _check_loopback(host)
        self.emulator = emulator
        self._server = _Server((host, port), emulator)
        self.url = self._server.base_url
        self.token_uri = self.url + TOKEN_PATH
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"zt-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._closed = False

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving, close open connections and join every server thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        with self._server.connections_lock:
            for conn in list(self._server.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve(emu: Emulator, host: str = "127.0.0.1", port: int = 0) -> LoopbackServer:
    """Serve ``emu`` on a loopback port in a background thread.

    Args:
        emu: the emulator; its ``base_url`` is set to the server's URL.
        host: a loopback address.
        port: the TCP port; 0 picks a free one.

    Returns:
        The running server (``server.url``, ``server.close()``, a context manager).

    Raises:
        ValueError: when ``host`` is not a loopback address.
        OSError: when the port cannot be bound.
    """
    server = LoopbackServer(emu, host, port)
    emu.base_url = server.url
    return server


def run_server_forever(
    devices: int = 1000,
    customers: int = 50,
    seed: int = 7,
    port: int = 8080,
    faults: FaultConfig | None = None,
    partner_id: int = 1234567,
    *,
    host: str = "127.0.0.1",
    auth: str = "anonymous",
    service_account_key: str | os.PathLike[str] | None = None,
    ready: Callable[[LoopbackServer], None] | None = None,
    stop: threading.Event | None = None,
    log_limit: int = 10_000,
    behaviour: Behaviour | None = None,
    partners: int = 1,
    skew: float = 1.1,
    even: bool = False,
    unclaimed_share: float = 0.03,
    chrome_share: float | None = None,
    workspace_alone_share: float | None = None,
) -> None:
    """Generate a fleet and serve it on loopback until ``stop`` is set or an interrupt.

    Prints nothing: pass ``ready`` to learn the URL once the port is bound (the CLI prints it).
    KeyboardInterrupt propagates after the server is closed.

    Args:
        devices: devices in the generated fleet (per partner).
        customers: customers in the generated fleet (per partner).
        seed: the fleet seed.
        port: TCP port (0 picks a free one).
        faults: fault settings (CLI: ``--latency``, ``--quota``, ``--fail-every``,
            ``--error-rate``, ``--drop-rate``, ``--token-ttl``).
        partner_id: the partner ID the emulator answers for (the first, with ``partners``).
        host: a loopback address.
        auth: ``"anonymous"`` or ``"token"`` (bearer tokens from ``/token`` required).
        service_account_key: when given, write a service-account key file there whose
            token_uri points at this server (it acts for every partner).
        ready: called with the running server before blocking.
        stop: set it (from another thread) to return.
        log_limit: request-log records kept in memory.
        behaviour: what the emulator does where the discovery document leaves it open (CLI:
            ``--owners``, ``--max-ids-per-request``, ``--page-tokens``, ``--total-size``,
            ``--churn-every``).
        partners: how many reseller partners to serve (ids ``partner_id`` upwards).
        skew, unclaimed_share, chrome_share, workspace_alone_share: the fleet's shape, as
            ``generate_fleet`` takes them (CLI: ``--skew``, ``--unclaimed-share``,
            ``--chrome-share``, ``--workspace-alone-share``).
        even: every customer gets the same share of devices (CLI: ``--even``).

    Raises:
        OSError: when the port cannot be bound (``errno.EADDRINUSE``: it is in use).
    """
    fleet = generate_fleet(
        devices=devices,
        customers=customers,
        seed=seed,
        partner_id=partner_id,
        partners=partners,
        skew=skew,
        weights=[1.0] * customers if even else None,
        unclaimed_share=unclaimed_share,
        chrome_share=chrome_share,
        workspace_alone_share=workspace_alone_share,
    )
    emu = Emulator(
        fleet,
        faults=faults or FaultConfig(),
        auth=auth,
        log_limit=log_limit,
        behaviour=behaviour,
    )
    event = stop or threading.Event()
    with serve(emu, host=host, port=port) as server:
        if service_account_key is not None:
            write_service_account_key(service_account_key, server.token_uri)
        if ready is not None:
            ready(server)
        while not event.wait(0.5):
            pass

"""``Emulator``: the zero-touch reseller API and its token endpoint as one ``Request -> Response``
callable, with fault injection, a request log and the mutations tests make between syncs.

Use it in-process through ``emu.transport()`` (an ``httpx.MockTransport``; any host name works)
or on a loopback port through ``serve(emu)``. ``handle`` is thread-safe: state changes happen
under one lock; only the injected latency is slept outside it.

One emulator serves every partner of its fleet (``generate_fleet(partners=N)``); a request for
another partner is 403. Answers go on the wire as Google sends them (``wire.py``: pretty JSON
unless ``prettyPrint=false``, gzip when asked the Google way), and ``emu.behaviour`` picks what
the discovery document leaves open (``behaviour.py``). ``after_requests`` schedules a change to
the fleet for a given request, so a test can change the fleet while a client pages.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

from inventory.emulator.behaviour import Behaviour
from inventory.emulator.changes import Churn, Hooks, RequestHook
from inventory.emulator.faults import Fault, FaultConfig, FaultState, retry_after_header
from inventory.emulator.fleet import Fleet
from inventory.emulator.mutations import FleetView
from inventory.emulator.oauth import KeyRing, OAuthError, load_key_file, write_service_account_key
from inventory.emulator.pagetoken import PageTokens
from inventory.emulator.records import JsonObject
from inventory.emulator.requestlog import (
    TOKEN_PATH,
    LoggedRequest,
    decode_body,
    method_name,
)
from inventory.emulator.routes import Api, route
from inventory.emulator.rpc import RpcError, int64
from inventory.emulator.stats import RequestStats
from inventory.emulator.wire import encode

DEFAULT_BASE_URL = "http://zt-emulator.invalid"
AUTH_MODES = ("anonymous", "token")


class Emulator(FleetView):
    """The Android Device Provisioning Partner API (reseller side) over a ``Fleet``.

    Args:
        fleet: the inventory served (of one partner or several); mutations change it in place.
        faults: fault settings (default: none); ``emu.faults`` stays mutable.
        clock: monotonic seconds, for token expiry, the quota window and the log.
        auth: ``"anonymous"`` accepts any or no Authorization; ``"token"`` requires a bearer
            token issued by ``/token`` and not expired.
        sleep: how latency is slept (inject a fake in tests).
        wall_clock: Unix seconds, for checking JWT ``iat``/``exp``.
        echo_input_only: return customers' ``ownerEmails``, which the discovery document marks
            input-only (a strict server would omit them). Default True, for realistic data.
        log_limit: keep at most this many log records (None: all).
        keep_responses: also keep each response body in the log.
        behaviour: answers where the discovery document leaves them open (default: the
            emulator's usual ones); ``emu.behaviour`` stays mutable.
    """

    def __init__(
        self,
        fleet: Fleet,
        faults: FaultConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        auth: str = "anonymous",
        *,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        echo_input_only: bool = True,
        log_limit: int | None = None,
        keep_responses: bool = False,
        behaviour: Behaviour | None = None,
    ) -> None:
        if auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {AUTH_MODES}, not {auth!r}")
        self.fleet = fleet
        self.auth = auth
        self.clock = clock
        self.sleep = sleep
        self.wall_clock = wall_clock
        self.log_limit = log_limit
        self.keep_responses = keep_responses
        self.echo_input_only = echo_input_only
        self.base_url = DEFAULT_BASE_URL
        self.request_log: list[LoggedRequest] = []
        self.stats = RequestStats()  # every request since the last clear_log, unlike the log
        self._lock = threading.RLock()
        self._keyring = KeyRing()
        self._hooks = Hooks()
        self._faults = FaultState(faults if faults is not None else FaultConfig())
        secret = hashlib.sha256(f"zt-emulator:{fleet.seed}:{fleet.partner_id}".encode()).digest()
        self.api = Api(
            fleet, PageTokens(secret), echo_input_only=echo_input_only, behaviour=behaviour
        )

    # ------------------------------------------------------------------ configuration
    @property
    def partner_id(self) -> int:
        """The (first) reseller partner ID the emulator answers for."""
        return self.fleet.partner_id

    @property
    def partner_ids(self) -> tuple[int, ...]:
        """Every partner ID the emulator answers for, ``partner_id`` first."""
        return self.fleet.partner_ids

    @property
    def behaviour(self) -> Behaviour:
        """The behaviour switches; mutate fields in place, or assign a new one (restarts churn)."""
        return self.api.behaviour

    @behaviour.setter
    def behaviour(self, behaviour: Behaviour) -> None:
        with self._lock:
            self.api.behaviour = behaviour
            self.api.churn = Churn(self.fleet.seed)

    @property
    def churned(self) -> list[int]:
        """The deviceIds that ``Behaviour.churn_every`` took out of a listing, in order."""
        with self._lock:
            return list(self.api.churn.moved)

    @property
    def faults(self) -> FaultConfig:
        """The fault settings; mutate fields in place, or assign a new one (resets counters)."""
        return self._faults.config

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        with self._lock:
            self._faults = FaultState(config)

    @property
    def token_uri(self) -> str:
        """The token endpoint's path, ``/token`` (absolute: ``base_url + token_uri``)."""
        return TOKEN_PATH

    def transport(self) -> httpx.MockTransport:
        """Return an in-process httpx transport that answers through ``handle``."""
        return httpx.MockTransport(self.handle)

    def register_key_file(self, path: str | os.PathLike[str]) -> None:
        """Trust the service-account key in ``path`` (written elsewhere) at ``/token``."""
        key = load_key_file(path)
        with self._lock:
            self._keyring.trust(key)

    def link_key(self, path: str | os.PathLike[str], partner_ids: Iterable[int]) -> None:
        """Trust the key in ``path`` and let its tokens act for ``partner_ids`` only.

        As in the zero-touch portal, where a service account is linked to reseller accounts: a
        request with a token of this key for another partner gets 403 PERMISSION_DENIED. A key
        never linked acts for every partner. Linking again replaces the partners.
        """
        key = load_key_file(path)
        with self._lock:
            self._keyring.trust(key)
            self._keyring.link(key.key_id, frozenset(partner_ids))

    def write_service_account_key(
        self,
        path: str | os.PathLike[str],
        partner_ids: Iterable[int] | None = None,
        **kwargs: Any,
    ) -> Path:
        """Write a key file whose token_uri is ``base_url + /token`` (see ``oauth``).

        Args:
            path: where to write it.
            partner_ids: link the key to these partners only (None: it acts for every one).
            **kwargs: ``client_email``, ``project_id``, ``key_size``.

        Returns:
            The path written.
        """
        written = write_service_account_key(path, self.base_url + TOKEN_PATH, **kwargs)
        if partner_ids is not None:
            self.link_key(written, partner_ids)
        return written

    def after_requests(
        self, n: int, fn: Callable[[Emulator], None], method: str | None = "findByOwner"
    ) -> RequestHook:
        """Run ``fn(emu)`` once, when the ``n``-th matching request from now arrives.

        It runs under the emulator's lock, before that request is answered (faults included),
        so the request and every later one see the change: a test can move or remove a device
        while a client pages.

        Args:
            n: 1 for the next matching request, 2 for the one after, ...
            fn: the change; it may call any of the emulator's mutations.
            method: the ``LoggedRequest.method`` that counts; None: every API request.

        Returns:
            The scheduled hook (``hook.fired`` turns True once ``fn`` has run).
        """
        with self._lock:
            return self._hooks.add(RequestHook(n, fn, method))

    # ------------------------------------------------------------------------ the log
    def counts(self) -> dict[str, int]:
        """Return how many requests each method received (dropped and refused included)."""
        return self.stats.by_method()

    def clear_log(self) -> None:
        """Forget the request log and the counts (``stats``)."""
        with self._lock:
            self.request_log.clear()
            self.stats.reset()

    def _log(self, record: LoggedRequest) -> None:
        self.request_log.append(record)
        if self.log_limit is not None and len(self.request_log) > self.log_limit:
            del self.request_log[: len(self.request_log) - self.log_limit]

    # ----------------------------------------------------------------- request handling
    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as the API would.

        Args:
            request: the request (its body already read).

        Returns:
            The response.

        Raises:
            httpx.RemoteProtocolError: when a fault drops the connection.
        """
        content = request.read()
        path = request.url.path
        name = method_name(request.method, path)
        query = dict(parse_qsl(request.url.query.decode("latin-1"), keep_blank_values=True))
        record = LoggedRequest(
            name,
            request.method,
            path,
            query,
            {k.lower(): v for k, v in request.headers.items()},
            decode_body(content, name),
        )
        faulted = name != "token" or self.faults.faults_on_token
        arrived = self.clock()
        try:
            try:
                status, body, headers = self._answer(
                    request, name, path, query, content, record, faulted
                )
            except httpx.TransportError:  # a dropped connection is counted too
                self.stats.add(name, record.status, record.at, 0)
                raise
            data, wire_headers = encode(body, query, record.headers)
            record.bytes_sent = len(data)
            self.stats.add(name, status, record.at, len(data))
            headers.update(wire_headers)
            return httpx.Response(status, headers=headers, content=data, request=request)
        finally:
            # latency_s is how long a call takes as the client sees it: the emulator's own work
            # (done under one lock, which a real API does not have) counts toward it
            latency = self.faults.latency_s if faulted else 0.0
            if latency > 0:
                self.sleep(max(0.0, latency - (self.clock() - arrived)))

    def _answer(
        self,
        request: httpx.Request,
        name: str,
        path: str,
        query: Mapping[str, str],
        content: bytes,
        record: LoggedRequest,
        faulted: bool,
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            record.at = self.clock()
            for hook in self._hooks.due(name):
                hook.action(self)
            try:
                fault = self._faults.before() if faulted else None
                if fault is not None:
                    record.fault = fault.reason
                    if fault.drop:
                        self._log(record)
                        raise httpx.RemoteProtocolError(
                            "Server disconnected without sending a response.", request=request
                        )
                    raise RpcError(fault.status, retry_after=fault.retry_after)
                if name == "token":
                    status, body, headers = self._token(request.method, content)
                else:
                    status, body, headers = (
                        200,
                        self._api(request, path, query, content, record),
                        {},
                    )
            except RpcError as exc:
                status, body, headers = exc.code, exc.body(), {}
                if exc.retry_after is not None:
                    headers["Retry-After"] = retry_after_header(exc.retry_after)
                if exc.code == 401:
                    headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
            record.status = status
            if self.keep_responses:
                record.response = body
            self._log(record)
        return status, body, headers

    def _api(
        self,
        request: httpx.Request,
        path: str,
        query: Mapping[str, str],
        content: bytes,
        record: LoggedRequest,
    ) -> JsonObject:
        name, params = route(request.method, path)
        token = self._authenticate(request, query) if self.auth == "token" else ""
        partner = int64(params["partnerId"], "partner_id")
        if partner not in self.fleet.partner_ids:
            raise RpcError(403)
        if token and not self._keyring.allows(token, partner):
            raise RpcError(403, f"The caller does not have permission for partner {partner}.")
        fault: Fault | None = self._faults.quota(self.clock())
        if fault is not None:
            record.fault = fault.reason
            raise RpcError(429, retry_after=fault.retry_after)
        return self.api.handlers[name](params, query, content)

    def _authenticate(self, request: httpx.Request, query: Mapping[str, str]) -> str:
        """Return the request's valid bearer token; 401 without one."""
        header: str = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            token = query.get("access_token") or query.get("oauth_token") or ""
        token = token.strip()
        if not token or self._keyring.tokens.state(token, self.clock()) != "valid":
            raise RpcError(401)
        return token

    def _token(self, http_method: str, content: bytes) -> tuple[int, JsonObject, dict[str, str]]:
        headers = {"Cache-Control": "no-store"}
        if http_method != "POST":
            return 405, {"error": "invalid_request", "error_description": "Use POST."}, headers
        form = decode_body(content, "token")
        try:
            grant = self._keyring.grant(
                form, self.clock(), self.wall_clock(), self.faults.token_ttl_s
            )
        except OAuthError as exc:
            return exc.status, {"error": exc.error, "error_description": exc.description}, headers
        return 200, grant, headers

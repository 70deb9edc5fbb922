"""``Emulator``: the zero-touch reseller API and its token endpoint as one ``Request -> Response``
callable, with fault injection, a request log and the mutations tests make between syncs.

Use it in-process through ``emu.transport()`` (an ``httpx.MockTransport``; any host name works)
or on a loopback port through ``serve(emu)``. ``handle`` is thread-safe: state changes happen
under one lock; only the injected latency is slept outside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

from inventory.emulator.faults import Fault, FaultConfig, FaultState, retry_after_header
from inventory.emulator.fleet import Fleet
from inventory.emulator.oauth import (
    JWT_GRANT_TYPE,
    OAuthError,
    RegisteredKey,
    TokenStore,
    load_key_file,
    registered_keys,
    verify_assertion,
    write_service_account_key,
)
from inventory.emulator.pagetoken import PageTokens
from inventory.emulator.records import SECTION_ZERO_TOUCH, JsonObject
from inventory.emulator.routes import Api, route
from inventory.emulator.rpc import RpcError, int64

TOKEN_PATH = "/token"
DEFAULT_BASE_URL = "http://zt-emulator.invalid"
AUTH_MODES = ("anonymous", "token")
_JSON = "application/json; charset=UTF-8"


@dataclass
class LoggedRequest:
    """One request the emulator received.

    Attributes:
        method: API method name: ``customers.list``, ``findByOwner``, ``findByIdentifier``,
            ``devices.get``, ``vendors.list``, ``vendors.customers.list``, ``token``, or
            ``unknown``.
        http_method: ``GET``/``POST``.
        path: the URL path.
        query: query parameters.
        headers: request headers (lower-case names).
        body: the decoded JSON body (the form fields for ``token``), or None.
        status: the HTTP status answered; 0 when the connection was dropped.
        fault: which fault answered (``script``, ``fail_every``, ``drop_rate``,
            ``error_rate``, ``quota``), or ``""``.
        at: the emulator clock when it arrived.
    """

    method: str
    http_method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0
    fault: str = ""
    at: float = 0.0
    response: JsonObject | None = field(default=None, repr=False)


def _method_name(http_method: str, path: str) -> str:
    if path == TOKEN_PATH:
        return "token"
    try:
        return route(http_method, path)[0]
    except RpcError:
        return "unknown"


class Emulator:
    """The Android Device Provisioning Partner API (reseller side) over a ``Fleet``.

    Args:
        fleet: the inventory served; mutations change it in place.
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
        self.base_url = DEFAULT_BASE_URL
        self.request_log: list[LoggedRequest] = []
        self._counts: Counter[str] = Counter()
        self._lock = threading.RLock()
        self._keys: dict[str, RegisteredKey] = {}
        self._tokens = TokenStore()
        self._faults = FaultState(faults if faults is not None else FaultConfig())
        secret = hashlib.sha256(f"zt-emulator:{fleet.seed}:{fleet.partner_id}".encode()).digest()
        self.api = Api(fleet, PageTokens(secret), echo_input_only=echo_input_only)

    # ------------------------------------------------------------------ configuration
    @property
    def partner_id(self) -> int:
        """The reseller partner ID the emulator answers for."""
        return self.fleet.partner_id

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
            self._keys[key.key_id] = key

    def write_service_account_key(self, path: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Write a key file whose token_uri is ``base_url + /token`` (see ``oauth``)."""
        return write_service_account_key(path, self.base_url + TOKEN_PATH, **kwargs)

    # ------------------------------------------------------------------------ the log
    def counts(self) -> dict[str, int]:
        """Return how many requests each method received (dropped and refused included)."""
        with self._lock:
            return dict(self._counts)

    def clear_log(self) -> None:
        """Forget the request log and the per-method counts."""
        with self._lock:
            self.request_log.clear()
            self._counts.clear()

    def _log(self, record: LoggedRequest) -> None:
        self.request_log.append(record)
        self._counts[record.method] += 1
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
        name = _method_name(request.method, path)
        query = dict(parse_qsl(request.url.query.decode("latin-1"), keep_blank_values=True))
        record = LoggedRequest(
            name,
            request.method,
            path,
            query,
            {k.lower(): v for k, v in request.headers.items()},
            _decode_body(content, name),
        )
        faulted = name != "token" or self.faults.faults_on_token
        arrived = self.clock()
        try:
            return self._answer(request, name, path, query, content, record, faulted)
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
    ) -> httpx.Response:
        with self._lock:
            record.at = self.clock()
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
        indent = 2 if query.get("prettyPrint") == "true" else None
        data = json.dumps(
            body, ensure_ascii=False, indent=indent, separators=None if indent else (",", ":")
        )
        headers["Content-Type"] = _JSON
        return httpx.Response(status, headers=headers, content=data.encode(), request=request)

    def _api(
        self,
        request: httpx.Request,
        path: str,
        query: Mapping[str, str],
        content: bytes,
        record: LoggedRequest,
    ) -> JsonObject:
        name, params = route(request.method, path)
        if self.auth == "token":
            self._authenticate(request, query)
        partner = int64(params["partnerId"], "partner_id")
        if partner != self.fleet.partner_id:
            raise RpcError(403)
        fault: Fault | None = self._faults.quota(self.clock())
        if fault is not None:
            record.fault = fault.reason
            raise RpcError(429, retry_after=fault.retry_after)
        return self.api.handlers[name](params, query, content)

    def _authenticate(self, request: httpx.Request, query: Mapping[str, str]) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            token = query.get("access_token") or query.get("oauth_token") or ""
        if not token or self._tokens.state(token.strip(), self.clock()) != "valid":
            raise RpcError(401)

    def _token(self, http_method: str, content: bytes) -> tuple[int, JsonObject, dict[str, str]]:
        headers = {"Cache-Control": "no-store"}
        if http_method != "POST":
            return 405, {"error": "invalid_request", "error_description": "Use POST."}, headers
        form = _decode_body(content, "token")
        try:
            if not isinstance(form, dict) or form.get("grant_type") != JWT_GRANT_TYPE:
                grant = form.get("grant_type") if isinstance(form, dict) else None
                raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant}")
            keys = {**registered_keys(), **self._keys}
            verify_assertion(str(form.get("assertion", "")), keys, self.wall_clock())
        except OAuthError as exc:
            return exc.status, {"error": exc.error, "error_description": exc.description}, headers
        ttl = self.faults.token_ttl_s
        token = self._tokens.issue(self.clock(), ttl)
        expires_in = max(int(ttl), 0)
        return (
            200,
            {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"},
            headers,
        )

    # --------------------------------------------------------- ground truth and mutations
    def iter_devices(self) -> Iterator[JsonObject]:
        """Yield every device of the partner (claimed or not) as the API encodes it, by deviceId."""
        return self.fleet.iter_devices()

    def iter_customers(self) -> Iterator[JsonObject]:
        """Yield every current customer's Company JSON as ``customers.list`` returns it."""
        return self.fleet.iter_customers(echo_input_only=self.api.echo_input_only)

    def move_device(
        self, device_id: int, company_id: int, section_type: str = SECTION_ZERO_TOUCH
    ) -> None:
        """Give a device's ``section_type`` claim to another customer (see ``Fleet``)."""
        with self._lock:
            self.fleet.move_device(device_id, company_id, section_type)

    def unclaim(self, device_id: int, section_type: str = SECTION_ZERO_TOUCH) -> None:
        """Remove a device's ``section_type`` claim."""
        with self._lock:
            self.fleet.unclaim(device_id, section_type)

    def claim(
        self, device_id: int, company_id: int, section_type: str = SECTION_ZERO_TOUCH
    ) -> None:
        """Claim a device (unclaimed in ``section_type``) for a customer."""
        with self._lock:
            self.fleet.claim(device_id, company_id, section_type)

    def set_metadata(self, device_id: int, entries: Mapping[str, str]) -> None:
        """Replace a device's metadata entries."""
        with self._lock:
            self.fleet.set_metadata(device_id, entries)

    def add_device(self, **kwargs: Any) -> int:
        """Register a new device and return its deviceId (kwargs of ``Fleet.add_device``)."""
        with self._lock:
            return self.fleet.add_device(**kwargs)

    def remove_device(self, device_id: int) -> None:
        """Delete a device from every listing and lookup."""
        with self._lock:
            self.fleet.remove_device(device_id)

    def add_customer(self, company_name: str, **kwargs: Any) -> int:
        """Add a customer and return its companyId (kwargs of ``Fleet.add_customer``)."""
        with self._lock:
            return self.fleet.add_customer(company_name, **kwargs)

    def remove_customer(self, company_id: int) -> None:
        """Remove a customer from customers.list and drop every claim it owns."""
        with self._lock:
            self.fleet.remove_customer(company_id)


def _decode_body(content: bytes, name: str) -> Any:
    if not content:
        return None
    if name == "token":
        try:
            text = content.decode()
        except UnicodeDecodeError:
            return None
        if text.lstrip().startswith("{"):
            try:
                return json.loads(text)
            except ValueError:
                return None
        return dict(parse_qsl(text, keep_blank_values=True))
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None

"""The emulator's request log: what each request was and how it was answered.

``LoggedRequest`` records one request (the JSON body decoded, the token endpoint's form read as
fields); ``Emulator.request_log`` keeps them in arrival order and ``Emulator.counts()`` counts
them per method, so tests assert bodies, headers and statuses, and benchmarks the bytes sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from inventory.emulator.records import JsonObject
from inventory.emulator.routes import route
from inventory.emulator.rpc import RpcError

TOKEN_PATH = "/token"


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
        bytes_sent: the size of the body as sent (after gzip); 0 when dropped.
        response: the answer's JSON (only with ``keep_responses``).
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
    bytes_sent: int = 0
    response: JsonObject | None = field(default=None, repr=False)


def method_name(http_method: str, path: str) -> str:
    """Return the API method name of a request (``token``, or ``unknown`` for no method)."""
    if path == TOKEN_PATH:
        return "token"
    try:
        return route(http_method, path)[0]
    except RpcError:
        return "unknown"


def decode_body(content: bytes, name: str) -> Any:
    """Decode a request body for the log: JSON, or the token endpoint's form (None: neither)."""
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

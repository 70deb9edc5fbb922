"""How a JSON answer goes on the wire: pretty-printed unless asked not to, gzipped when asked.

- ``prettyPrint`` is a standard parameter of the discovery document whose default is ``true``:
  Google indents its JSON by two spaces unless the query says ``prettyPrint=false``. The
  emulator does the same (``0`` counts as false too), for answers and errors alike.
- Google compresses an answer with gzip only when the request's ``Accept-Encoding`` accepts
  gzip AND its ``User-Agent`` contains ``gzip`` (Google API performance tips: "Using gzip").
  The answer then carries ``Content-Encoding: gzip``; every answer carries ``Vary`` naming the
  two request headers the encoding depends on.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from typing import Any

import orjson

JSON_TYPE = "application/json; charset=UTF-8"
VARY = "Accept-Encoding, User-Agent"
GZIP_LEVEL = 6


def pretty(query: Mapping[str, str]) -> bool:
    """Return False only when the query says ``prettyPrint=false`` (or ``0``)."""
    return query.get("prettyPrint", "true").strip().lower() not in ("false", "0")


def accepts_gzip(headers: Mapping[str, str]) -> bool:
    """Return True when ``headers`` (lower-case names) ask for gzip the way Google requires."""
    if "gzip" not in headers.get("user-agent", ""):
        return False
    for item in headers.get("accept-encoding", "").split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            q = params.strip().lower()
            return not (q.startswith("q=") and _weight(q[2:]) == 0.0)
    return False


def _weight(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0


def dumps(body: Any, *, pretty: bool) -> bytes:
    """Return ``body`` as UTF-8 JSON, indented by two spaces or compact.

    orjson writes the same bytes as ``json.dumps(..., ensure_ascii=False)`` with ``indent=2``
    or compact separators, many times faster (with an indent the standard library falls back
    to pure Python); the standard library takes what orjson refuses (integers beyond 64 bits).
    """
    try:
        return orjson.dumps(body, option=orjson.OPT_INDENT_2 if pretty else None)
    except orjson.JSONEncodeError:
        if pretty:
            return json.dumps(body, ensure_ascii=False, indent=2).encode()
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def encode(
    body: Any, query: Mapping[str, str], headers: Mapping[str, str]
) -> tuple[bytes, dict[str, str]]:
    """Return the bytes to send for ``body`` and the headers that describe them.

    Args:
        body: the JSON value.
        query: the request's query parameters.
        headers: the request's headers, lower-case names.

    Returns:
        ``(content, headers)``: the encoded body (gzipped when asked) and its Content-Type,
        Vary and (when gzipped) Content-Encoding.
    """
    data = dumps(body, pretty=pretty(query))
    out = {"Content-Type": JSON_TYPE, "Vary": VARY}
    if accepts_gzip(headers):
        data = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
        out["Content-Encoding"] = "gzip"
    return data, out

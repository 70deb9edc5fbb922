"""The one way secrets are kept out of what zt-inventory prints, logs and stores.

A database URL may carry a password (``postgresql+psycopg://zt:secret@db/inventory``, or
``?password=secret``); a driver's error message may quote it. :func:`redact_url` hides it in a
URL, :func:`scrub` in any text. Pure functions: the config, the store and the CLI use them alike.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_PARAMS = frozenset({"password", "passwd", "pass", "sslpassword"})
_USERINFO = re.compile(r"(?P<head>^[A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*:)(?P<pw>[^@/?#]*)@")


def redact_url(url: object) -> str:
    """The URL as text with its password (in the user info or the query) replaced by ``***``.

    Accepts text or any object whose ``str()`` is a URL (SQLAlchemy's ``URL`` already hides it).
    """
    text = str(url)
    text = _USERINFO.sub(
        lambda m: f"{m.group('head')}{MASK if m.group('pw') else ''}@", text, count=1
    )
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if not parts.query:
        return text
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
        return text
    query = urlencode([(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(query=query))


def url_secrets(url: object) -> list[str]:
    """The passwords a URL carries, as written and decoded (what a message might quote)."""
    text = str(url)
    found: list[str] = []
    match = _USERINFO.match(text)
    if match and match.group("pw") and match.group("pw") != MASK:
        found.append(match.group("pw"))
    try:
        query = urlsplit(text).query
    except ValueError:
        query = ""
    found += [v for k, v in parse_qsl(query) if k.lower() in _SECRET_PARAMS and v]
    return sorted(
        {s for value in found for s in (value, unquote(value)) if s}, key=len, reverse=True
    )


def scrub(text: str, url: object | None = None) -> str:
    """``text`` with every URL in it redacted and ``url``'s password removed wherever it appears.

    A driver's message (``password authentication failed …``, a DSN echoed back) is shown to
    users only through this.
    """
    text = re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", lambda m: redact_url(m.group(0)), text)
    for secret in url_secrets(url) if url is not None else ():
        text = text.replace(secret, MASK)
    return text

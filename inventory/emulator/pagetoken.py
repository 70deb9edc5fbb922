"""Opaque, tamper-evident page tokens bound to one query.

A token is base64url (no padding) of ``version | query digest | position | count | mac``:

- the query digest is the first 8 bytes of SHA-256 over the method and the canonical filter,
  so a token replayed against another query (other customers, section, identifier) fails;
- ``position`` is the index (deviceId order) of the last item returned: keyset tokens (the
  default) start the next page right after it, even if devices were added or removed in
  between;
- ``count`` is how many items earlier pages returned: offset tokens
  (``Behaviour.page_tokens == "offset"``) start the next page at that index of the listing as
  it is then. Every token carries both; the mode in force when it comes back decides;
- the mac is the first 12 bytes of HMAC-SHA256 under a key derived from the fleet's seed and
  partner, so a token edited by hand, or issued by an emulator of another fleet, fails.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

_VERSION = 1
_LAYOUT = struct.Struct(">B8sqI")
_MAC_BYTES = 12


class PageTokenError(ValueError):
    """The page token is malformed, tampered with, foreign, or for another query."""


class PageTokens:
    """Issue and check page tokens under one secret.

    Args:
        secret: the HMAC key.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @staticmethod
    def digest(method: str, query: str) -> bytes:
        """Return the 8-byte digest that binds a token to ``method`` and canonical ``query``."""
        return hashlib.sha256(f"{method}\x00{query}".encode()).digest()[:8]

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, method: str, query: str, position: int, count: int) -> str:
        """Return a token for the page after ``position``.

        Args:
            method: the API method (e.g. ``findByOwner``).
            query: the canonical filter of the query.
            position: the last index returned so far.
            count: items returned so far.

        Returns:
            The token.
        """
        payload = _LAYOUT.pack(_VERSION, self.digest(method, query), position, count)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=").decode()

    def parse(self, token: str, method: str, query: str) -> tuple[int, int]:
        """Return ``(position, count)`` from a token of this query.

        Args:
            token: the token as received.
            method: the API method it must have been issued for.
            query: the canonical filter it must have been issued for.

        Returns:
            The last index returned and the number of items returned so far.

        Raises:
            PageTokenError: when the token is not one this emulator issued for this query.
        """
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError) as exc:
            raise PageTokenError("page token is not base64url") from exc
        if len(raw) != _LAYOUT.size + _MAC_BYTES:
            raise PageTokenError("page token has the wrong length")
        payload, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise PageTokenError("page token signature does not match")
        version, digest, position, count = _LAYOUT.unpack(payload)
        if version != _VERSION or digest != self.digest(method, query):
            raise PageTokenError("page token belongs to a different query")
        return position, count

"""The emulator's OAuth 2.0 side: service-account key files, JWT-bearer grants, access tokens.

``write_service_account_key`` makes a real RSA key and a key file that
``google.oauth2.service_account.Credentials`` loads; its public key is registered in this
process, so every emulator here accepts assertions signed with it. Keys made elsewhere can be
registered with ``Emulator.register_key_file``. An assertion is accepted when it is an RS256 JWT
signed by a registered key, issued by that key's ``client_email``, current (``iat``/``exp``
checked against the wall clock with 5 minutes' leeway, at most one hour long), and its ``scope``
includes the zero-touch reseller scope.

In the zero-touch portal a service account is linked to reseller accounts; ``KeyRing.link`` does
the same per key: a token obtained with a linked key acts only for the partners it is linked to
(403 PERMISSION_DENIED for any other), while a key never linked acts for every partner.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SCOPE = "https://www.googleapis.com/auth/androidworkprovisioning"
JWT_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_CLIENT_EMAIL = "zt-inventory@zt-emulator.iam.gserviceaccount.com"
LEEWAY_S = 300
MAX_LIFETIME_S = 3600


@dataclass(frozen=True)
class RegisteredKey:
    """A service-account public key the token endpoint trusts."""

    key_id: str
    client_email: str
    public_key: rsa.RSAPublicKey


_REGISTRY: dict[str, RegisteredKey] = {}
_REGISTRY_LOCK = threading.Lock()


def register_key(key: RegisteredKey) -> None:
    """Trust ``key`` in every emulator of this process."""
    with _REGISTRY_LOCK:
        _REGISTRY[key.key_id] = key


def registered_keys() -> dict[str, RegisteredKey]:
    """Return the process-wide trusted keys by key ID."""
    with _REGISTRY_LOCK:
        return dict(_REGISTRY)


def write_service_account_key(
    path: str | os.PathLike[str],
    token_uri: str,
    client_email: str = DEFAULT_CLIENT_EMAIL,
    *,
    project_id: str = "zt-emulator",
    key_size: int = 2048,
) -> Path:
    """Write a service-account JSON key file (new RSA key) whose ``token_uri`` is the emulator's.

    Args:
        path: where to write the file (mode 0600).
        token_uri: the absolute URL of the emulator's token endpoint.
        client_email: the service account's email (the JWT issuer).
        project_id: the project named in the file.
        key_size: RSA modulus bits.

    Returns:
        The path written.
    """
    private = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    key_id = secrets.token_hex(20)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": key_id,
        "private_key": pem,
        "client_email": client_email,
        "client_id": str(int(key_id[:15], 16)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{client_email}",
        "universe_domain": "googleapis.com",
    }
    target = Path(path)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2)
    register_key(RegisteredKey(key_id, client_email, private.public_key()))
    return target


def load_key_file(path: str | os.PathLike[str]) -> RegisteredKey:
    """Read a service-account key file and return its public half.

    Args:
        path: a key file as ``write_service_account_key`` (or Google) writes them.

    Returns:
        The key to trust.

    Raises:
        ValueError: when the file is not an RSA service-account key.
    """
    info = json.loads(Path(path).read_text(encoding="utf-8"))
    private = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: not an RSA key")
    return RegisteredKey(info["private_key_id"], info["client_email"], private.public_key())


class OAuthError(Exception):
    """A token request the endpoint refuses; rendered as ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_assertion(
    assertion: str, keys: dict[str, RegisteredKey], wall_now: float
) -> tuple[dict[str, Any], RegisteredKey]:
    """Check a JWT-bearer assertion and return its claims and the key that signed it.

    Args:
        assertion: the compact JWT.
        keys: trusted keys by key ID.
        wall_now: the current Unix time.

    Returns:
        The JWT claims and the signing key.

    Raises:
        OAuthError: ``invalid_grant`` for a bad JWT, ``invalid_scope`` for a missing scope.
    """
    try:
        head_b64, body_b64, sig_b64 = assertion.split(".")
        header = json.loads(_b64(head_b64))
        claims = json.loads(_b64(body_b64))
        signature = _b64(sig_b64)
    except (ValueError, binascii.Error) as exc:
        raise OAuthError("invalid_grant", "Invalid JWT: malformed assertion.") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise OAuthError("invalid_grant", "Invalid JWT: malformed assertion.")
    if header.get("alg") != "RS256":
        raise OAuthError("invalid_grant", "Invalid JWT: only RS256 is supported.")
    kid = header.get("kid")
    candidates = [keys[kid]] if kid in keys else ([] if kid else list(keys.values()))
    signed = f"{head_b64}.{body_b64}".encode()
    key = None
    for candidate in candidates:
        try:
            candidate.public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        key = candidate
        break
    if key is None:
        raise OAuthError("invalid_grant", "Invalid JWT Signature.")
    if claims.get("iss") != key.client_email:
        raise OAuthError("invalid_grant", "Invalid JWT: iss is not the key's client_email.")
    aud = claims.get("aud")
    if not isinstance(aud, str) or not aud.endswith("/token"):
        raise OAuthError("invalid_grant", "Invalid JWT: aud must be the token endpoint.")
    iat, exp = claims.get("iat"), claims.get("exp")
    if (
        not isinstance(iat, int | float)
        or not isinstance(exp, int | float)
        or iat > wall_now + LEEWAY_S
        or exp < wall_now - LEEWAY_S
        or exp - iat > MAX_LIFETIME_S
    ):
        raise OAuthError(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
            "timeframe. Check your iat and exp values in the JWT claim.",
        )
    scopes = str(claims.get("scope", "")).split()
    if not scopes:
        raise OAuthError("invalid_scope", "Empty or missing scope not allowed.")
    if SCOPE not in scopes:
        raise OAuthError(
            "invalid_scope", f"Invalid OAuth scope or ID token audience provided; need {SCOPE}."
        )
    return claims, key


class TokenStore:
    """Access tokens issued by the token endpoint, each with its expiry on the emulator clock
    and the key it was obtained with."""

    def __init__(self) -> None:
        self._expiry: dict[str, tuple[float, str]] = {}

    def issue(self, now: float, ttl: float, key_id: str = "") -> str:
        """Issue a new token valid until ``now + ttl``, obtained with key ``key_id``."""
        if len(self._expiry) > 10_000:  # long-running servers: forget expired tokens
            self._expiry = {t: e for t, e in self._expiry.items() if e[0] > now}
        token = "ya29.emu-" + secrets.token_urlsafe(32)
        self._expiry[token] = (now + ttl, key_id)
        return token

    def state(self, token: str, now: float) -> str:
        """Return ``"valid"``, ``"expired"`` or ``"unknown"`` for ``token`` at ``now``."""
        entry = self._expiry.get(token)
        if entry is None:
            return "unknown"
        return "valid" if now < entry[0] else "expired"

    def key_of(self, token: str) -> str:
        """Return the id of the key ``token`` was obtained with ("" when unknown)."""
        entry = self._expiry.get(token)
        return "" if entry is None else entry[1]


class KeyRing:
    """One emulator's own trusted keys, their partner links, and the tokens it issued."""

    def __init__(self) -> None:
        self.keys: dict[str, RegisteredKey] = {}
        self.links: dict[str, frozenset[int]] = {}
        self.tokens = TokenStore()

    def trust(self, key: RegisteredKey) -> None:
        """Accept assertions signed by ``key`` (besides the process-wide keys)."""
        self.keys[key.key_id] = key

    def link(self, key_id: str, partner_ids: frozenset[int]) -> None:
        """Let tokens of key ``key_id`` act for ``partner_ids`` only."""
        self.links[key_id] = partner_ids

    def grant(self, form: Any, now: float, wall_now: float, ttl: float) -> dict[str, Any]:
        """Answer a token request's form: a new access token for a valid JWT-bearer grant.

        Raises:
            OAuthError: for a grant the endpoint refuses.
        """
        if not isinstance(form, dict) or form.get("grant_type") != JWT_GRANT_TYPE:
            grant = form.get("grant_type") if isinstance(form, dict) else None
            raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant}")
        keys = {**registered_keys(), **self.keys}
        _, key = verify_assertion(str(form.get("assertion", "")), keys, wall_now)
        token = self.tokens.issue(now, ttl, key.key_id)
        return {"access_token": token, "expires_in": max(int(ttl), 0), "token_type": "Bearer"}

    def allows(self, token: str, partner_id: int) -> bool:
        """Return True when ``token``'s key may act for ``partner_id``."""
        links = self.links.get(self.tokens.key_of(token))
        return links is None or partner_id in links

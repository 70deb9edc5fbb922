"""google-auth credentials as an ``httpx.Auth``.

Three ways in, named by ``auth.credentials``: a service-account key file, ``adc``
(Application Default Credentials) or ``anonymous`` (no Authorization header, for the emulator).
Tokens are refreshed shortly before they expire and once more after a 401. Token refreshes go
through the same httpx transport as the API calls, so tests run the real google-auth flow
against the emulator's token endpoint.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import google.auth
import google.auth.exceptions
import httpx
from google.auth import transport as ga_transport
from google.oauth2 import service_account

from inventory.errors import AuthError, ConfigError, RetriableApiError

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

SCOPE = "https://www.googleapis.com/auth/androidworkprovisioning"


class _Response(ga_transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class HttpxRequest(ga_transport.Request):
    """google-auth's transport interface over an httpx client (used to fetch tokens)."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> ga_transport.Response:
        try:
            response = self._client.request(
                method, url, content=body, headers=headers, timeout=timeout or 30.0
            )
        except httpx.HTTPError as exc:
            where = httpx.URL(url)
            host = f"{where.host}:{where.port}" if where.port else where.host
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise google.auth.exceptions.TransportError(  # type: ignore[no-untyped-call]
                f"token endpoint {host} unreachable: {type(exc).__name__}"
                + (f" ({detail})" if detail else "")
            ) from None
        return _Response(response)


def load_configured_credentials(spec: str, label: str) -> Credentials | None:
    """:func:`load_credentials`, where an unusable key file is bad configuration: nothing ran.

    Raises:
        ConfigError: naming the setting (``label``) and what is wrong with its file.
    """
    try:
        return load_credentials(spec)
    except AuthError as exc:
        raise ConfigError(f"{label}: {exc}") from None


def load_each(specs: Iterable[tuple[str, str]]) -> dict[str, Credentials | None]:
    """{key file: its credentials} for (key file, the setting that names it) pairs, each file
    loaded once (partners behind one key file share its credentials and their token).

    Raises:
        ConfigError: a key file is unusable, naming the setting.
    """
    loaded: dict[str, Credentials | None] = {}
    for spec, label in specs:
        if spec not in loaded:
            loaded[spec] = load_configured_credentials(spec, label)
    return loaded


def load_credentials(spec: str) -> Credentials | None:
    """Credentials for ``auth.credentials``: a key file path, ``adc`` or ``anonymous`` (None).

    Raises:
        AuthError: the key file or ADC cannot be loaded; the message never quotes the key.
    """
    if spec.lower() == "anonymous":
        return None
    if spec.lower() == "adc":
        try:
            credentials, _project = google.auth.default(scopes=[SCOPE])
        except google.auth.exceptions.DefaultCredentialsError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "not found"
            raise AuthError(
                f"Application Default Credentials could not be loaded ({first[:200]}); set "
                "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or set "
                "auth.credentials to the key file's path"
            ) from None
        return credentials
    path = Path(spec)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AuthError(
            f"service-account key file {path} does not exist; set auth.credentials to its path"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise AuthError(
            f"service-account key file {path} is not readable JSON; download a new JSON key "
            "for the service account"
        ) from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise AuthError(
            f"{path} is not a service-account key (its type is not service_account); use a "
            "JSON key of the service account linked in the zero-touch portal"
        )
    try:
        loaded: Credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=[SCOPE]
        )
        return loaded
    except (ValueError, KeyError) as exc:
        missing = str(exc).split(":")[0][:120]
        raise AuthError(
            f"service-account key file {path} is incomplete or damaged ({missing}); "
            "download a new JSON key"
        ) from None


class GoogleAuth(httpx.Auth):
    """Adds a bearer token from google-auth credentials; refreshes before expiry and after a 401.

    Args:
        credentials: google-auth credentials (already scoped).
        token_client: the httpx client used to reach the token endpoint.
    """

    def __init__(self, credentials: Credentials, token_client: httpx.Client) -> None:
        self.credentials = credentials
        self._request = HttpxRequest(token_client)
        self._lock = threading.Lock()

    def _refresh(self, *, force: bool, stale_token: str | None = None) -> str:
        with self._lock:
            creds = self.credentials
            # Another thread may have refreshed while this one waited for the lock.
            if force and creds.token is not None and creds.token != stale_token:
                return str(creds.token)
            # ``valid`` is False shortly before expiry too (google-auth's refresh threshold).
            if force or not creds.valid:
                try:
                    creds.refresh(self._request)  # type: ignore[no-untyped-call]
                except google.auth.exceptions.TransportError as exc:
                    raise RetriableApiError(f"token refresh failed: {exc}") from None
                except google.auth.exceptions.RefreshError as exc:
                    reason = str(exc.args[0]) if exc.args else "refused"
                    raise AuthError(
                        f"the token endpoint refused the credentials ({reason[:200]}); check "
                        "that the key is current and the service account is enabled"
                    ) from None
            return str(creds.token)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._refresh(force=False)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            response.read()
            token = self._refresh(force=True, stale_token=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request


def build_auth(spec: str, token_client: httpx.Client) -> httpx.Auth | None:
    """An ``httpx.Auth`` for ``auth.credentials``, or None for ``anonymous``."""
    credentials = load_credentials(spec)
    return None if credentials is None else GoogleAuth(credentials, token_client)

"""How a request is retried: which failures are transient, how long to wait, what to say.

Transient failures (429, 500, 502, 503, 504, connection errors, timeouts) are retried with
exponential backoff and full jitter, honouring ``Retry-After``, up to ``max_retries`` times.
Other 4xx stop with Google's status and message plus a hint. Every attempt goes through the
shared :class:`~inventory.api.limiter.RequestLimiter` and is counted in ``Counters``.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from inventory.api.limiter import Counters, RequestLimiter
from inventory.auth import SCOPE
from inventory.errors import (
    ApiError,
    AuthError,
    CancelledError,
    FatalApiError,
    RetriableApiError,
)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 60.0
AUTH_HINT = (
    f"check auth.credentials (key file or ADC) and that they carry the OAuth scope {SCOPE}, "
    "that the service account is linked to the reseller account in the zero-touch "
    "portal, the API is enabled in its Cloud project, and partner.id"
)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def backoff_delay(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Full-jitter exponential backoff, never shorter than the server's ``Retry-After``."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * (2**attempt))
    delay = rng.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, 3600.0))
    return delay


def google_error(response: httpx.Response) -> tuple[str, str]:
    """(canonical status, message) from a google.rpc error body, falling back to the HTTP reason."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return str(err.get("status") or ""), str(err.get("message") or "").strip()
    if isinstance(body, dict) and "error" in body:  # OAuth-style {"error": "...", ...}
        return str(body.get("error")), str(body.get("error_description") or "")
    return "", (response.reason_phrase or "")


def _path(response: httpx.Response) -> str:
    try:
        return response.request.url.path
    except RuntimeError:  # a response built without a request (tests)
        return ""


def classify(response: httpx.Response, what: str) -> ApiError:
    """The error to raise for a non-2xx response."""
    status = response.status_code
    canonical, message = google_error(response)
    path = _path(response)
    head = f"{what}: HTTP {status}{' ' + canonical if canonical else ''} on {path}"
    text = f"{head}: {message}" if message else head
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status in RETRY_STATUSES:
        return RetriableApiError(text, status=status, path=path, retry_after=retry_after)
    if status in (401, 403):
        return AuthError(f"{text}; {AUTH_HINT}", status=status, path=path)
    if status == 404:
        return FatalApiError(f"{text}; check api.endpoint and partner.id", status=status, path=path)
    return FatalApiError(text, status=status, path=path)


class RetryingSender:
    """Sends API requests with retries, the limiter and counters.

    Args:
        client: the httpx client (base URL, auth, timeouts already set).
        limiter: the shared rate and concurrency limiter.
        max_retries: retries after the first attempt.
        sleep: how to wait between attempts (tests inject a fake).
        counters: where requests and retries are counted.
        seed: for the jitter's random generator.
    """

    def __init__(
        self,
        client: httpx.Client,
        limiter: RequestLimiter,
        *,
        max_retries: int,
        sleep: Callable[[float], None] = time.sleep,
        counters: Counters | None = None,
        seed: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.client = client
        self.limiter = limiter
        self.max_retries = max_retries
        self.sleep = sleep
        self.counters = counters or Counters()
        self.should_stop = should_stop
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def request_json(
        self, method: str, path: str, what: str, *, json_body: Any = None, params: Any = None
    ) -> dict[str, Any]:
        """Send one API call, retrying transient failures; return its decoded JSON object.

        Raises:
            RetriableApiError: retries were exhausted.
            FatalApiError, AuthError: the API refused the call, or answered with something
                that is not a JSON object.
        """
        attempt = 0
        while True:
            if self.should_stop is not None and self.should_stop():
                raise CancelledError("cancelled")
            error: ApiError
            self.limiter.acquire()
            try:
                self.counters.add(requests=1)
                response = self.client.request(method, path, json=json_body, params=params)
            except httpx.TimeoutException as exc:
                error = RetriableApiError(f"{what}: timed out on {path} ({type(exc).__name__})")
            except httpx.TransportError as exc:
                error = RetriableApiError(f"{what}: connection failed on {path}: {exc}")
            except RetriableApiError as exc:  # e.g. the token endpoint was unreachable
                error = exc
            else:
                if response.is_success:
                    return decode_json(response, what)
                error = classify(response, what)
            finally:
                self.limiter.release()
            if not isinstance(error, RetriableApiError) or attempt >= self.max_retries:
                if isinstance(error, RetriableApiError) and attempt:
                    error.args = (f"{error.args[0]} (gave up after {attempt + 1} attempts)",)
                raise error
            with self._rng_lock:
                delay = backoff_delay(attempt, error.retry_after, self._rng)
            attempt += 1
            self.counters.add(retries=1)
            self.sleep(delay)


def decode_json(response: httpx.Response, what: str) -> dict[str, Any]:
    """The response body as a JSON object, or a FatalApiError that says what came instead."""
    path = _path(response)
    kind = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    try:
        # orjson first (several times faster); the standard library decides what orjson
        # refuses (NaN, an encoding other than UTF-8) and words the error
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = _decode_json_leniently(response, what, path, kind)
    if not isinstance(body, dict):
        raise FatalApiError(f"{what}: the response on {path} is not a JSON object", path=path)
    return body


def _decode_json_leniently(response: httpx.Response, what: str, path: str, kind: str) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FatalApiError(
            f"{what}: HTTP {response.status_code} on {path} answered {kind}, not JSON; "
            "check api.endpoint (a proxy or captive portal?)",
            status=response.status_code,
            path=path,
        ) from None

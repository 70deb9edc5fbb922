"""How a request is retried: which failures are transient, how long to wait, what to say.

Transient failures (429, 500, 502, 503, 504, connection errors, timeouts) are retried with
exponential backoff and full jitter, honouring ``Retry-After``, up to ``max_retries`` times.
Other 4xx stop with Google's status and message plus a hint. Every attempt goes through the
shared :class:`~inventory.api.limiter.RequestLimiter` and is counted in ``Counters``.

Retries are told on the ``inventory.api`` logger by :class:`RetryLog`: each one at DEBUG
(``--verbose``); otherwise one WARNING line a few seconds into a run of retries, or at once
before a long wait, then at most one line every few seconds. A connection that fails names the
endpoint's host and port, not only the path.
"""

from __future__ import annotations

import email.utils
import json
import logging
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

log = logging.getLogger("inventory.api")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 60.0
RETRY_QUIET_S = 3.0  # retries this far into a run of them, or a wait this long, show a line
RETRY_LINE_EVERY_S = 5.0  # and then at most one line this often
RETRY_SPELL_GAP_S = 30.0  # no retry for this long ends a run of retries
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


def host_of(url: httpx.URL) -> str:
    """``host:port`` of a URL (``host`` alone when the port is the scheme's default)."""
    return f"{url.host}:{url.port}" if url.port else url.host


def status_text(response: httpx.Response) -> str:
    """``HTTP 503 UNAVAILABLE``: the status and Google's canonical code, when it sent one."""
    canonical, _message = google_error(response)
    return f"HTTP {response.status_code}{' ' + canonical if canonical else ''}"


def classify(response: httpx.Response, what: str) -> ApiError:
    """The error to raise for a non-2xx response."""
    status = response.status_code
    _canonical, message = google_error(response)
    path = _path(response)
    head = f"{what}: {status_text(response)} on {path}"
    text = f"{head}: {message}" if message else head
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status in RETRY_STATUSES:
        return RetriableApiError(text, status=status, path=path, retry_after=retry_after)
    if status in (401, 403):
        return AuthError(f"{text}; {AUTH_HINT}", status=status, path=path)
    if status == 404:
        return FatalApiError(f"{text}; check api.endpoint and partner.id", status=status, path=path)
    return FatalApiError(text, status=status, path=path)


def transport_failure(exc: httpx.TransportError, host: str) -> str:
    """What went wrong on the way to ``host`` (``host:port``), in words a person acts on."""
    detail = str(exc).lower()
    if isinstance(exc, httpx.ConnectTimeout):
        return f"timed out connecting to {host}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out waiting for {host} ({type(exc).__name__})"
    if "refused" in detail:
        return f"connection refused by {host}"
    if any(
        word in detail
        for word in ("name or service", "name resolution", "nodename", "getaddrinfo", "no address")
    ):
        return f"cannot resolve host {host.rsplit(':', 1)[0] if ':' in host else host}"
    reason = str(exc).strip() or type(exc).__name__
    return f"connection to {host} failed ({reason})"


class RetryLog:
    """Tells the retries of one client on the ``inventory.api`` logger.

    With DEBUG on (``--verbose``) every retry is one line. Otherwise a retry shows a WARNING
    line only when it comes ``quiet_s`` or more into a spell of retries, or waits that long
    itself, and then at most one line every ``every_s`` seconds, which counts the retries it
    stands for; a spell ends after ``gap_s`` seconds without a retry. Thread-safe.

    Args:
        clock: monotonic seconds (tests inject a fake).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        quiet_s: float = RETRY_QUIET_S,
        every_s: float = RETRY_LINE_EVERY_S,
        gap_s: float = RETRY_SPELL_GAP_S,
    ) -> None:
        self.clock = clock
        self.quiet_s = quiet_s
        self.every_s = every_s
        self.gap_s = gap_s
        self._lock = threading.Lock()
        self._spell_start: float | None = None
        self._last_retry = 0.0
        self._last_line: float | None = None
        self._untold = 0  # retries since the last line

    def retry(
        self, reason: str, attempt: int, attempts: int, delay: float, *, why: str = ""
    ) -> None:
        """Report that ``attempt`` of ``attempts`` failed with ``reason``; the next comes in
        ``delay`` seconds (``why`` says what set it, e.g. ``Retry-After``)."""
        wait = f"next in {delay:.1f} s{f' ({why})' if why else ''}"
        line = f"retrying: {reason}, attempt {attempt} of {attempts}, {wait}"
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s", line)
            return
        now = self.clock()
        with self._lock:
            if self._spell_start is None or now - self._last_retry > self.gap_s:
                self._spell_start, self._last_line, self._untold = now, None, 0
            self._last_retry = now
            self._untold += 1
            due = now - self._spell_start >= self.quiet_s or delay >= self.quiet_s
            if not due or (self._last_line is not None and now - self._last_line < self.every_s):
                return
            since = self._spell_start if self._last_line is None else self._last_line
            told, self._untold, self._last_line = self._untold, 0, now
        if told > 1:
            line += f" ({told} retries in the last {max(now - since, 1.0):.0f} s)"
        log.warning("%s", line)


class RetryingSender:
    """Sends API requests with retries, the limiter and counters.

    Args:
        client: the httpx client (base URL, auth, timeouts already set).
        limiter: the shared rate and concurrency limiter.
        max_retries: retries after the first attempt.
        sleep: how to wait between attempts (tests inject a fake).
        counters: where requests and retries are counted.
        seed: for the jitter's random generator.
        should_stop: polled before each attempt; True raises ``CancelledError``.
        retry_log: tells the retries (default: one of its own on the real clock).
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
        retry_log: RetryLog | None = None,
    ) -> None:
        self.client = client
        self.limiter = limiter
        self.max_retries = max_retries
        self.sleep = sleep
        self.counters = counters or Counters()
        self.should_stop = should_stop
        self.retry_log = retry_log or RetryLog()
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
        host = host_of(self.client.base_url)
        while True:
            if self.should_stop is not None and self.should_stop():
                raise CancelledError("cancelled")
            error: ApiError
            self.limiter.acquire()
            try:
                self.counters.add(requests=1)
                response = self.client.request(method, path, json=json_body, params=params)
            except httpx.TransportError as exc:
                reason = transport_failure(exc, host)
                error = RetriableApiError(f"{what}: {reason} on {path}", path=path)
                reason += f" on {method} {path}"
            except RetriableApiError as exc:  # e.g. the token endpoint was unreachable
                error, reason = exc, str(exc)
            else:
                if response.is_success:
                    return decode_json(response, what)
                error = classify(response, what)
                reason = f"{status_text(response)} from {host} on {method} {path}"
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
            honoured = error.retry_after is not None and delay == min(error.retry_after, 3600.0)
            self.retry_log.retry(
                reason,
                attempt,
                self.max_retries + 1,
                delay,
                why="Retry-After" if honoured else "",
            )
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

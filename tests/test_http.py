"""Tests of the HTTP layer: hand-built ``httpx.Response``s, ``httpx.MockTransport``, fake time.

Nothing here touches the network or really sleeps: the transport's ``sleep`` and the limiter's
``clock``/``sleep`` are fakes.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from inventory.api.client import USER_AGENT, build_http_client
from inventory.api.limiter import Counters, RequestLimiter
from inventory.api.retry import (
    AUTH_HINT,
    BACKOFF_MAX_S,
    RETRY_STATUSES,
    RetryingSender,
    RetryLog,
    backoff_delay,
    classify,
    decode_json,
    google_error,
    parse_retry_after,
    transport_failure,
)
from inventory.errors import (
    ApiError,
    AuthError,
    CancelledError,
    FatalApiError,
    RetriableApiError,
)

BASE = "https://zt.test"
PATH = "/v1/partners/123/devices:findByOwner"
WHAT = "findByOwner"


def response(
    status: int,
    *,
    body: Any = None,
    text: str | None = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    path: str = PATH,
) -> httpx.Response:
    """A response as the client would return it, tied to a POST on ``path``."""
    request = httpx.Request("POST", BASE + path)
    if body is not None:
        return httpx.Response(status, json=body, headers=headers, request=request)
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    return httpx.Response(status, content=content or b"", headers=headers, request=request)


def rpc_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status, "details": []}}


HTML = "<html><head><title>Sign in</title></head><body>captive portal</body></html>"


# --- google_error ----------------------------------------------------------------------------


def test_google_error_from_rpc_status_body() -> None:
    resp = response(
        403, body=rpc_error(403, "PERMISSION_DENIED", "  The caller does not have permission\n")
    )
    assert google_error(resp) == ("PERMISSION_DENIED", "The caller does not have permission")


def test_google_error_rpc_body_without_status_or_message() -> None:
    assert google_error(response(500, body={"error": {"code": 500}})) == ("", "")


def test_google_error_from_oauth_style_body() -> None:
    resp = response(
        401,
        body={"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    )
    assert google_error(resp) == ("invalid_grant", "Token has been expired or revoked.")


def test_google_error_oauth_style_without_description() -> None:
    assert google_error(response(401, body={"error": "invalid_client"})) == ("invalid_client", "")


@pytest.mark.parametrize(
    ("status", "reason"),
    [(502, "Bad Gateway"), (503, "Service Unavailable"), (404, "Not Found")],
)
def test_google_error_from_html_body_falls_back_to_reason(status: int, reason: str) -> None:
    resp = response(status, text=HTML, headers={"Content-Type": "text/html"})
    assert google_error(resp) == ("", reason)


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"\xff\xfe\x00garbage", b"[1, 2]", b'{"message": "no error key"}'],
)
def test_google_error_from_other_bodies(body: bytes) -> None:
    assert google_error(response(500, content=body)) == ("", "Internal Server Error")


# --- classify --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "canonical", "kind"),
    [
        (400, "INVALID_ARGUMENT", FatalApiError),
        (401, "UNAUTHENTICATED", AuthError),
        (403, "PERMISSION_DENIED", AuthError),
        (404, "NOT_FOUND", FatalApiError),
        (409, "ALREADY_EXISTS", FatalApiError),
        (429, "RESOURCE_EXHAUSTED", RetriableApiError),
        (500, "INTERNAL", RetriableApiError),
        (502, "", RetriableApiError),
        (503, "UNAVAILABLE", RetriableApiError),
        (504, "DEADLINE_EXCEEDED", RetriableApiError),
    ],
)
def test_classify_kind_status_and_path(status: int, canonical: str, kind: type[ApiError]) -> None:
    body = rpc_error(status, canonical, f"message for {status}")
    error = classify(response(status, body=body), WHAT)
    assert type(error) is kind
    assert error.status == status
    assert error.path == PATH
    head = f"{WHAT}: HTTP {status}{' ' + canonical if canonical else ''} on {PATH}"
    assert str(error).startswith(f"{head}: message for {status}")


def test_classify_retry_statuses_constant() -> None:
    assert frozenset({429, 500, 502, 503, 504}) == RETRY_STATUSES


def test_classify_400_is_fatal_without_hints() -> None:
    body = rpc_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
    error = classify(response(400, body=body), WHAT)
    assert str(error) == (
        f"{WHAT}: HTTP 400 INVALID_ARGUMENT on {PATH}: Request contains an invalid argument."
    )
    assert not isinstance(error, RetriableApiError | AuthError)
    assert error.retry_after is None


def test_classify_403_names_credentials_scope_link_api_and_partner() -> None:
    """SPEC guarantee 5: the hint names what to check, the OAuth scope among them."""
    body = rpc_error(403, "PERMISSION_DENIED", "The caller does not have permission")
    error = classify(response(403, body=body), WHAT)
    assert isinstance(error, AuthError)
    assert str(error) == (
        "findByOwner: HTTP 403 PERMISSION_DENIED on /v1/partners/123/devices:findByOwner: "
        "The caller does not have permission; check auth.credentials (key file or ADC) and "
        "that they carry the OAuth scope https://www.googleapis.com/auth/androidworkprovisioning, "
        "that the service account is linked to the reseller account in the zero-touch portal, "
        "the API is enabled in its Cloud project, and partner.id"
    )


def test_classify_401_carries_the_same_hint() -> None:
    body = rpc_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
    error = classify(response(401, body=body), WHAT)
    assert isinstance(error, AuthError)
    assert str(error) == (
        f"{WHAT}: HTTP 401 UNAUTHENTICATED on {PATH}: "
        f"Request had invalid authentication credentials.; {AUTH_HINT}"
    )


def test_classify_403_is_not_retried_even_for_rate_limit_reason() -> None:
    body = rpc_error(403, "PERMISSION_DENIED", "rateLimitExceeded")
    assert isinstance(classify(response(403, body=body), WHAT), AuthError)


def test_classify_oauth_401() -> None:
    resp = response(401, body={"error": "invalid_grant", "error_description": "Bad JWT"})
    error = classify(resp, "token")
    assert isinstance(error, AuthError)
    assert str(error) == f"token: HTTP 401 invalid_grant on {PATH}: Bad JWT; {AUTH_HINT}"


def test_classify_404_hints_endpoint_and_partner() -> None:
    error = classify(response(404, text=HTML, headers={"Content-Type": "text/html"}), WHAT)
    assert type(error) is FatalApiError
    assert str(error) == f"{WHAT}: HTTP 404 on {PATH}: Not Found; check api.endpoint and partner.id"


def test_classify_html_502_uses_reason_phrase() -> None:
    error = classify(response(502, text=HTML, headers={"Content-Type": "text/html"}), WHAT)
    assert isinstance(error, RetriableApiError)
    assert str(error) == f"{WHAT}: HTTP 502 on {PATH}: Bad Gateway"
    assert "<html>" not in str(error)


def test_classify_no_message_at_all() -> None:
    error = classify(response(500, body={"error": {}}), WHAT)
    assert str(error) == f"{WHAT}: HTTP 500 on {PATH}"


def test_classify_reads_retry_after_seconds() -> None:
    body = rpc_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded")
    error = classify(response(429, body=body, headers={"Retry-After": "30"}), WHAT)
    assert isinstance(error, RetriableApiError)
    assert error.retry_after == 30.0
    assert "Quota exceeded" in str(error)


def test_classify_path_excludes_query_and_host() -> None:
    request = httpx.Request("GET", BASE + "/v1/partners/123/customers?pageToken=SECRET")
    error = classify(httpx.Response(500, request=request), WHAT)
    assert error.path == "/v1/partners/123/customers"
    assert "SECRET" not in str(error)
    assert "zt.test" not in str(error)


def test_classify_response_without_request() -> None:
    error = classify(httpx.Response(500), WHAT)
    assert error.path == ""


# --- parse_retry_after -----------------------------------------------------------------------

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 08:28:00 GMT", 3600.0),
        ("Wed, 21 Oct 2015 09:28:00 +0200", 0.0),  # 07:28 UTC: now
        ("Wed, 21 Oct 2015 07:29:00 -0000", 60.0),  # -0000: naive, taken as UTC
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # in the past
    ],
)
def test_parse_retry_after(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize("value", [None, "", "soon", "Wed, 99 Foo 2015", "12 seconds", "   "])
def test_parse_retry_after_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_parse_retry_after_non_finite_is_none(value: str) -> None:
    assert parse_retry_after(value, now=NOW) is None


# --- backoff_delay ---------------------------------------------------------------------------


class EdgeRandom(random.Random):
    """A Random whose ``uniform`` returns one end of the range and records its arguments."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return b if self.high else a


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (8, 60.0), (30, 60.0)],
)
def test_backoff_ceiling_doubles_up_to_the_max(attempt: int, ceiling: float) -> None:
    rng = EdgeRandom(high=True)
    assert backoff_delay(attempt, None, rng) == ceiling
    assert rng.calls == [(0, ceiling)]
    assert backoff_delay(attempt, None, EdgeRandom(high=False)) == 0.0


def test_backoff_is_full_jitter_within_bounds() -> None:
    rng = random.Random(1234)
    for attempt in range(12):
        ceiling = min(BACKOFF_MAX_S, 0.5 * 2**attempt)
        delays = [backoff_delay(attempt, None, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling  # jitter spans the range ...
        assert min(delays) < 0.2 * ceiling  # ... from near zero


@pytest.mark.parametrize(
    ("attempt", "retry_after", "high", "expected"),
    [
        (0, 10.0, True, 10.0),  # Retry-After is a floor above the jitter
        (0, 10.0, False, 10.0),
        (5, 7.0, True, 16.0),  # jitter above the floor wins
        (5, 7.0, False, 7.0),
        (0, 0.0, True, 0.5),
        (0, 99999.0, False, 3600.0),  # an absurd Retry-After is capped at an hour
    ],
)
def test_backoff_retry_after_floor(
    attempt: int, retry_after: float, high: bool, expected: float
) -> None:
    assert backoff_delay(attempt, retry_after, EdgeRandom(high=high)) == expected


# --- decode_json -----------------------------------------------------------------------------


def test_decode_json_returns_object() -> None:
    assert decode_json(response(200, body={"devices": [], "totalSize": 0}), WHAT) == {
        "devices": [],
        "totalSize": 0,
    }


def test_decode_json_html_with_200_names_the_content_type() -> None:
    resp = response(200, text=HTML, headers={"Content-Type": "text/html; charset=utf-8"})
    with pytest.raises(FatalApiError) as info:
        decode_json(resp, WHAT)
    assert str(info.value) == (
        f"{WHAT}: HTTP 200 on {PATH} answered text/html, not JSON; "
        "check api.endpoint (a proxy or captive portal?)"
    )
    assert info.value.status == 200
    assert info.value.path == PATH
    assert not isinstance(info.value, RetriableApiError)


def test_decode_json_without_content_type() -> None:
    with pytest.raises(FatalApiError, match="answered no content type, not JSON"):
        decode_json(response(200, content=b"\x00\x01"), WHAT)


@pytest.mark.parametrize("body", [[1, 2], "text", 3, None])
def test_decode_json_non_object(body: Any) -> None:
    resp = response(
        200, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with pytest.raises(FatalApiError) as info:
        decode_json(resp, WHAT)
    assert str(info.value) == f"{WHAT}: the response on {PATH} is not a JSON object"


# --- build_http_client ----------------------------------------------------------------------------


def test_build_http_client_sets_base_url_headers_and_transport() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"Location": "https://elsewhere.test/"})

    with build_http_client(
        BASE, timeout_s=7, concurrency=2, transport=httpx.MockTransport(handler)
    ) as client:
        reply = client.get("/v1/x")
        assert client.timeout == httpx.Timeout(7)
    assert reply.status_code == 302  # redirects are not followed
    assert str(seen[0].url) == BASE + "/v1/x"
    assert seen[0].headers["User-Agent"] == USER_AGENT
    assert seen[0].headers["Accept"] == "application/json"
    assert len(seen) == 1


# --- RetryingSender.request_json ---------------------------------------------------------------

Step = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class Script:
    """A MockTransport handler that plays scripted responses and raises scripted errors."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.steps:
            raise AssertionError("more requests than scripted")
        step = self.steps.pop(0)
        if isinstance(step, httpx.RequestError):
            step.request = request
            raise step
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(request)


class CountingLimiter(RequestLimiter):
    """A limiter without caps that counts acquire/release pairs."""

    def __init__(self) -> None:
        super().__init__(0, 100.0, 4)
        self.acquired = 0
        self.released = 0

    def acquire(self) -> None:
        super().acquire()
        self.acquired += 1

    def release(self) -> None:
        self.released += 1
        super().release()


class Harness:
    def __init__(self, steps: list[Step], *, max_retries: int = 5, **kwargs: Any) -> None:
        self.script = Script(steps)
        self.sleeps: list[float] = []
        self.counters = Counters()
        self.limiter = CountingLimiter()
        self.client = httpx.Client(base_url=BASE, transport=httpx.MockTransport(self.script))
        self.transport = RetryingSender(
            self.client,
            self.limiter,
            max_retries=max_retries,
            sleep=self.sleeps.append,
            counters=self.counters,
            seed=7,
            **kwargs,
        )

    def call(self) -> dict[str, Any]:
        return self.transport.request_json(
            "POST", PATH, WHAT, json_body={"sectionType": "SECTION_TYPE_ZERO_TOUCH", "limit": "100"}
        )

    def close(self) -> None:
        self.client.close()


MakeHarness = Callable[..., Harness]


@pytest.fixture
def harness() -> Iterator[MakeHarness]:
    made: list[Harness] = []

    def make(steps: list[Step], **kwargs: Any) -> Harness:
        h = Harness(steps, **kwargs)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
        assert h.limiter.acquired == h.limiter.released  # every path gives its slot back


def ok(body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.Response(200, json=body if body is not None else {"devices": [1]})


def err(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=rpc_error(status, "X", f"boom {status}"), headers=headers)


def test_success_first_time(harness: MakeHarness) -> None:
    h = harness([ok({"devices": [1], "totalSize": 1})])
    assert h.call() == {"devices": [1], "totalSize": 1}
    assert (h.counters.requests, h.counters.retries) == (1, 0)
    assert h.sleeps == []
    (request,) = h.script.requests
    assert request.method == "POST"
    assert request.url.path == PATH
    assert request.read() == b'{"sectionType":"SECTION_TYPE_ZERO_TOUCH","limit":"100"}'


def test_retries_transient_failures_then_succeeds(harness: MakeHarness) -> None:
    h = harness(
        [
            err(503),
            err(429, {"Retry-After": "7"}),
            httpx.ConnectError("connection refused"),
            httpx.ReadTimeout("read timed out"),
            err(500),
            err(502),
            err(504),
            ok(),
        ],
        max_retries=8,
    )
    assert h.call() == {"devices": [1]}
    assert h.counters.requests == 8
    assert h.counters.retries == 7
    assert len(h.script.requests) == 8
    assert len(h.sleeps) == 7
    assert h.sleeps[1] == 7.0  # Retry-After 7 beats attempt 1's ceiling of 1 s
    for attempt, delay in enumerate(h.sleeps):
        if attempt != 1:
            assert 0.0 <= delay <= min(BACKOFF_MAX_S, 0.5 * 2**attempt)
    # every attempt sends the same request
    assert {r.read() for r in h.script.requests} == {h.script.requests[0].read()}


def test_retry_after_is_honoured_on_503(harness: MakeHarness) -> None:
    h = harness([err(503, {"Retry-After": "42"}), ok()])
    h.call()
    assert h.sleeps == [42.0]


def test_gives_up_after_max_retries(harness: MakeHarness) -> None:
    h = harness([err(500)] * 4, max_retries=3)
    with pytest.raises(RetriableApiError) as info:
        h.call()
    assert str(info.value) == (f"{WHAT}: HTTP 500 X on {PATH}: boom 500 (gave up after 4 attempts)")
    assert info.value.status == 500
    assert h.counters.requests == 4
    assert h.counters.retries == 3
    assert len(h.sleeps) == 3
    assert h.script.steps == []


def test_gives_up_on_transport_errors(harness: MakeHarness) -> None:
    h = harness([httpx.ConnectError("refused")] * 3, max_retries=2)
    with pytest.raises(RetriableApiError) as info:
        h.call()
    assert str(info.value) == (
        f"{WHAT}: connection refused by zt.test on {PATH} (gave up after 3 attempts)"
    )
    assert (h.counters.requests, h.counters.retries) == (3, 2)


def test_gives_up_on_timeouts(harness: MakeHarness) -> None:
    h = harness([httpx.ReadTimeout("slow")] * 2, max_retries=1)
    with pytest.raises(RetriableApiError) as info:
        h.call()
    assert str(info.value) == (
        f"{WHAT}: timed out waiting for zt.test (ReadTimeout) on {PATH} (gave up after 2 attempts)"
    )
    assert (h.counters.requests, h.counters.retries) == (2, 1)


def test_max_retries_zero_tries_once(harness: MakeHarness) -> None:
    h = harness([err(429, {"Retry-After": "5"})], max_retries=0)
    with pytest.raises(RetriableApiError) as info:
        h.call()
    assert "gave up" not in str(info.value)
    assert info.value.retry_after == 5.0
    assert (h.counters.requests, h.counters.retries) == (1, 0)
    assert h.sleeps == []


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, FatalApiError), (401, AuthError), (403, AuthError), (404, FatalApiError)],
)
def test_does_not_retry_other_4xx(harness: MakeHarness, status: int, kind: type[ApiError]) -> None:
    h = harness([err(status), ok()])
    with pytest.raises(kind) as info:
        h.call()
    assert type(info.value) is kind
    assert info.value.status == status
    assert f"boom {status}" in str(info.value)
    assert (h.counters.requests, h.counters.retries) == (1, 0)
    assert h.sleeps == []
    assert len(h.script.steps) == 1  # the success was never fetched


def test_fatal_after_some_retries(harness: MakeHarness) -> None:
    h = harness([err(503), err(403)])
    with pytest.raises(AuthError):
        h.call()
    assert (h.counters.requests, h.counters.retries) == (2, 1)
    assert len(h.sleeps) == 1


def test_html_with_200_is_fatal_not_retried(harness: MakeHarness) -> None:
    h = harness([httpx.Response(200, text=HTML, headers={"Content-Type": "text/html"}), ok()])
    with pytest.raises(FatalApiError, match="answered text/html, not JSON"):
        h.call()
    assert h.counters.requests == 1
    assert h.sleeps == []


def test_cancelled_before_sending(harness: MakeHarness) -> None:
    h = harness([ok()], should_stop=lambda: True)
    with pytest.raises(CancelledError) as info:
        h.call()
    assert str(info.value) == "cancelled"
    assert h.script.requests == []
    assert h.counters.requests == 0


def test_cancelled_between_retries(harness: MakeHarness) -> None:
    stop = threading.Event()

    def fail_and_stop(request: httpx.Request) -> httpx.Response:
        stop.set()
        return err(503)

    h = harness([fail_and_stop, ok()], should_stop=stop.is_set)
    with pytest.raises(CancelledError, match="cancelled"):
        h.call()
    assert h.counters.requests == 1
    assert len(h.script.steps) == 1


def test_unexpected_exception_still_releases_the_limiter(harness: MakeHarness) -> None:
    h = harness([RuntimeError("handler bug")])
    with pytest.raises(RuntimeError, match="handler bug"):
        h.call()
    # the fixture asserts acquire/release balance


def test_same_seed_same_jitter() -> None:
    runs = []
    for _ in range(2):
        h = Harness([err(500)] * 4, max_retries=3)
        with pytest.raises(RetriableApiError):
            h.call()
        h.close()
        runs.append(h.sleeps)
    assert runs[0] == runs[1]
    assert len(runs[0]) == 3


def test_counters_are_shared_and_default() -> None:
    counters = Counters()
    counters.add(requests=2)
    counters.add(retries=3)
    counters.add(requests=1, retries=1)
    assert (counters.requests, counters.retries) == (3, 4)
    client = httpx.Client(transport=httpx.MockTransport(lambda r: ok()), base_url=BASE)
    transport = RetryingSender(client, RequestLimiter(0, 1, 1), max_retries=0)
    assert transport.request_json("GET", "/x", "x") == {"devices": [1]}
    assert transport.counters.requests == 1
    client.close()


# --- what a retry says ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection refused by h:8080"),
        (
            httpx.ConnectError("[Errno -2] Name or service not known"),
            "cannot resolve host h",
        ),
        (
            httpx.ConnectError("[Errno -3] Temporary failure in name resolution"),
            "cannot resolve host h",
        ),
        (httpx.ConnectTimeout("timed out"), "timed out connecting to h:8080"),
        (httpx.ReadTimeout("timed out"), "timed out waiting for h:8080 (ReadTimeout)"),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            "connection to h:8080 failed (Server disconnected without sending a response.)",
        ),
    ],
)
def test_transport_failures_name_the_host(error: httpx.TransportError, expected: str) -> None:
    assert transport_failure(error, "h:8080") == expected


def test_a_dead_endpoint_is_named_with_its_host_and_port() -> None:
    """A real connection to a closed loopback port: the message names 127.0.0.1:1."""
    client = httpx.Client(base_url="http://127.0.0.1:1", timeout=5.0)
    sender = RetryingSender(client, RequestLimiter(0, 1, 1), max_retries=1, sleep=lambda s: None)
    with pytest.raises(RetriableApiError) as info:
        sender.request_json("GET", "/v1/partners/1/customers", "customers.list")
    client.close()
    assert str(info.value) == (
        "customers.list: connection refused by 127.0.0.1:1 on /v1/partners/1/customers "
        "(gave up after 2 attempts)"
    )


class TickingClock:
    """A clock that moves by the sleeps of the sender (and by hand)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _retry_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "inventory.api"]


def test_verbose_logs_every_retry(harness: MakeHarness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="inventory.api")
    h = harness(
        [err(503), httpx.ConnectError("[Errno 111] Connection refused"), err(429), ok()],
        max_retries=3,
    )
    h.call()
    waits = [f"next in {s:.1f} s" for s in h.sleeps]
    post = f"from zt.test on POST {PATH}"
    assert _retry_lines(caplog) == [
        ("DEBUG", f"retrying: HTTP 503 X {post}, attempt 1 of 4, {waits[0]}"),
        ("DEBUG", f"retrying: connection refused by zt.test on POST {PATH}, attempt 2 of 4, "
         f"{waits[1]}"),
        ("DEBUG", f"retrying: HTTP 429 X {post}, attempt 3 of 4, {waits[2]}"),
    ]  # fmt: skip


def test_without_verbose_a_retry_storm_shows_one_line_a_few_seconds_in(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="inventory.api")
    clock = TickingClock()
    told = RetryLog(clock)
    # a retry every half second for 12 s, by several threads' worth of requests
    for n in range(24):
        told.retry(f"HTTP 503 from h on GET /p{n}", 1, 9, 0.4)
        clock.now += 0.5
    assert _retry_lines(caplog) == [
        ("WARNING", "retrying: HTTP 503 from h on GET /p6, attempt 1 of 9, next in 0.4 s "
         "(7 retries in the last 3 s)"),
        ("WARNING", "retrying: HTTP 503 from h on GET /p16, attempt 1 of 9, next in 0.4 s "
         "(10 retries in the last 5 s)"),
    ]  # fmt: skip
    # a quiet spell ends the storm: the next one starts counting again
    caplog.clear()
    clock.now += 60
    told.retry("HTTP 503 from h on GET /q", 1, 9, 0.4)
    assert _retry_lines(caplog) == []


def test_without_verbose_a_long_wait_shows_at_once(
    harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="inventory.api")
    clock = TickingClock()
    h = harness([err(429, {"Retry-After": "42"}), err(503), ok()], retry_log=RetryLog(clock))
    h.call()
    assert _retry_lines(caplog) == [
        ("WARNING", f"retrying: HTTP 429 X from zt.test on POST {PATH}, attempt 1 of 6, "
         "next in 42.0 s (Retry-After)"),
    ]  # fmt: skip


def test_a_dead_endpoint_without_verbose(
    harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Backoff doubles: the first line comes once the spell is 3 s old, then every 5 s."""
    caplog.set_level(logging.INFO, logger="inventory.api")
    clock = TickingClock()
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    h = harness([refused] * 9, max_retries=8, retry_log=RetryLog(clock))
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.sleep(seconds)

    h.transport.sleep = sleep
    with pytest.raises(RetriableApiError, match="gave up after 9 attempts"):
        h.call()
    lines = _retry_lines(caplog)
    assert 1 <= len(lines) <= 1 + sum(waits) / 5
    assert all(level == "WARNING" for level, _ in lines)
    assert lines[0][1].startswith(f"retrying: connection refused by zt.test on POST {PATH}, ")


# --- RequestLimiter --------------------------------------------------------------------------


class FakeTime:
    """A clock that only moves when someone sleeps; ``on_sleep`` can act during a sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[], None] | None = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep()


def limiter(max_requests: int, window_s: float, concurrency: int, t: FakeTime) -> RequestLimiter:
    return RequestLimiter(max_requests, window_s, concurrency, clock=t.clock, sleep=t.sleep)


def test_limiter_allows_n_then_waits_for_the_window() -> None:
    t = FakeTime()
    lim = limiter(3, 100.0, 10, t)
    for _ in range(3):
        lim.acquire()
        lim.release()
    assert t.sleeps == []
    lim.acquire()
    assert t.sleeps == [100.0]
    assert t.now == 100.0
    lim.release()


def test_limiter_window_counts_from_response_time() -> None:
    t = FakeTime()
    lim = limiter(2, 100.0, 10, t)
    lim.acquire()
    t.now = 30.0  # a slow response: the request counts until 30 + 100
    lim.release()
    lim.acquire()
    lim.release()
    lim.acquire()
    assert t.now == pytest.approx(130.0)
    assert t.sleeps == [pytest.approx(100.0)]


def test_limiter_counts_requests_in_flight() -> None:
    t = FakeTime()
    lim = limiter(2, 100.0, 10, t)
    lim.acquire()
    lim.acquire()
    released: list[float] = []

    def response_arrives() -> None:  # another thread's response, during the first poll
        if not released:
            t.now = 1.0  # (a round time keeps the float arithmetic exact)
            released.append(t.now)
            lim.release()

    t.on_sleep = response_arrives
    lim.acquire()
    # first a short poll (nothing has finished), then until the finished one leaves the window
    assert t.sleeps == [0.05, 100.0]
    assert t.now == 101.0
    lim.release()
    lim.release()


def test_limiter_zero_disables_the_rate_cap() -> None:
    t = FakeTime()
    lim = limiter(0, 100.0, 1000, t)
    for _ in range(500):
        lim.acquire()
    for _ in range(500):
        lim.release()
    assert t.sleeps == []


def test_limiter_never_exceeds_n_in_any_window() -> None:
    """Simulate overlapping requests; no half-open window of ``window_s`` sees more than N."""
    max_requests, window = 5, 10.0
    for seed in range(20):
        rng = random.Random(seed)
        t = FakeTime()
        lim = limiter(max_requests, window, 10, t)
        in_flight: list[tuple[float, int]] = []  # (scheduled finish, index)
        spans: list[list[float]] = []  # [sent, answered]
        while len(spans) < 60 or in_flight:
            # keep at most N-1 in flight so a blocked acquire can always progress by sleeping
            may_send = len(spans) < 60 and len(in_flight) < max_requests - 1
            if may_send and (not in_flight or rng.random() < 0.6):
                lim.acquire()
                spans.append([t.now, -1.0])
                in_flight.append((t.now + rng.uniform(0.0, 4.0), len(spans) - 1))
                in_flight.sort()
            else:
                finish, index = in_flight.pop(0)
                t.now = max(t.now, finish)
                spans[index][1] = t.now
                lim.release()
            t.now += rng.choice([0.0, 0.0, 0.1, 1.0])
        assert t.sleeps, "the simulation never hit the cap"
        # count(t) = #{i: answered_i >= t and sent_i < t + window}; its max is at some answered_i
        worst = max(
            sum(1 for sent, answered in spans if answered >= start and sent < start + window)
            for start in (answered for _, answered in spans)
        )
        assert worst <= max_requests, f"seed {seed}: {worst} requests in one window"
        assert worst == max_requests  # and the cap is actually used


def test_limiter_concurrency_cap_blocks_until_release() -> None:
    t = FakeTime()
    lim = limiter(0, 100.0, 2, t)
    lim.acquire()
    lim.acquire()
    got_in = threading.Event()

    def third() -> None:
        lim.acquire()
        got_in.set()

    worker = threading.Thread(target=third, daemon=True)
    worker.start()
    assert not got_in.wait(0.05)  # blocked on the concurrency cap
    lim.release()
    assert got_in.wait(5.0)
    worker.join(5.0)
    lim.release()
    lim.release()
    assert t.sleeps == []


def test_limiter_concurrency_cap_under_threads() -> None:
    lim = RequestLimiter(0, 100.0, 3)
    lock = threading.Lock()
    current = 0
    peak = 0
    gate = threading.Barrier(8)

    def worker() -> None:
        nonlocal current, peak
        gate.wait(5.0)
        for _ in range(200):
            lim.acquire()
            with lock:
                current += 1
                peak = max(peak, current)
            with lock:
                current -= 1
            lim.release()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10.0)
    assert current == 0
    assert 1 <= peak <= 3


def test_limiter_over_release_is_an_error() -> None:
    lim = RequestLimiter(0, 100.0, 1)
    with pytest.raises(ValueError, match="released too many times"):
        lim.release()

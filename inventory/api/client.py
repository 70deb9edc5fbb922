"""The Android Device Provisioning Partner API (v1), reseller side, and the stack that calls it.

:func:`connect` builds the whole stack for one reseller partner, from the bottom up: an httpx
client for the token endpoint, google-auth credentials as an ``httpx.Auth``, the API's httpx
client, the request limiter, the retrying sender and, on top, :class:`ZeroTouchClient`, which
knows the URLs and body shapes only. int64 values are sent as decimal strings, as the
discovery document describes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import httpx

from inventory import __version__
from inventory.api.limiter import Counters, RequestLimiter
from inventory.api.pagination import Page, iter_pages
from inventory.api.retry import RetryingSender, RetryLog
from inventory.auth import GoogleAuth
from inventory.errors import FatalApiError

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

    from inventory.config import ApiSettings

# Google's APIs gzip a response only when the request accepts gzip (httpx's default
# Accept-Encoding does) and its User-Agent contains "gzip" (Google's performance tips).
USER_AGENT = f"zt-inventory/{__version__} (gzip)"
# Google indents its JSON unless a request says prettyPrint=false (the discovery document's
# standard parameter defaults to true): compact JSON is about a third fewer bytes to parse.
WIRE_PARAMS = {"prettyPrint": "false"}

# partners.customers.list sets no maximum pageSize (0 asks for every customer at once). 1000 a
# page keeps each answer small enough to retry cheaply while a reseller with 20,000 customers
# needs 20 sequential calls instead of 200; a server that caps the size answers with more
# pages, which iter_pages follows, and one that refuses it (400) is asked again with 100, the
# page size of the API's other list methods.
CUSTOMERS_PAGE_SIZE = 1000
CUSTOMERS_FALLBACK_PAGE_SIZE = 100


class ZeroTouchClient:
    """Calls of one reseller partner.

    Args:
        sender: sends calls with retries and limits.
        partner_id: the reseller's partner id.
    """

    def __init__(self, sender: RetryingSender, partner_id: int) -> None:
        self.sender = sender
        self.partner_id = partner_id
        self._base = f"/v1/partners/{partner_id}"

    def iter_customer_pages(self, page_size: int = CUSTOMERS_PAGE_SIZE) -> Iterator[Page]:
        """``partners.customers.list``, page by page."""

        size = page_size

        def fetch(token: str | None) -> dict[str, Any]:
            nonlocal size
            params: dict[str, Any] = {"pageSize": size}
            if token:
                params["pageToken"] = token
            try:
                return self.sender.request_json(
                    "GET", f"{self._base}/customers", "customers.list", params=params
                )
            except FatalApiError as exc:
                if exc.status != 400 or token or size <= CUSTOMERS_FALLBACK_PAGE_SIZE:
                    raise
                size = CUSTOMERS_FALLBACK_PAGE_SIZE  # a server stricter than its document
                return fetch(None)

        return iter_pages(fetch, "customers")

    def iter_vendor_pages(self, page_size: int = 100) -> Iterator[Page]:
        """``partners.vendors.list``: the partner's vendors (sub-resellers), page by page."""
        return self._iter_list(f"{self._base}/vendors", "vendors.list", "vendors", page_size)

    def iter_vendor_customer_pages(self, vendor_id: int, page_size: int = 100) -> Iterator[Page]:
        """``partners.vendors.customers.list``: one vendor's customers, page by page."""
        path = f"{self._base}/vendors/{vendor_id}/customers"
        return self._iter_list(path, "vendors.customers.list", "customers", page_size)

    def _iter_list(self, path: str, method: str, items: str, page_size: int) -> Iterator[Page]:
        """A GET list method with ``pageSize`` and ``pageToken``, page by page."""

        def fetch(token: str | None) -> dict[str, Any]:
            params: dict[str, Any] = {"pageSize": page_size}
            if token:
                params["pageToken"] = token
            return self.sender.request_json("GET", path, method, params=params)

        return iter_pages(fetch, items)

    def iter_find_by_owner_pages(
        self,
        section_type: str,
        *,
        customer_ids: Sequence[int] = (),
        workspace_ids: Sequence[str] = (),
        limit: int = 100,
    ) -> Iterator[Page]:
        """``partners.devices.findByOwner`` for some customers in one section type, page by page."""
        body: dict[str, Any] = {"sectionType": section_type, "limit": str(limit)}
        if customer_ids:
            body["customerId"] = [str(c) for c in customer_ids]
        if workspace_ids:
            body["googleWorkspaceCustomerId"] = list(workspace_ids)

        def fetch(token: str | None) -> dict[str, Any]:
            payload = dict(body, pageToken=token) if token else body
            return self.sender.request_json(
                "POST", f"{self._base}/devices:findByOwner", "findByOwner", json_body=payload
            )

        return iter_pages(fetch, "devices")

    def get_device(self, device_id: int) -> dict[str, Any] | None:
        """``partners.devices.get``: the device as the API has it now; None when it does not
        know it (404)."""
        try:
            return self.sender.request_json(
                "GET", f"{self._base}/devices/{device_id}", "devices.get"
            )
        except FatalApiError as exc:
            if exc.status == 404:
                return None
            raise

    def iter_find_by_identifier_pages(
        self, identifier: dict[str, str], *, limit: int = 100
    ) -> Iterator[Page]:
        """``partners.devices.findByIdentifier`` for one ``DeviceIdentifier``, page by page."""
        body: dict[str, Any] = {"deviceIdentifier": identifier, "limit": str(limit)}

        def fetch(token: str | None) -> dict[str, Any]:
            payload = dict(body, pageToken=token) if token else body
            return self.sender.request_json(
                "POST",
                f"{self._base}/devices:findByIdentifier",
                "findByIdentifier",
                json_body=payload,
            )

        return iter_pages(fetch, "devices")


def build_http_client(
    endpoint: str,
    *,
    timeout_s: float,
    concurrency: int,
    auth: httpx.Auth | None = None,
    transport: httpx.BaseTransport | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Client:
    """The httpx client for the API: base URL, timeouts, keep-alive pool, optional transport,
    and query parameters every request carries."""
    limits = httpx.Limits(
        max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2
    )
    return httpx.Client(
        base_url=endpoint,
        timeout=httpx.Timeout(timeout_s),
        limits=limits,
        auth=auth,
        transport=transport,
        params=params,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        follow_redirects=False,
    )


@contextmanager
def connect(
    api: ApiSettings,
    partner_id: int,
    credentials: Credentials | None,
    *,
    limiter: RequestLimiter | None = None,
    counters: Counters | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] | None = None,
    retry_log: RetryLog | None = None,
) -> Iterator[ZeroTouchClient]:
    """The client stack of one reseller partner, open for the ``with`` block.

    Args:
        api: the ``[api]`` settings (endpoint, timeouts, concurrency, quota, retries).
        partner_id: the reseller partner the calls are for.
        credentials: google-auth credentials, or None for no Authorization header.
        limiter: a limiter to share (partners behind one key share Google's quota); by default
            one of its own from ``api.quota_per_100s`` and ``api.concurrency``.
        counters: where requests and retries are counted.
        transport: an httpx transport (the in-process emulator in tests).
        sleep: how to wait between retries and for the quota.
        should_stop: polled before each attempt; True raises ``CancelledError``.
        retry_log: tells the retries on the ``inventory.api`` logger (default: a new one).
    """
    # Token refreshes go through the same transport as the API calls, so tests run google-auth's
    # real flow against the emulator's token endpoint.
    token_client = build_http_client(
        api.endpoint, timeout_s=api.timeout_s, concurrency=1, transport=transport
    )
    try:
        auth = None if credentials is None else GoogleAuth(credentials, token_client)
        client = build_http_client(
            api.endpoint,
            timeout_s=api.timeout_s,
            concurrency=api.concurrency,
            auth=auth,
            transport=transport,
            params=WIRE_PARAMS,
        )
        with client:
            if limiter is None:
                limiter = RequestLimiter(
                    api.quota_per_100s, api.quota_window_s, api.concurrency, sleep=sleep
                )
            sender = RetryingSender(
                client,
                limiter,
                max_retries=api.max_retries,
                sleep=sleep,
                counters=counters,
                should_stop=should_stop,
                retry_log=retry_log,
            )
            yield ZeroTouchClient(sender, partner_id)
    finally:
        token_client.close()


@contextmanager
def connect_partners(
    api: ApiSettings,
    partners: Sequence[tuple[int, str]],
    credentials: Mapping[str, Credentials | None],
    *,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> Iterator[dict[int, ZeroTouchClient]]:
    """The client stacks of several partners, open for the ``with`` block: {partner id: its
    client}.

    Each partner has its own client and token; partners behind one key file share one quota
    limiter, since Google counts the quota per project (the key's), not per partner.

    Args:
        api: the ``[api]`` settings.
        partners: (partner id, key file) pairs, in the order to open them.
        credentials: {key file: its credentials}.
        sleep: how to wait between retries and for the quota.
        kwargs: what :func:`connect` takes beside (``counters``, ``transport``, ...).
    """
    limiters: dict[str, RequestLimiter] = {}
    with ExitStack() as stack:
        clients: dict[int, ZeroTouchClient] = {}
        for partner_id, key in partners:
            if key not in limiters:
                limiters[key] = RequestLimiter(
                    api.quota_per_100s, api.quota_window_s, api.concurrency, sleep=sleep
                )
            clients[partner_id] = stack.enter_context(
                connect(
                    api, partner_id, credentials[key], limiter=limiters[key], sleep=sleep, **kwargs
                )
            )
        yield clients

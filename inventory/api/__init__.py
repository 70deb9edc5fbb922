"""The Android Device Provisioning Partner API: the client stack and its parts.

Modules, bottom up: ``limiter`` (client-side quota and concurrency cap, shared counters),
``retry`` (how a request is retried, and what a failure says), ``pagination`` (the pure
``pageToken`` loop) and ``client`` (``ZeroTouchClient``, URLs and bodies, and :func:`connect`,
the one factory that builds the stack).
"""

from __future__ import annotations

from inventory.api.client import (
    CUSTOMERS_PAGE_SIZE,
    ZeroTouchClient,
    build_http_client,
    connect,
    connect_partners,
)
from inventory.api.limiter import Counters, RequestLimiter
from inventory.api.pagination import Page, iter_pages
from inventory.api.retry import RetryingSender, RetryLog

__all__ = [
    "CUSTOMERS_PAGE_SIZE",
    "Counters",
    "Page",
    "RequestLimiter",
    "RetryLog",
    "RetryingSender",
    "ZeroTouchClient",
    "build_http_client",
    "connect",
    "connect_partners",
    "iter_pages",
]

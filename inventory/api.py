"""The Android Device Provisioning Partner API (v1), reseller side: URLs and body shapes only.

int64 values are sent as decimal strings, as the discovery document describes them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from inventory.errors import FatalApiError
from inventory.http import ApiTransport
from inventory.pagination import Page, iter_pages

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
        transport: sends calls with retries and limits.
        partner_id: the reseller's partner id.
    """

    def __init__(self, transport: ApiTransport, partner_id: int) -> None:
        self.transport = transport
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
                return self.transport.request_json(
                    "GET", f"{self._base}/customers", "customers.list", params=params
                )
            except FatalApiError as exc:
                if exc.status != 400 or token or size <= CUSTOMERS_FALLBACK_PAGE_SIZE:
                    raise
                size = CUSTOMERS_FALLBACK_PAGE_SIZE  # a server stricter than its document
                return fetch(None)

        return iter_pages(fetch, "customers")

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
            return self.transport.request_json(
                "POST", f"{self._base}/devices:findByOwner", "findByOwner", json_body=payload
            )

        return iter_pages(fetch, "devices")

    def iter_find_by_identifier_pages(
        self, identifier: dict[str, str], *, limit: int = 100
    ) -> Iterator[Page]:
        """``partners.devices.findByIdentifier`` for one ``DeviceIdentifier``, page by page."""
        body: dict[str, Any] = {"deviceIdentifier": identifier, "limit": str(limit)}

        def fetch(token: str | None) -> dict[str, Any]:
            payload = dict(body, pageToken=token) if token else body
            return self.transport.request_json(
                "POST",
                f"{self._base}/devices:findByIdentifier",
                "findByIdentifier",
                json_body=payload,
            )

        return iter_pages(fetch, "devices")

"""The API methods the emulator serves, as pure functions of a parsed request.

Paths follow the discovery document (``v1/partners/{+partnerId}/devices:findByOwner`` ...).
Methods of the real API that the emulator does not implement (claim, unclaim, metadata,
customers.create, ...) answer 501 UNIMPLEMENTED; anything else is 404 NOT_FOUND.

Every method answers for the partner in its path (the emulator has checked it serves it). Where
the document leaves behaviour open, ``Behaviour`` decides (``behaviour.py``): both owner kinds in
one findByOwner request, a cap on the ids it names, keyset or offset page tokens, how totalSize
counts, and churn.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from inventory.emulator.behaviour import Behaviour
from inventory.emulator.changes import Churn
from inventory.emulator.fleet import Fleet
from inventory.emulator.identify import match_identifier
from inventory.emulator.listing import Listings, OwnerQuery
from inventory.emulator.pagetoken import PageTokenError, PageTokens
from inventory.emulator.records import (
    IDENTIFIER_FIELDS,
    SECTION_UNSPECIFIED,
    JsonObject,
)
from inventory.emulator.rpc import (
    RpcError,
    enum,
    fields,
    int64,
    invalid,
    limit,
    parse_json_body,
    string,
    string_list,
)
from inventory.emulator.schema import enum_values, facts

INT32_MAX = 2**31 - 1
_P = r"/v1/partners/(?P<partnerId>[^/]+)"
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(_P + r"/customers\Z"), "customers.list"),
    ("POST", re.compile(_P + r"/devices:findByOwner\Z"), "findByOwner"),
    ("POST", re.compile(_P + r"/devices:findByIdentifier\Z"), "findByIdentifier"),
    ("GET", re.compile(_P + r"/devices/(?P<deviceId>[^/:]+)\Z"), "devices.get"),
    ("GET", re.compile(_P + r"/vendors\Z"), "vendors.list"),
    ("GET", re.compile(_P + r"/vendors/(?P<vendorId>[^/]+)/customers\Z"), "vendors.customers.list"),
)
UNIMPLEMENTED = re.compile(
    _P + r"(/customers|/devices:(claim|claimAsync|unclaim|unclaimAsync|updateMetadataAsync"
    r"|getSimLockState)|/devices/[^/]+/metadata)\Z"
)
PAGED_QUERY = frozenset({"pageSize", "pageToken"})


def route(http_method: str, path: str) -> tuple[str, dict[str, str]]:
    """Return ``(method name, path parameters)`` for a request.

    Raises:
        RpcError: 404 for an unknown path, 501 for a real method the emulator lacks.
    """
    for verb, pattern, name in ROUTES:
        match = pattern.match(path)
        if match and verb == http_method:
            return name, match.groupdict()
    if http_method == "POST" and UNIMPLEMENTED.match(path):
        raise RpcError(501)
    raise RpcError(404, f"The requested URL {path} was not found on this server.")


def check_query(params: Mapping[str, str], allowed: frozenset[str]) -> None:
    """Refuse query parameters that are neither the method's nor Google's standard ones."""
    standard = set(facts()["standardParameters"])
    for name in params:
        if name not in allowed and name not in standard:
            raise invalid(
                f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query '
                "parameter. Field '" + name + "' could not be found in request message."
            )


def _page_size(params: Mapping[str, str]) -> int:
    text = params.get("pageSize", "").strip()
    if not text:
        return 0
    if not re.fullmatch(r"-?[0-9]+", text) or not -(2**31) <= int(text) <= INT32_MAX:
        raise invalid(f"Invalid value at 'page_size' (TYPE_INT32), \"{text}\"")
    if int(text) < 0:
        raise invalid(
            f"Request contains an invalid argument: page_size must not be negative ({text})."
        )
    return int(text)


class Api:
    """The emulated methods over one fleet (of one or several partners).

    Args:
        fleet: the inventory.
        tokens: the page-token signer.
        echo_input_only: return customers' input-only ``ownerEmails``.
        behaviour: the switches for what the discovery document leaves open.
    """

    def __init__(
        self,
        fleet: Fleet,
        tokens: PageTokens,
        *,
        echo_input_only: bool,
        behaviour: Behaviour | None = None,
    ) -> None:
        self.fleet = fleet
        self.tokens = tokens
        self.echo_input_only = echo_input_only
        self.behaviour = behaviour or Behaviour()
        self.churn = Churn(fleet.seed)
        self.listings = Listings(fleet)
        self._customer_keys: dict[int, tuple[int, list[int]]] = {}
        self.handlers: dict[str, Callable[[dict[str, str], Mapping[str, str], bytes], JsonObject]]
        self.handlers = {
            "customers.list": self.customers_list,
            "findByOwner": self.find_by_owner,
            "findByIdentifier": self.find_by_identifier,
            "devices.get": self.devices_get,
            "vendors.list": self.vendors_list,
            "vendors.customers.list": self.vendor_customers_list,
        }

    def _partner(self, path: Mapping[str, str]) -> int:
        """The partner in the path (a handler called without one answers for the first)."""
        text = path.get("partnerId")
        return self.fleet.partner_id if text is None else int64(text, "partner_id")

    # ------------------------------------------------------------------------- paging
    @property
    def offsets(self) -> bool:
        """True when page tokens are offsets into the listing (``Behaviour.page_tokens``)."""
        return self.behaviour.page_tokens == "offset"

    def _position(self, method: str, query: str, token: Any) -> tuple[int, int]:
        """Return ``(last index returned, items returned)`` from a page token (-1, 0: none)."""
        token = string(token, "page_token") if token is not None else ""
        if not token:
            return -1, 0
        try:
            return self.tokens.parse(token, method, query)
        except PageTokenError as exc:
            raise invalid(
                f"Request contains an invalid argument: invalid page token ({exc})."
            ) from exc

    def _start(self, keys: Sequence[int], after: int, count: int) -> int:
        """Where the next page starts in ascending ``keys``: after the last item returned
        (keyset), or at the number of items returned (offset)."""
        return min(count, len(keys)) if self.offsets else bisect_right(keys, after)

    def _device_page(
        self,
        method: str,
        query: str,
        page: list[int],
        size: int,
        count: int,
        total: int,
        partner: int,
    ) -> JsonObject:
        items = page[:size]
        out: JsonObject = {}
        if items:
            out["devices"] = [self.fleet.device_json(i, partner) for i in items]
        if len(page) > size:
            out["nextPageToken"] = self.tokens.issue(method, query, items[-1], count + len(items))
        if total:
            out["totalSize"] = min(total, INT32_MAX)
        return out

    def _list_page(
        self,
        method: str,
        query: str,
        params: Mapping[str, str],
        keys: list[int],
        render: Callable[[int], JsonObject],
        field: str,
    ) -> JsonObject:
        """One page of a list method over items with ascending ``keys``."""
        size = _page_size(params)
        after, count = self._position(method, query, params.get("pageToken"))
        start = self._start(keys, after, count)
        chosen = keys[start:] if size == 0 else keys[start : start + size]
        out: JsonObject = {}
        if chosen:
            out[field] = [render(k) for k in chosen]
        if start + len(chosen) < len(keys):
            out["nextPageToken"] = self.tokens.issue(method, query, chosen[-1], count + len(chosen))
        if keys:
            out["totalSize"] = min(len(keys), INT32_MAX)
        return out

    # ------------------------------------------------------------------------ methods
    def customers_list(
        self, path: dict[str, str], params: Mapping[str, str], body: bytes
    ) -> JsonObject:
        """partners.customers.list: every current customer of the partner, companyId ascending."""
        check_query(params, PAGED_QUERY)
        fleet, partner = self.fleet, self._partner(path)
        cached = self._customer_keys.get(partner)
        if cached is None or cached[0] != fleet.version:  # one O(customers) pass per version
            current = [
                k
                for k, c in enumerate(fleet.customers)
                if not c.removed and partner in fleet.partners_of(c.company_id)
            ]
            cached = self._customer_keys[partner] = (fleet.version, current)

        def render(k: int) -> JsonObject:
            return fleet.customer_json(
                fleet.customers[k], echo_input_only=self.echo_input_only, partner_id=partner
            )

        return self._list_page(
            "customers.list", str(partner), params, cached[1], render, "customers"
        )

    def find_by_owner(
        self, path: dict[str, str], params: Mapping[str, str], body: bytes
    ) -> JsonObject:
        """partners.devices.findByOwner."""
        check_query(params, frozenset())
        msg = fields(parse_json_body(body), facts_fields("FindDevicesByOwnerRequest"))
        if "sectionType" not in msg:
            raise invalid("Request contains an invalid argument: section_type is required.")
        section = enum(
            msg["sectionType"],
            "section_type",
            enum_values("FindDevicesByOwnerRequest", "sectionType"),
        )
        if section == SECTION_UNSPECIFIED:
            raise invalid("Request contains an invalid argument: section_type must be specified.")
        size = limit(msg.get("limit"))
        raw_ids = msg.get("customerId", [])
        if not isinstance(raw_ids, list):
            raise invalid(
                f"Invalid value at 'customer_id': expected a list, got {json.dumps(raw_ids)}"
            )
        company_ids = {int64(v, f"customer_id[{n}]") for n, v in enumerate(raw_ids)}
        raw_spaces = string_list(
            msg.get("googleWorkspaceCustomerId", []), "google_workspace_customer_id"
        )
        workspace_ids = set(raw_spaces)
        if not company_ids and not workspace_ids:
            raise invalid(
                "Request contains an invalid argument: customer_id or "
                "google_workspace_customer_id is required."
            )
        rules = self.behaviour
        named = len(raw_ids) + len(raw_spaces)
        if rules.max_ids_per_request and named > rules.max_ids_per_request:
            raise invalid(
                "Request contains an invalid argument: at most "
                f"{rules.max_ids_per_request} customer_id and google_workspace_customer_id "
                f"values are allowed in one request; got {named}."
            )
        both = bool(company_ids and workspace_ids)
        if both and rules.owners == "reject":
            raise invalid(
                "Request contains an invalid argument: customer_id and "
                "google_workspace_customer_id cannot be set in the same request."
            )
        q = OwnerQuery(
            self._partner(path),
            section,
            frozenset(company_ids),
            frozenset(workspace_ids),
            intersect=both and rules.owners == "intersect",
        )
        query = q.canonical()
        after, count = self._position("findByOwner", query, msg.get("pageToken"))
        listings = self.listings
        if self.churn.due(rules.churn_every):
            listing = listings.everything(q)
            self.churn.leave(self.fleet, q, listing, self._start(listing, after, count))
        if self.offsets:
            page = listings.at(q, count, size + 1)
        else:
            page = listings.after(q, after, size + 1)
        total = listings.total(q, per_owner=rules.total_size == "per_owner")
        return self._device_page("findByOwner", query, page, size, count, total, q.partner)

    def find_by_identifier(
        self, path: dict[str, str], params: Mapping[str, str], body: bytes
    ) -> JsonObject:
        """partners.devices.findByIdentifier: claimed and unclaimed devices of the partner."""
        check_query(params, frozenset())
        msg = fields(parse_json_body(body), facts_fields("FindDevicesByDeviceIdentifierRequest"))
        raw = msg.get("deviceIdentifier")
        if not isinstance(raw, dict) or not raw:
            raise invalid("Request contains an invalid argument: device_identifier is required.")
        ident = {
            k: string(v, f"device_identifier.{k}")
            for k, v in fields(raw, IDENTIFIER_FIELDS, "device_identifier").items()
        }
        if "deviceType" in ident:
            enum(
                ident["deviceType"],
                "device_identifier.device_type",
                enum_values("DeviceIdentifier", "deviceType"),
            )
        size = limit(msg.get("limit"))
        partner = self._partner(path)
        matches = match_identifier(self.fleet, ident, partner)
        query = json.dumps([partner, ident], sort_keys=True)
        after, count = self._position("findByIdentifier", query, msg.get("pageToken"))
        start = self._start(matches, after, count)
        page = matches[start : start + size + 1]
        return self._device_page(
            "findByIdentifier", query, page, size, count, len(matches), partner
        )

    def devices_get(
        self, path: dict[str, str], params: Mapping[str, str], body: bytes
    ) -> JsonObject:
        """partners.devices.get."""
        check_query(params, frozenset())
        partner = self._partner(path)
        i = self.fleet.index_of(int64(path["deviceId"], "device_id"))
        if i is None or not self.fleet.knows(i, partner):
            raise RpcError(404)
        return self.fleet.device_json(i, partner)

    def vendors_list(
        self, path: dict[str, str], params: Mapping[str, str], body: bytes
    ) -> JsonObject:
        """partners.vendors.list."""
        check_query(params, PAGED_QUERY)
        pid = self._partner(path)
        vendors = self.fleet.vendors_of(pid)
        keys = list(range(len(vendors)))
        return self._list_page(
            "vendors.list", str(pid), params, keys, lambda v: vendors[v].to_json(pid), "vendors"
        )

    def vendor_customers_list(
        self, path: dict[str, str], params: Mapping[str, str], body: bytes
    ) -> JsonObject:
        """partners.vendors.customers.list."""
        check_query(params, PAGED_QUERY)
        pid = self._partner(path)
        vendor_id = int64(path["vendorId"], "vendor_id")
        vendor = next((v for v in self.fleet.vendors_of(pid) if v.company_id == vendor_id), None)
        if vendor is None:
            raise RpcError(404)
        prefix = f"partners/{pid}/vendors/{vendor_id}/customers"
        companies = vendor.customers

        def render(k: int) -> JsonObject:
            c = companies[k]
            return c.to_json(f"{prefix}/{c.company_id}", echo_input_only=self.echo_input_only)

        keys = list(range(len(companies)))
        return self._list_page(
            "vendors.customers.list", f"{pid}/{vendor_id}", params, keys, render, "customers"
        )


def facts_fields(schema: str) -> tuple[str, ...]:
    """Return the JSON field names of a request schema."""
    return tuple(facts()["schemas"][schema])

"""The API methods the emulator serves, as pure functions of a parsed request.

Paths follow the discovery document (``v1/partners/{+partnerId}/devices:findByOwner`` ...).
Methods of the real API that the emulator does not implement (claim, unclaim, metadata,
customers.create, ...) answer 501 UNIMPLEMENTED; anything else is 404 NOT_FOUND.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import Any

from inventory.emulator.fleet import Fleet
from inventory.emulator.pagetoken import PageTokenError, PageTokens
from inventory.emulator.records import (
    DEVICE_TYPE_ANDROID,
    DEVICE_TYPE_CHROME_OS,
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
KNOWN_TYPES = (DEVICE_TYPE_ANDROID, DEVICE_TYPE_CHROME_OS)
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
    """The emulated methods over one fleet.

    Args:
        fleet: the inventory.
        tokens: the page-token signer.
        echo_input_only: return customers' input-only ``ownerEmails``.
    """

    def __init__(self, fleet: Fleet, tokens: PageTokens, *, echo_input_only: bool) -> None:
        self.fleet = fleet
        self.tokens = tokens
        self.echo_input_only = echo_input_only
        self._count_cache: dict[str, tuple[int, int]] = {}
        self._customer_keys: tuple[int, list[int]] = (-1, [])
        self.handlers: dict[str, Callable[[dict[str, str], Mapping[str, str], bytes], JsonObject]]
        self.handlers = {
            "customers.list": self.customers_list,
            "findByOwner": self.find_by_owner,
            "findByIdentifier": self.find_by_identifier,
            "devices.get": self.devices_get,
            "vendors.list": self.vendors_list,
            "vendors.customers.list": self.vendor_customers_list,
        }

    # ------------------------------------------------------------------------- paging
    def _position(self, method: str, query: str, token: Any) -> tuple[int, int]:
        token = string(token, "page_token") if token is not None else ""
        if not token:
            return -1, 0
        try:
            return self.tokens.parse(token, method, query)
        except PageTokenError as exc:
            raise invalid(
                f"Request contains an invalid argument: invalid page token ({exc})."
            ) from exc

    def _device_page(
        self, method: str, query: str, page: list[int], size: int, count: int, total: int
    ) -> JsonObject:
        items = page[:size]
        out: JsonObject = {}
        if items:
            out["devices"] = [self.fleet.device_json(i) for i in items]
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
        start = bisect_right(keys, after)
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
        """partners.customers.list: every current customer, companyId ascending."""
        check_query(params, PAGED_QUERY)
        fleet = self.fleet
        if self._customer_keys[0] != fleet.version:  # one O(customers) pass per fleet version
            current = [k for k, c in enumerate(fleet.customers) if not c.removed]
            self._customer_keys = (fleet.version, current)
        keys = self._customer_keys[1]

        def render(k: int) -> JsonObject:
            return fleet.customer_json(fleet.customers[k], echo_input_only=self.echo_input_only)

        return self._list_page("customers.list", "", params, keys, render, "customers")

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
        workspace_ids = set(
            string_list(msg.get("googleWorkspaceCustomerId", []), "google_workspace_customer_id")
        )
        if not company_ids and not workspace_ids:
            raise invalid(
                "Request contains an invalid argument: customer_id or "
                "google_workspace_customer_id is required."
            )
        query = json.dumps([section, sorted(company_ids), sorted(workspace_ids)])
        after, count = self._position("findByOwner", query, msg.get("pageToken"))
        fleet = self.fleet
        page = fleet.merge_after(
            fleet.owner_lists(section, company_ids, workspace_ids), after, size + 1
        )
        cached = self._count_cache.get(query)
        if cached is None or cached[0] != fleet.version:
            if len(self._count_cache) > 4096:
                self._count_cache.clear()
            cached = (fleet.version, fleet.count_owned(section, company_ids, workspace_ids))
            self._count_cache[query] = cached
        return self._device_page("findByOwner", query, page, size, count, cached[1])

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
        matches = self.match_identifier(ident)
        query = json.dumps(ident, sort_keys=True)
        after, count = self._position("findByIdentifier", query, msg.get("pageToken"))
        start = bisect_right(matches, after)
        return self._device_page(
            "findByIdentifier", query, matches[start : start + size + 1], size, count, len(matches)
        )

    def match_identifier(self, ident: Mapping[str, str]) -> list[int]:
        """Return the sorted indexes of devices matching a DeviceIdentifier query.

        The first identifier present picks candidates: imei/imei2 (either matches either),
        then meid/meid2, then serialNumber (any case; manufacturer required), then
        chromeOsAttestedDeviceId. Every other field given must then match too (manufacturer
        and model case-insensitively; deviceType ANDROID also matches devices without one).

        Raises:
            RpcError: 400 when no usable identifier is given.
        """
        fleet = self.fleet
        imeis = {ident[k].strip() for k in ("imei", "imei2") if ident.get(k, "").strip()}
        meids = {ident[k].strip().upper() for k in ("meid", "meid2") if ident.get(k, "").strip()}
        serial = ident.get("serialNumber", "").strip().upper()
        attested = ident.get("chromeOsAttestedDeviceId", "").strip()
        maker = ident.get("manufacturer", "").strip().lower()
        model = ident.get("model", "").strip().lower()
        kind = ident.get("deviceType", "")
        if serial and not maker:
            raise invalid(
                "Request contains an invalid argument: a serial_number needs a manufacturer."
            )
        candidates: set[int] = set()
        if imeis:
            for value in imeis:
                candidates |= fleet.lookup("imei", value)
        elif meids:
            for value in meids:
                candidates |= fleet.lookup("meid", value)
        elif serial:
            candidates = fleet.lookup("serial", serial)
        elif attested:
            candidates = fleet.lookup("attested", attested)
        else:
            raise invalid(
                "Request contains an invalid argument: device_identifier needs an imei, meid, "
                "serial_number (with manufacturer) or chrome_os_attested_device_id."
            )
        found = []
        for i in candidates:
            d = fleet.identifiers(i)
            if (
                (imeis and not imeis & {d.get("imei"), d.get("imei2")})
                or (
                    meids
                    and not meids & {d.get("meid", "").upper(), d.get("meid2", "").upper()} - {""}
                )
                or (serial and d.get("serialNumber", "").upper() != serial)
                or (attested and d.get("chromeOsAttestedDeviceId") != attested)
                or (maker and d.get("manufacturer", "").lower() != maker)
                or (model and d.get("model", "").lower() != model)
                or (kind in KNOWN_TYPES and d.get("deviceType", DEVICE_TYPE_ANDROID) != kind)
            ):
                continue
            found.append(i)
        return sorted(found)

    def devices_get(
        self, path: dict[str, str], params: Mapping[str, str], body: bytes
    ) -> JsonObject:
        """partners.devices.get."""
        check_query(params, frozenset())
        i = self.fleet.index_of(int64(path["deviceId"], "device_id"))
        if i is None:
            raise RpcError(404)
        return self.fleet.device_json(i)

    def vendors_list(
        self, path: dict[str, str], params: Mapping[str, str], body: bytes
    ) -> JsonObject:
        """partners.vendors.list."""
        check_query(params, PAGED_QUERY)
        vendors, pid = self.fleet.vendors, self.fleet.partner_id
        keys = list(range(len(vendors)))
        return self._list_page(
            "vendors.list", "", params, keys, lambda v: vendors[v].to_json(pid), "vendors"
        )

    def vendor_customers_list(
        self, path: dict[str, str], params: Mapping[str, str], body: bytes
    ) -> JsonObject:
        """partners.vendors.customers.list."""
        check_query(params, PAGED_QUERY)
        vendor_id = int64(path["vendorId"], "vendor_id")
        vendor = next((v for v in self.fleet.vendors if v.company_id == vendor_id), None)
        if vendor is None:
            raise RpcError(404)
        prefix = f"partners/{self.fleet.partner_id}/vendors/{vendor_id}/customers"
        companies = vendor.customers

        def render(k: int) -> JsonObject:
            c = companies[k]
            return c.to_json(f"{prefix}/{c.company_id}", echo_input_only=self.echo_input_only)

        keys = list(range(len(companies)))
        return self._list_page(
            "vendors.customers.list", str(vendor_id), params, keys, render, "customers"
        )


def facts_fields(schema: str) -> tuple[str, ...]:
    """Return the JSON field names of a request schema."""
    return tuple(facts()["schemas"][schema])

"""A faithful emulator of the Android Device Provisioning Partner API (reseller side).

It serves ``partners.customers.list``, ``partners.devices.findByOwner``,
``partners.devices.findByIdentifier``, ``partners.devices.get``, ``partners.vendors.list`` and
``partners.vendors.customers.list`` with the discovery document's paths and proto3 JSON
encodings, an OAuth 2.0 token endpoint for google-auth's service-account flow, opaque
tamper-evident page tokens, fault injection and mutations between syncs. Library code never
imports it; tests, ``zt-inventory demo`` and ``zt-inventory emulator`` do::

    fleet = generate_fleet(devices=1000, customers=50, seed=7, partner_id=1234567)
    emu = Emulator(fleet, faults=FaultConfig(), auth="anonymous")
    client = httpx.Client(transport=emu.transport(), base_url="http://emulator")
    with serve(emu) as server:                       # or on a loopback port
        httpx.get(f"{server.url}/v1/partners/1234567/customers")

Modules: ``generate`` (fleet generator), ``fleet``/``store``/``codec`` (compact storage and
identifier encodings), ``routes``/``rpc`` (API methods, errors, request parsing), ``app``
(``Emulator``), ``faults``, ``oauth`` (key files, JWT grant, tokens), ``pagetoken``,
``schema`` (discovery facts and a validator), ``server`` (loopback serving).
"""

from __future__ import annotations

from inventory.emulator.app import TOKEN_PATH, Emulator, LoggedRequest
from inventory.emulator.faults import FaultConfig
from inventory.emulator.fleet import Fleet
from inventory.emulator.generate import generate_fleet
from inventory.emulator.oauth import SCOPE, write_service_account_key
from inventory.emulator.server import LoopbackServer, run_server_forever, serve

__all__ = [
    "SCOPE",
    "TOKEN_PATH",
    "Emulator",
    "FaultConfig",
    "Fleet",
    "LoggedRequest",
    "LoopbackServer",
    "generate_fleet",
    "run_server_forever",
    "serve",
    "write_service_account_key",
]

"""A faithful emulator of the Android Device Provisioning Partner API (reseller side).

It serves ``partners.customers.list``, ``partners.devices.findByOwner``,
``partners.devices.findByIdentifier``, ``partners.devices.get``, ``partners.vendors.list`` and
``partners.vendors.customers.list`` with the discovery document's paths and proto3 JSON
encodings, on the wire as Google sends them (pretty JSON unless ``prettyPrint=false``; gzip
when the request accepts it and its User-Agent says ``gzip``), an OAuth 2.0 token endpoint for
google-auth's service-account flow (keys may be linked to some partners only), opaque
tamper-evident page tokens, fault injection and mutations between syncs or, through
``after_requests`` and churn, while a client pages. One emulator may serve several reseller
partners with shared customers and devices. Where the discovery document leaves behaviour open,
``Behaviour`` picks it. Library code never imports it; tests, ``zt-inventory demo`` and
``zt-inventory emulator`` do::

    fleet = generate_fleet(devices=1000, customers=50, seed=7, partner_id=1234567)
    emu = Emulator(fleet, faults=FaultConfig(), auth="anonymous",
                   behaviour=Behaviour(page_tokens="offset"))
    client = httpx.Client(transport=emu.transport(), base_url="http://emulator")
    with serve(emu) as server:                       # or on a loopback port
        httpx.get(f"{server.url}/v1/partners/1234567/customers")

Modules: ``generate`` (fleet generator, one partner or several), ``fleet``/``store``/``index``/
``codec``/``derive`` (compact storage, owner index, identifier encodings, derived content),
``routes``/``rpc``/``identify``/``listing`` (API methods, errors, request parsing, lookups,
findByOwner listings), ``app`` (``Emulator``), ``mutations`` (ground truth and changes),
``behaviour`` (open choices), ``changes`` (request hooks, churn), ``faults``, ``oauth`` (key
files, JWT grant, tokens, partner links), ``pagetoken``, ``wire`` (pretty print, gzip),
``requestlog``, ``stats`` (request counts since a reset, served at ``/_emulator/stats``),
``coverage`` (what a default sync lists), ``schema`` (discovery facts and a validator),
``server`` (loopback serving).
"""

from __future__ import annotations

from inventory.emulator.app import Emulator
from inventory.emulator.behaviour import Behaviour
from inventory.emulator.changes import RequestHook
from inventory.emulator.coverage import Coverage, coverage
from inventory.emulator.faults import FaultConfig
from inventory.emulator.fleet import Fleet
from inventory.emulator.generate import generate_fleet
from inventory.emulator.oauth import SCOPE, write_service_account_key
from inventory.emulator.requestlog import TOKEN_PATH, LoggedRequest
from inventory.emulator.server import LoopbackServer, run_server_forever, serve
from inventory.emulator.stats import RESET_PATH, STATS_PATH, RequestStats

__all__ = [
    "SCOPE",
    "TOKEN_PATH",
    "Behaviour",
    "Coverage",
    "Emulator",
    "FaultConfig",
    "Fleet",
    "LoggedRequest",
    "LoopbackServer",
    "RESET_PATH",
    "RequestHook",
    "RequestStats",
    "STATS_PATH",
    "coverage",
    "generate_fleet",
    "run_server_forever",
    "serve",
    "write_service_account_key",
]

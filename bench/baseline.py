"""The raw baseline: the least work that gives the same tables a first sync gives.

It fetches the same pages zt-inventory fetches — ``customers.list`` page by page, then the same
findByOwner listings (the same customers packed into each, by ``inventory.plan``'s own packing
function) on the same number of worker threads sharing one httpx client — parses them with
``response.json()``, and writes devices, claims and metadata with ``executemany`` into three
plain tables (no keys, no indexes) in one transaction, through the bare DB-API driver
(``sqlite3`` in WAL mode with ``synchronous=NORMAL`` as zt-inventory uses it, or ``psycopg``).
A device listed twice (by its customer and by its Workspace account) is written once.

What it leaves out is what zt-inventory adds: change detection (hashing, classification against
the previous snapshot), staging, history, removals, indexes, run bookkeeping and validation.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import httpx

from inventory.api import CUSTOMERS_PAGE_SIZE
from inventory.sync.plan import listing_chunks

SECTION = "SECTION_TYPE_ZERO_TOUCH"
PAGE_SIZE = 100
BATCH_DEVICES = 2000
IDENT = (
    "imei",
    "imei2",
    "meid",
    "meid2",
    "serialNumber",
    "manufacturer",
    "model",
    "deviceType",
    "chromeOsAttestedDeviceId",
)
DDL = (
    """CREATE TABLE base_devices (device_id BIGINT, name TEXT, imei TEXT, imei2 TEXT, meid TEXT,
       meid2 TEXT, serial_number TEXT, manufacturer TEXT, model TEXT, device_type TEXT,
       chrome_os_attested_device_id TEXT, configuration TEXT, raw {json})""",
    """CREATE TABLE base_claims (device_id BIGINT, section_type TEXT, owner_company_id BIGINT,
       reseller_id BIGINT, vacation_mode_start_time {ts}, vacation_mode_expire_time {ts},
       additional_service TEXT, google_workspace_customer_id TEXT)""",
    "CREATE TABLE base_metadata (device_id BIGINT, key TEXT, value TEXT)",
)


def plan(owners: list[tuple[int, str | None]], concurrency: int) -> list[dict[str, Any]]:
    """The findByOwner request bodies zt-inventory sends for these customers, one per listing.

    Mirrors ``inventory.sync._Run._plan``: the same ``listing_chunks`` of customers, each
    chunk's request naming its customers and their Workspace accounts together.
    """
    bodies: list[dict[str, Any]] = []
    for chunk in listing_chunks(owners, concurrency):
        body: dict[str, Any] = {"sectionType": SECTION, "limit": str(PAGE_SIZE)}
        body["customerId"] = [str(c) for c, _ in chunk]
        spaces = list(dict.fromkeys(w for _, w in chunk if w))
        if spaces:
            body["googleWorkspaceCustomerId"] = spaces
        bodies.append(body)
    return bodies


class _Writer:
    def __init__(self, db_url: str) -> None:
        self.pg = db_url.startswith("postgresql")
        if self.pg:
            import psycopg

            conninfo = "postgresql://" + db_url.split("://", 1)[1]
            self.conn: Any = psycopg.connect(conninfo)
            mark, json_type, ts_type = "%s", "JSON", "TIMESTAMPTZ"
        else:
            import sqlite3

            self.conn = sqlite3.connect(db_url.split(":///", 1)[1], isolation_level=None)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            mark, json_type, ts_type = "?", "TEXT", "TEXT"
        cur = self.conn.cursor()
        if not self.pg:
            cur.execute("BEGIN")
        for ddl in DDL:
            cur.execute(ddl.format(json=json_type, ts=ts_type))
        self.cur = cur
        self.sql = [
            f"INSERT INTO base_devices VALUES ({', '.join([mark] * 13)})",
            f"INSERT INTO base_claims VALUES ({', '.join([mark] * 8)})",
            f"INSERT INTO base_metadata VALUES ({mark}, {mark}, {mark})",
        ]

    def write(self, devices: list[Any], claims: list[Any], metadata: list[Any]) -> None:
        for sql, rows in zip(self.sql, (devices, claims, metadata), strict=True):
            if rows:
                self.cur.executemany(sql, rows)

    def commit(self) -> None:
        if self.pg:
            self.conn.commit()
        else:
            self.cur.execute("COMMIT")
        self.conn.close()


def _int(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None


def run_baseline(
    endpoint: str, partner_id: int, db_url: str | None, concurrency: int
) -> dict[str, Any]:
    """Fetch, parse and write one full zero-touch inventory; return wall time and counts.

    With ``db_url`` None it only fetches and parses: how fast the emulator serves.
    """
    started = time.perf_counter()
    pool = concurrency + 2
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    client = httpx.Client(base_url=endpoint, timeout=30.0, limits=limits)
    base = f"/v1/partners/{partner_id}"
    calls = 0
    owners: list[tuple[int, str | None]] = []
    token = None
    while True:
        params: dict[str, Any] = {"pageSize": CUSTOMERS_PAGE_SIZE}
        if token:
            params["pageToken"] = token
        response = client.get(f"{base}/customers", params=params)
        response.raise_for_status()
        body = response.json()
        calls += 1
        for company in body.get("customers", []):
            workspace = (company.get("googleWorkspaceAccount") or {}).get("customerId")
            owners.append((int(company["companyId"]), workspace or None))
        token = body.get("nextPageToken")
        if not token:
            break

    listings = plan(owners, concurrency)
    bodies = iter(listings)
    lock = threading.Lock()
    pages: queue.Queue[Any] = queue.Queue(concurrency * 2)
    counter = {"calls": 0}

    def work() -> None:
        try:
            while True:
                with lock:
                    listing = next(bodies, None)
                if listing is None:
                    break
                page_token = None
                while True:
                    request = dict(listing, pageToken=page_token) if page_token else listing
                    reply = client.post(f"{base}/devices:findByOwner", json=request)
                    reply.raise_for_status()
                    data = reply.json()
                    with lock:
                        counter["calls"] += 1
                    pages.put(data.get("devices", []))
                    page_token = data.get("nextPageToken")
                    if not page_token:
                        break
        except Exception as exc:  # handed to the main thread, which raises it
            pages.put(exc)
        finally:
            pages.put(None)

    writer = _Writer(db_url) if db_url else None
    threads = [threading.Thread(target=work, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    seen: set[int] = set()
    devices: list[Any] = []
    claims: list[Any] = []
    metadata: list[Any] = []
    running = len(threads)
    while running:
        item = pages.get()
        if item is None:
            running -= 1
            continue
        if isinstance(item, Exception):
            raise item
        if writer is None:
            seen.update(int(device["deviceId"]) for device in item)
            continue
        for device in item:
            device_id = int(device["deviceId"])
            if device_id in seen:
                continue
            seen.add(device_id)
            ident = device.get("deviceIdentifier") or {}
            devices.append(
                (
                    device_id,
                    device.get("name"),
                    *(ident.get(k) for k in IDENT),
                    device.get("configuration"),
                    json.dumps(device),
                )
            )
            for c in device.get("claims") or ():
                claims.append(
                    (
                        device_id,
                        c.get("sectionType"),
                        _int(c.get("ownerCompanyId")),
                        _int(c.get("resellerId")),
                        c.get("vacationModeStartTime"),
                        c.get("vacationModeExpireTime"),
                        c.get("additionalService"),
                        c.get("googleWorkspaceCustomerId"),
                    )
                )
            entries = (device.get("deviceMetadata") or {}).get("entries") or {}
            metadata.extend((device_id, k, v) for k, v in entries.items())
        if len(devices) >= BATCH_DEVICES:
            writer.write(devices, claims, metadata)
            devices, claims, metadata = [], [], []
    if writer is not None:
        writer.write(devices, claims, metadata)
        writer.commit()
    client.close()
    return {
        "kind": "baseline",
        "wall_s": time.perf_counter() - started,
        "devices_seen": len(seen),
        "api_requests": calls + counter["calls"],
        "listings": len(listings),
    }

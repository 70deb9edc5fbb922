"""Scenario 8: bytes on the wire per device, as the sync asks today and as it could ask.

The sync's own figure comes from the emulator's count of the bytes it sent during a sync. The
others come from asking the emulator directly for the same customers and devices (the
customers, then findByOwner for 100 customers at a time with their Workspace accounts, 100
devices a page) in each wire format Google offers: indented JSON (its default), compact JSON
(``prettyPrint=false``), and compact JSON gzipped (``Accept-Encoding: gzip`` and a User-Agent
that says ``gzip``, as Google requires). Once the client asks for compact gzip, the sync's row
reads like the last one.
"""

from __future__ import annotations

from typing import Any

import httpx

from bench import prose
from bench.outcome import ZERO_TOUCH, Context, Outcome, job, require_success
from bench.procs import EmulatorProcess, run_child

GZIP_AGENT = "zt-inventory-bench (gzip)"
FORMATS: dict[str, tuple[dict[str, str], dict[str, str]]] = {  # label: (query, headers)
    "indented JSON (Google's default)": ({}, {}),
    "compact JSON (prettyPrint=false)": ({"prettyPrint": "false"}, {}),
    "compact JSON + gzip": (
        {"prettyPrint": "false"},
        {"Accept-Encoding": "gzip", "User-Agent": GZIP_AGENT},
    ),
}
COLUMNS = ["asked by", "wire format", "requests", "devices", "bytes", "bytes / device", "share"]


def wire(ctx: Context) -> Outcome:
    """One sync's bytes per device, then each wire format's, from the same emulator."""
    devices, customers = ctx.sizes.wire
    measured: list[tuple[str, str, int, int, int]] = []
    with EmulatorProcess(devices, customers) as emu, ctx.database() as db:
        emu.reset()
        result = require_success(run_child(job("sync", emu, db)), "wire")
        stats = emu.stats()
        measured.append(
            ("zt-inventory sync", "as its client asks today", stats["requests"],
             result["devices_seen"], stats["bytes_sent"])
        )  # fmt: skip
        for label, (query, headers) in FORMATS.items():
            emu.reset()
            listed = _page_everything(emu, query, headers)
            stats = emu.stats()
            measured.append(
                ("the bench, directly", label, stats["requests"], listed, stats["bytes_sent"])
            )
    indented = measured[1][4] / measured[1][3]
    rows = [
        [who, how, calls, listed, f"{sent:,}", f"{sent / listed:,.0f}"]
        + [f"{sent / listed / indented:.2f}"]
        for who, how, calls, listed, sent in measured
    ]
    ctx.log(f"  [{ctx.kind}] wire: sync {measured[0][4] / measured[0][3]:,.0f} bytes/device")
    return Outcome("8. Wire format", ctx.kind, COLUMNS, rows, [], [prose.WIRE])


def _page_everything(emu: EmulatorProcess, query: dict[str, str], headers: dict[str, str]) -> int:
    """Ask for every customer and every device they own in ``ZERO_TOUCH``; count the devices."""
    base = f"/v1/partners/{emu.partner_id}"
    seen: set[str] = set()
    with httpx.Client(base_url=emu.url, headers=headers, timeout=60.0) as http:
        owners = [
            (c["companyId"], (c.get("googleWorkspaceAccount") or {}).get("customerId"))
            for c in _pages(http, "GET", f"{base}/customers", "customers", query, None)
        ]
        for start in range(0, len(owners), 100):
            chunk = owners[start : start + 100]
            body: dict[str, Any] = {
                "sectionType": ZERO_TOUCH,
                "limit": "100",
                "customerId": [c for c, _ in chunk],
            }
            spaces = [w for _, w in chunk if w]
            if spaces:
                body["googleWorkspaceCustomerId"] = spaces
            path = f"{base}/devices:findByOwner"
            seen.update(d["deviceId"] for d in _pages(http, "POST", path, "devices", query, body))
    return len(seen)


def _pages(
    http: httpx.Client,
    method: str,
    path: str,
    key: str,
    query: dict[str, str],
    body: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = None
    while True:
        params = dict(query, pageSize="1000") if body is None else dict(query)
        if body is None and token:
            params["pageToken"] = token
        payload = None if body is None else dict(body, **({"pageToken": token} if token else {}))
        answer = http.request(method, path, params=params, json=payload)
        answer.raise_for_status()
        data = answer.json()
        items += data.get(key, [])
        token = data.get("nextPageToken")
        if not token:
            return items

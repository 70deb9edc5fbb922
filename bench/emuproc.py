"""The emulator in a process of its own: ``python -m bench.emuproc --devices N --customers C``.

It generates the fleet, serves it on a loopback port and prints one JSON line (``url``,
``partner_id``, ``zt_devices``: the distinct devices a full zero-touch sync must find), then
answers commands read from stdin, one per line:

- ``stats``: one JSON line with the requests answered by method and by status, the number of
  429 answers, and (``times``) each API request's arrival time on the monotonic clock;
- ``reset``: zero those counters;
- ``quit`` or end of input: stop serving and exit.

Counting happens around ``Emulator.handle``, so it sees exactly what the server answered.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from typing import Any

import httpx

from inventory.emulator import Emulator, FaultConfig, generate_fleet, serve

PARTNER_ID = 1234567
SECTION = "SECTION_TYPE_ZERO_TOUCH"


def _method(path: str) -> str:
    if path.endswith(":findByOwner"):
        return "findByOwner"
    if path.endswith(":findByIdentifier"):
        return "findByIdentifier"
    if path.endswith("/customers"):
        return "customers.list"
    if path == "/token":
        return "token"
    return "other"


class _Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.by_method: Counter[str] = Counter()
            self.by_status: Counter[int] = Counter()
            self.times: list[float] = []

    def add(self, method: str, status: int, arrived: float) -> None:
        with self.lock:
            self.by_method[method] += 1
            self.by_status[status] += 1
            if method != "token":
                self.times.append(arrived)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": sum(self.by_method.values()),
                "by_method": dict(self.by_method),
                "by_status": {str(k): v for k, v in self.by_status.items()},
                "http_429": self.by_status.get(429, 0),
                "times": list(self.times),
            }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skew", type=float, default=1.1, help="Zipf exponent (generate_fleet)")
    parser.add_argument("--even", action="store_true", help="every customer gets the same share")
    parser.add_argument("--unclaimed-share", type=float, default=0.03)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per API call")
    parser.add_argument("--quota", type=int, default=0, help="calls per quota window (0: none)")
    parser.add_argument("--quota-window", type=float, default=100.0)
    args = parser.parse_args(argv)

    fleet = generate_fleet(
        devices=args.devices,
        customers=args.customers,
        seed=args.seed,
        partner_id=PARTNER_ID,
        skew=args.skew,
        weights=[1.0] * args.customers if args.even else None,
        unclaimed_share=args.unclaimed_share,
    )
    faults = FaultConfig(
        latency_s=args.latency, quota_requests=args.quota, quota_window_s=args.quota_window
    )
    emu = Emulator(fleet, faults=faults, log_limit=0)
    customers = fleet.current_customers()
    zt_devices = fleet.count_owned(
        SECTION,
        {c.company_id for c in customers},
        {c.google_workspace_customer_id for c in customers if c.google_workspace_customer_id},
    )
    stats = _Stats()
    inner = emu.handle

    def handle(request: httpx.Request) -> httpx.Response:
        arrived = time.monotonic()
        method = _method(request.url.path)
        if method == "findByOwner" and b"googleWorkspaceCustomerId" in request.content:
            method = "findByOwner (workspace)"
        try:
            response = inner(request)
        except httpx.TransportError:
            stats.add(method, 0, arrived)
            raise
        stats.add(method, response.status_code, arrived)
        return response

    emu.handle = handle  # type: ignore[method-assign]
    with serve(emu) as server:
        ready = {
            "url": server.url,
            "partner_id": PARTNER_ID,
            "zt_devices": zt_devices,
            "customers": len(customers),
        }
        print(json.dumps(ready), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                print(json.dumps(stats.snapshot()), flush=True)
            elif command == "reset":
                stats.reset()
                print("{}", flush=True)
            elif command == "quit":
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())

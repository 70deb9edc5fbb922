"""Emulator scale check: build a large fleet, serve it on loopback, page devices through it.

Prints the build time, the process RSS after the build and at the end, and how many devices
per second findByOwner pages deliver over loopback HTTP (one client, limit 100). Targets: a
1,000,000-device fleet in well under 1 GB RSS, and >= 5,000 devices/s.

    .venv/bin/python bench/emulator_scale.py --devices 1000000 --customers 50000
    .venv/bin/python bench/emulator_scale.py --json   # one JSON line, for tests
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inventory.emulator import Emulator, generate_fleet, serve  # noqa: E402


def rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the benchmark and return its measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--serve-devices", type=int, default=100_000, help="devices to page")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)

    start_rss = rss_mb()
    started = time.perf_counter()
    fleet = generate_fleet(devices=args.devices, customers=args.customers, seed=args.seed)
    build_s = time.perf_counter() - started
    built_rss = rss_mb()

    emu = Emulator(fleet, log_limit=1000)
    section = "SECTION_TYPE_ZERO_TOUCH"
    customers = sorted(  # biggest first: full pages, as a large reseller's sync sees them
        fleet.current_customers(),
        key=lambda c: -fleet.count_owned(section, {c.company_id}, set()),
    )
    served = requests = 0
    path = f"/v1/partners/{fleet.partner_id}/devices:findByOwner"
    with serve(emu) as server, httpx.Client(base_url=server.url) as client:
        started = time.perf_counter()
        for company in customers:
            token = None
            while served < args.serve_devices:
                body = {
                    "customerId": [str(company.company_id)],
                    "sectionType": section,
                    "limit": 100,
                    **({"pageToken": token} if token else {}),
                }
                page = client.post(path, json=body)
                page.raise_for_status()
                data = page.json()
                requests += 1
                served += len(data.get("devices", []))
                token = data.get("nextPageToken")
                if not token:
                    break
            if served >= args.serve_devices:
                break
        serve_s = time.perf_counter() - started
    result = {
        "devices": args.devices,
        "customers": args.customers,
        "build_s": round(build_s, 2),
        "rss_start_mb": round(start_rss, 1),
        "rss_built_mb": round(built_rss, 1),
        "rss_end_mb": round(rss_mb(), 1),
        "served_devices": served,
        "requests": requests,
        "devices_per_s": round(served / serve_s, 1) if serve_s else 0.0,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")
    return result


if __name__ == "__main__":
    main()

"""Scenario 2: API calls of a sync of many small customers, against the floor."""

from __future__ import annotations

import math

from bench import prose
from bench.outcome import Check, Context, Outcome, job, require_success
from bench.procs import EmulatorProcess, run_child
from inventory.api import CUSTOMERS_PAGE_SIZE

DEVICES_PAGE = 100  # findByOwner's largest limit
TARGET = 1.05


def request_count(ctx: Context) -> Outcome:
    """One sync of ``customers`` customers with a few devices each, even shares, none
    unclaimed; its calls against ceil(devices / 100) + ceil(customers / customers page)."""
    customers, each = ctx.sizes.requests
    with (
        EmulatorProcess(customers * each, customers, even=True, unclaimed_share=0.0) as emu,
        ctx.database() as db,
    ):
        result = require_success(run_child(job("sync", emu, db)), "request count")
        stats = emu.stats()
    found = emu.zt_devices
    device_pages = math.ceil(found / DEVICES_PAGE)
    floor = device_pages + math.ceil(customers / CUSTOMERS_PAGE_SIZE)
    floor_100 = device_pages + math.ceil(customers / 100)
    calls = result["api_requests"]
    by_method = stats["by_method"]
    find_calls = by_method.get("findByOwner", 0)
    ratio = calls / floor
    ctx.log(f"  [{ctx.kind}] request count: {calls} calls, floor {floor}, {ratio:.3f}x")
    return Outcome(
        "2. Request count",
        ctx.kind,
        [
            "customers",
            "devices found",
            "customers.list",
            "findByOwner",
            "listings",
            "partial pages",
            "calls",
            "floor",
            "calls/floor",
            "wall s",
        ],
        [
            [
                customers,
                result["devices_seen"],
                by_method.get("customers.list", 0),
                find_calls,
                result["listings"],
                find_calls - device_pages,
                calls,
                floor,
                f"{ratio:.3f}",
                f"{result['wall_s']:.1f}",
            ]
        ],
        [Check(f"calls <= {TARGET} x floor", f"{ratio:.3f}", ratio <= TARGET)],
        [prose.request_count_setup(customers, each, calls, floor_100, stats["requests"])],
    )

"""Scenario 9: several reseller accounts in one run, against a run of each alone.

The emulator serves ``n`` partners (a few customers and devices shared between them). Each
partner is first synced alone into a database of its own, then all of them in one run into
another: the run of all takes no more calls than the runs alone together, stays within
``TARGET`` x the sum of each partner's floor, and its peak memory stays flat.

A run's floor is what any sync must call: its customers.list pages, vendors.list, one
vendors.customers.list per vendor, and ceil(devices its listings return / 100) findByOwner
pages. The listings return a Chrome OS device claimed for a company and for its Workspace
account twice, once per kind of listing: a findByOwner request never names both kinds of
owner, since the discovery document leaves open whether such a request returns the union or
the intersection (``inventory.sync.plan``). What the floor leaves out is the last, partly
filled page of each listing.
"""

from __future__ import annotations

import math

from bench.outcome import Check, Context, Outcome, job, require_success
from bench.procs import EmulatorProcess, run_child
from bench.scenarios.memory import memory_checks
from inventory.api import CUSTOMERS_PAGE_SIZE

DEVICES_PAGE = 100
TARGET = 1.05
VENDORS = 3  # the emulator's vendors per partner (each a vendors.customers.list call)


def partners(ctx: Context) -> Outcome:
    """``sizes.partners`` = (devices and customers of each partner, partners)."""
    devices, customers, n = ctx.sizes.partners
    rows: list[list[object]] = []
    with EmulatorProcess(devices, customers, partners=n) as emu:
        ids = sorted(emu.listed)
        alone: dict[int, dict[str, float]] = {}
        for pid in ids:
            with ctx.database() as db:
                one = run_child(job("sync", emu, db, partners=[{"id": pid}]))
            alone[pid] = require_success(one, f"partner {pid} alone")
            rows.append(_row(f"partner {pid} alone", alone[pid], _floor(alone[pid], 1, customers)))
        with ctx.database() as db:
            every = [{"id": pid} for pid in ids]
            together = require_success(run_child(job("sync", emu, db, partners=every)), "all")
    floor = _floor(together, n, customers)
    rows.append(_row(f"{n} partners in one run", together, floor))
    calls_alone = sum(int(r["api_requests"]) for r in alone.values())
    calls = int(together["api_requests"])
    ctx.log(
        f"  [{ctx.kind}] partners: {n} in one run {calls} calls, alone {calls_alone}, "
        f"floor {floor}; peak RSS {together['peak_rss_mb']:.0f} MB"
    )
    largest_alone = max(r["peak_rss_mb"] for r in alone.values())
    return Outcome(
        "9. Several partners",
        ctx.kind,
        ["run", "devices seen", "calls", "floor", "calls/floor", "peak RSS MB", "wall s"],
        rows,
        [
            Check(
                "calls <= the runs alone together", f"{calls} / {calls_alone}", calls <= calls_alone
            ),  # fmt: skip
            Check(
                f"calls <= {TARGET} x the floors together",
                f"{calls / floor:.3f}",
                calls / floor <= TARGET,
            ),  # fmt: skip
            *memory_checks(largest_alone, together["peak_rss_mb"], f"{n} partners / one: "),
        ],
        [
            f"{n} partners of {devices:,} devices and {customers} customers each (2 customers "
            "and a few devices shared), ZERO_TOUCH, anonymous credentials (one limiter), quota "
            "off. Each partner synced alone into an empty database, then all in one run into "
            "another. A run's floor, per partner: its customers.list pages + vendors.list + "
            f"{VENDORS} vendors.customers.list; and ceil(devices the listings return / 100), "
            "which counts a Chrome OS device claimed for a company and its Workspace account "
            "once per kind of listing (see the scenario's module)."
        ],
    )


def _floor(result: dict[str, float], partners: int, customers: int) -> int:
    """The calls any sync of ``partners`` partners must make (the module's docstring)."""
    lists = partners * (math.ceil(customers / CUSTOMERS_PAGE_SIZE) + 1 + VENDORS)
    return lists + math.ceil(result["listing_devices"] / DEVICES_PAGE)


def _row(name: str, result: dict[str, float], floor: int) -> list[object]:
    calls = int(result["api_requests"])
    return [
        name,
        int(result["devices_seen"]),
        calls,
        floor,
        f"{calls / floor:.3f}",
        f"{result['peak_rss_mb']:.1f}",
        f"{result['wall_s']:.1f}",
    ]

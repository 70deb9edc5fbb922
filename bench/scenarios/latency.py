"""Scenario 3: 100 ms per call at concurrency 8; a run's wall time against calls x 0.1 / 8.

Judged on the whole run, what the user waits for; the customers, devices and merge phases are
reported beside it. A skewed fleet's first sync and re-sync are reported, not judged.
"""

from __future__ import annotations

import math
from typing import Any

from bench import prose
from bench.outcome import Check, Context, Outcome, job, require_success, seconds
from bench.procs import EmulatorProcess, run_child
from inventory.store import make_engine
from inventory.store.snapshot import devices_per_owner

LATENCY_S = 0.1
CONCURRENCY = 8
TARGET = 1.15
API = {"concurrency": CONCURRENCY}
COLUMNS = [
    "run",
    "devices",
    "calls",
    "ideal s (calls x 0.1 / 8)",
    "customers phase s",
    "devices phase s",
    "merge phase s",
    "whole run s",
    "whole run / ideal",
    "customers+devices / ideal",
    "devices/s (whole run)",
]


def ideal_s(calls: int) -> float:
    """The least time ``calls`` calls of 100 ms take on 8 request slots."""
    return calls * LATENCY_S / CONCURRENCY


def latency(ctx: Context) -> Outcome:
    """A first sync of an even fleet with 100 ms calls, a fetch-only client on the same
    pages, and a skewed fleet's first sync and re-sync."""
    devices, customers = ctx.sizes.latency
    with (
        EmulatorProcess(devices, customers, even=True, latency=LATENCY_S) as emu,
        ctx.database() as db,
    ):
        result = require_success(run_child(job("sync", emu, db, api=API)), "latency")
        by_method = emu.stats()["by_method"]
        fetch = run_child(job("fetch", emu, None, api=API))
    skewed, longest = _skewed(ctx, devices, customers)
    ratio = result["wall_s"] / ideal_s(result["api_requests"])
    phases = result["phases"]
    api_s = (phases.get("customers") or 0.0) + (phases.get("devices") or 0.0)
    ctx.log(f"  [{ctx.kind}] latency: whole run {result['wall_s']:.1f} s, {ratio:.2f}x ideal")
    labels = ["skewed fleet: first sync", "skewed fleet: re-sync, planned from the snapshot"]
    return Outcome(
        "3. Latency hiding",
        ctx.kind,
        COLUMNS,
        [
            _row("zt-inventory sync", result),
            _row("fetch + parse only (no storage)", fetch),
            *(_row(label, r) for label, r in zip(labels, skewed, strict=True)),
        ],
        [Check(f"sync whole run <= {TARGET} x ideal", f"{ratio:.2f}", ratio <= TARGET)],
        [
            *(
                [prose.latency_why(ctx.kind, result, by_method, fetch, api_s)]
                if ratio > TARGET
                else []
            ),
            prose.latency_skew(devices, customers, longest, ideal_s(skewed[-1]["api_requests"])),
            prose.latency_setup(devices, customers),
        ],
    )


def _row(label: str, r: dict[str, Any]) -> list[Any]:
    ideal = ideal_s(r["api_requests"])
    phases = r.get("phases") or {}
    api_s = (phases.get("customers") or 0.0) + (phases.get("devices") or 0.0)
    return [
        label,
        r["devices_seen"],
        r["api_requests"],
        f"{ideal:.2f}",
        seconds(phases.get("customers"), 2),
        seconds(phases.get("devices"), 2),
        seconds(phases.get("merging"), 2),
        f"{r['wall_s']:.2f}",
        f"{r['wall_s'] / ideal:.2f}",
        f"{api_s / ideal:.2f}" if phases else "-",
        f"{r['devices_seen'] / r['wall_s']:,.0f}",
    ]


def _skewed(ctx: Context, devices: int, customers: int) -> tuple[list[dict[str, Any]], int]:
    """A skewed fleet's first sync and re-sync, and its largest customer's devices."""
    runs = []
    with EmulatorProcess(devices, customers, latency=LATENCY_S) as emu, ctx.database() as db:
        for n in range(2):
            result = run_child(job("sync", emu, db, init=n == 0, api=API))
            runs.append(require_success(result, "latency (skewed fleet)"))
        engine = make_engine(db.url)
        try:
            with engine.connect() as conn:
                companies, spaces = devices_per_owner(conn, ["SECTION_TYPE_ZERO_TOUCH"])
        finally:
            engine.dispose()
    return runs, max([*companies.values(), *spaces.values(), 0])


def longest_chain_s(devices: int) -> float:
    """How long one request at a time takes to page through ``devices`` devices."""
    return math.ceil(devices / 100) * LATENCY_S

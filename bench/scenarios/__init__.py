"""The scenarios, one module each; every one runs on one database kind and returns an Outcome.

``throughput`` (1), ``request_count`` (2), ``latency`` (3), ``quota`` (4), ``memory`` (5),
``resync`` (6), ``matrix`` (7: the configurations users run), ``wire`` (8: bytes per device
in each wire format) and ``partners`` (9: several reseller accounts in one run).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.outcome import Context, Outcome, job, require_success
from bench.procs import EmulatorProcess, run_child
from bench.scenarios import (
    latency,
    matrix,
    memory,
    partners,
    quota,
    request_count,
    resync,
    throughput,
    wire,
)

SCENARIOS: dict[str, Callable[[Context], Outcome]] = {
    "1": throughput.throughput,
    "2": request_count.request_count,
    "3": latency.latency,
    "4": quota.quota,
    "5": memory.memory,
    "6": resync.unchanged,
    "7": matrix.matrix,
    "8": wire.wire,
    "9": partners.partners,
}


def profile_throughput(ctx: Context, target: Path) -> dict[str, Any]:
    """A pyinstrument profile of scenario 1's sync, written to ``target`` (.txt or .html)."""
    devices, customers = ctx.sizes.throughput
    with EmulatorProcess(devices, customers) as emu, ctx.database() as db:
        result = run_child(job("sync", emu, db, profile=str(target)))
    return require_success(result, "profile")

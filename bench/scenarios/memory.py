"""Scenario 5: peak RSS of a sync process at two fleet sizes."""

from __future__ import annotations

from bench import prose
from bench.outcome import Check, Context, Outcome, job, require_success
from bench.procs import EmulatorProcess, run_child

GROWTH = 1.2
CEILING_MB = 300


def memory(ctx: Context) -> Outcome:
    """First syncs into empty databases at ``sizes.memory`` devices, the same customers."""
    rows = []
    peaks = []
    for devices in ctx.sizes.memory:
        with (
            EmulatorProcess(devices, ctx.sizes.memory_customers) as emu,
            ctx.database() as db,
        ):
            result = require_success(run_child(job("sync", emu, db)), "memory")
        peaks.append(result["peak_rss_mb"])
        ctx.log(
            f"  [{ctx.kind}] memory: {devices:,} devices, peak RSS {result['peak_rss_mb']:.0f} MB, "
            f"{result['wall_s']:.0f} s"
        )
        rows.append(
            [
                devices,
                result["devices_seen"],
                f"{result['peak_rss_mb']:.1f}",
                f"{result['wall_s']:.1f}",
                f"{result['devices_seen'] / result['wall_s']:,.0f}",
            ]
        )
    return Outcome(
        "5. Memory",
        ctx.kind,
        ["fleet", "devices synced", "peak RSS MB", "wall s", "devices/s"],
        rows,
        memory_checks(peaks[0], peaks[-1]),
        [prose.memory_setup(ctx.sizes.memory_customers)],
    )


def memory_checks(small_mb: float, large_mb: float, what: str = "") -> list[Check]:
    """Flat memory: the larger fleet's peak RSS within ``GROWTH`` x the smaller's, and under
    ``CEILING_MB``."""
    growth = large_mb / small_mb
    peak = max(small_mb, large_mb)
    return [
        Check(f"{what}larger / smaller peak RSS <= {GROWTH}", f"{growth:.2f}", growth <= GROWTH),
        Check(f"{what}peak RSS < {CEILING_MB} MB", f"{peak:.0f} MB", peak < CEILING_MB),
    ]

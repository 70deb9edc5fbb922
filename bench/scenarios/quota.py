"""Scenario 4: a time-compressed quota enforced by the emulator and matched by settings."""

from __future__ import annotations

from bench import prose
from bench.outcome import Check, Context, Outcome, job, require_success
from bench.procs import EmulatorProcess, run_child


def quota(ctx: Context) -> Outcome:
    """One sync against an emulator that allows ``calls`` per ``window`` seconds, with
    ``api.quota_per_100s`` and ``api.quota_window_s`` set to the same rule."""
    devices, customers = ctx.sizes.quota
    calls_allowed, window = ctx.sizes.quota_rule
    with (
        EmulatorProcess(
            devices, customers, quota=calls_allowed, quota_window=window, even=True
        ) as emu,
        ctx.database() as db,
    ):
        api = {"quota_per_100s": calls_allowed, "quota_window_s": window, "max_retries": 8}
        result = require_success(run_child(job("sync", emu, db, api=api)), "quota")
        stats = emu.stats()
    times = sorted(stats["times"])
    used, peak, span = quota_use(times, calls_allowed, window)
    refused = stats["by_status"].get("429", 0)
    ctx.log(f"  [{ctx.kind}] quota: {used:.1%} used, peak {peak}/{calls_allowed}, {refused} x 429")
    return Outcome(
        "4. Quota",
        ctx.kind,
        [
            "quota",
            "calls",
            "span s",
            "quota used",
            "peak calls in any window",
            "429 answers",
            "retries",
            "wall s",
        ],
        [
            [
                f"{calls_allowed} per {window:g} s",
                len(times),
                f"{span:.1f}",
                f"{used:.1%}",
                peak,
                refused,
                result["retries"],
                f"{result['wall_s']:.1f}",
            ]
        ],
        [
            Check("quota used >= 95 %", f"{used:.1%}", used >= 0.95),
            Check("zero 429 answers", str(refused), refused == 0),
        ],
        [prose.QUOTA],
    )


def quota_use(times: list[float], allowed: int, window: float) -> tuple[float, int, float]:
    """(share of the quota used over the whole windows, peak calls in a window, span)."""
    if not times:
        return 0.0, 0, 0.0
    span = times[-1] - times[0]
    whole = int(span // window)
    peak = 0
    start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        peak = max(peak, end - start + 1)
    if whole == 0:
        return len(times) / allowed, peak, span
    inside = sum(1 for t in times if t < times[0] + whole * window)
    return inside / (whole * allowed), peak, span

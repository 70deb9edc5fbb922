"""Scenario 1: devices/s of a first sync next to the raw baseline, same pages, same run."""

from __future__ import annotations

from typing import Any

from bench import prose
from bench.outcome import Check, Context, Outcome, job, require_success, seconds
from bench.procs import EmulatorProcess, run_child
from bench.scratch import ScratchDatabase

TARGET = 0.7
KINDS = ("baseline", "sync")
LABELS = {
    "baseline": "raw baseline",
    "sync": "zt-inventory sync",
    "fetch": "fetch + parse only (emulator and client ceiling)",
}


def throughput(ctx: Context) -> Outcome:
    """Best of ``sizes.repeat`` interleaved baseline and sync runs, and one fetch-only run.

    The last sync's database and the emulator are kept for scenario 6.
    """
    devices, customers = ctx.sizes.throughput
    emu = EmulatorProcess(devices, customers)
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    keep: ScratchDatabase | None = None
    try:
        for n in range(ctx.sizes.repeat):
            for kind in KINDS:  # interleaved, so drift hits both alike
                db = ctx.database()
                last = kind == "sync" and n == ctx.sizes.repeat - 1
                try:
                    result = require_success(run_child(job(kind, emu, db)), "throughput")
                finally:
                    if last:
                        keep = db
                    else:
                        db.drop()
                runs[kind].append(result)
                ctx.log(
                    f"  [{ctx.kind}] throughput {kind} #{n + 1}: {result['wall_s']:.1f} s, "
                    f"{result['devices_seen'] / result['wall_s']:,.0f} devices/s"
                )
        fetch = run_child(job("fetch", emu, None))
    except BaseException:
        emu.close()
        if keep is not None:
            keep.drop()
        raise
    ctx.kept_db, ctx.kept_emulator = keep, emu
    ctx.first_sync = runs["sync"][-1]
    best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in runs.items()}
    rate = {k: r["devices_seen"] / r["wall_s"] for k, r in best.items()}
    ratio = rate["sync"] / rate["baseline"]
    rows = [_row(k, best[k], runs[k]) for k in KINDS] + [_row("fetch", fetch, [fetch])]
    return Outcome(
        "1. Throughput",
        ctx.kind,
        [
            "run",
            "devices",
            "API calls",
            "wall s (best)",
            "devices/s",
            "CPU s",
            "fetch+stage s",
            "merge s",
            "peak RSS MB",
            "all walls s",
        ],
        rows,
        [Check(f"sync/baseline devices/s >= {TARGET:.2f}", f"{ratio:.2f}", ratio >= TARGET)],
        [
            *([prose.throughput_why(ctx.kind, best, fetch, TARGET)] if ratio < TARGET else []),
            prose.throughput_setup(devices, customers, best["sync"], ctx.sizes.repeat),
        ],
    )


def _row(kind: str, best: dict[str, Any], every: list[dict[str, Any]]) -> list[Any]:
    phases = best.get("phases") or {}
    return [
        LABELS[kind],
        best["devices_seen"],
        best["api_requests"],
        f"{best['wall_s']:.1f}",
        f"{best['devices_seen'] / best['wall_s']:,.0f}",
        f"{best['cpu_s']:.1f}",
        seconds(phases.get("devices")),
        seconds(phases.get("merging")),
        f"{best['peak_rss_mb']:.0f}",
        ", ".join(f"{x['wall_s']:.1f}" for x in every),
    ]

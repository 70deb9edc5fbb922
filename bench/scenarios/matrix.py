"""Scenario 7: the configurations users run, each a first sync and an unchanged re-sync.

Each configuration is a fleet shape (``zt-inventory emulator`` options) and the section types
a sync lists. Rows give what the user waits for (the whole run), the merge phase, peak RSS, the
bytes the emulator sent per device, and the database's size per device after the run. With
``--matrix-large`` each configuration runs again at ``sizes.matrix_large`` devices, and its
memory is judged like scenario 5's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import prose
from bench.outcome import (
    SIM_LOCK,
    ZERO_TOUCH,
    Check,
    Context,
    Outcome,
    job,
    require_success,
    seconds,
)
from bench.procs import CHILD_TIMEOUT_S, ChildTimeoutError, EmulatorProcess, run_child
from bench.scenarios.memory import memory_checks

RESYNC_WALL = 0.75  # an unchanged re-sync's whole run, against its first sync's
RESYNC_MERGE = 0.1  # an unchanged re-sync's merge phase, against its first sync's
BOTH_PER_DEVICE = 1.3  # both section types' first sync per device listed, against ZERO_TOUCH's
CHROME_SHARE = 0.4
# A re-sync runs at most this many times its first sync (and at least STOP_FLOOR_S): a
# quadratic step stops there, reported as missed, instead of holding the run for hours.
STOP_FACTOR = 5
STOP_FLOOR_S = 600
RUNS = ("first sync", "unchanged re-sync")
COLUMNS = [
    "configuration",
    "fleet",
    "run",
    "devices listed",
    "API calls",
    "whole run s",
    "fetch+stage s",
    "merge s",
    "peak RSS MB",
    "bytes received / device",
    "database bytes / device",
]


@dataclass(frozen=True)
class Config:
    """One configuration: its name (``--matrix-configs``), label, fleet and section types."""

    key: str
    label: str
    fleet: dict[str, Any]
    sections: tuple[str, ...] = (ZERO_TOUCH,)


CONFIGS = (
    Config("zero-touch", "ZERO_TOUCH only", {"even": True}),
    Config("both", "both section types", {"even": True}, (SIM_LOCK, ZERO_TOUCH)),
    Config(
        "workspace-alone",
        "Chrome OS claimed by a Workspace account alone",
        {"even": True, "chrome_share": CHROME_SHARE, "workspace_alone_share": 1.0},
    ),
    Config(
        "workspace-company",
        "Chrome OS claimed by a Workspace account with the company",
        {"even": True, "chrome_share": CHROME_SHARE, "workspace_alone_share": 0.0},
    ),
    Config("skewed", "skewed fleet (Zipf 1.1)", {"skew": 1.1}),
)
KEYS = tuple(c.key for c in CONFIGS)


def matrix(ctx: Context) -> Outcome:
    """Every chosen configuration at ``sizes.matrix`` (and ``matrix_large``) devices."""
    devices, customers = ctx.sizes.matrix
    sizes = [devices, *([ctx.sizes.matrix_large] if ctx.matrix_large else [])]
    chosen = [c for c in CONFIGS if not ctx.matrix_configs or c.key in ctx.matrix_configs]
    rows: list[list[Any]] = []
    checks: list[Check] = []
    firsts: dict[str, dict[str, Any]] = {}
    for config in chosen:
        peaks = []
        for size in sizes:
            first, again = _pair(ctx, config, size, customers)
            rows += [
                _row(config, size, name, r) for name, r in zip(RUNS, (first, again), strict=True)
            ]
            peaks.append(max(r.get("peak_rss_mb", 0.0) for r in (first, again)))
            if size == devices:
                firsts[config.key] = first
                checks += _resync_checks(config, first, again)
        if len(peaks) > 1:
            checks += memory_checks(peaks[0], peaks[-1], f"{config.label}: ")
    if "both" in firsts and "zero-touch" in firsts:
        cost = {k: r["wall_s"] / r["devices_seen"] for k, r in firsts.items()}
        ratio = cost["both"] / cost["zero-touch"]
        checks.append(
            Check(
                f"both section types: first sync s per device listed / ZERO_TOUCH only's <= "
                f"{BOTH_PER_DEVICE}",
                f"{ratio:.2f}",
                ratio <= BOTH_PER_DEVICE,
            )
        )
    return Outcome(
        "7. Configuration matrix",
        ctx.kind,
        COLUMNS,
        rows,
        checks,
        [
            prose.matrix_setup(
                devices, customers, CHROME_SHARE, sizes[1:], (STOP_FACTOR, STOP_FLOOR_S)
            )
        ],
    )


def _pair(
    ctx: Context, config: Config, devices: int, customers: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A first sync and an unchanged re-sync of one configuration into one database."""
    sync = {"section_types": list(config.sections)}
    results: list[dict[str, Any]] = []
    with EmulatorProcess(devices, customers, **config.fleet) as emu, ctx.database() as db:
        for n, name in enumerate(RUNS):
            emu.reset()
            first_s = results[0]["wall_s"] if results else None
            limit = max(STOP_FLOOR_S, STOP_FACTOR * first_s) if first_s else CHILD_TIMEOUT_S
            try:
                result = run_child(job("sync", emu, db, init=n == 0, sync=sync), limit)
            except ChildTimeoutError as exc:
                ctx.log(f"  [{ctx.kind}] matrix {config.key} {devices:,} {name}: {exc}")
                results.append({"stopped_after_s": exc.timeout_s})
                continue
            require_success(result, f"matrix {config.key} {name}")
            result["bytes_received"] = emu.stats()["bytes_sent"]
            result["database_bytes"] = db.size_bytes()
            results.append(result)
            ctx.log(
                f"  [{ctx.kind}] matrix {config.key} {devices:,} {name}: {result['wall_s']:.1f} s, "
                f"merge {result['phases'].get('merging') or 0:.2f} s, "
                f"{result['peak_rss_mb']:.0f} MB"
            )
    return results[0], results[1]


def _row(config: Config, devices: int, name: str, r: dict[str, Any]) -> list[Any]:
    if "stopped_after_s" in r:
        stopped = f"> {r['stopped_after_s']:.0f} (stopped)"
        return [config.label, f"{devices:,}", name, "-", "-", stopped, *["-"] * 5]
    listed = max(1, r["devices_seen"])
    merge = r["phases"].get("merging")
    return [
        config.label,
        f"{devices:,}",
        name,
        r["devices_seen"],
        r["api_requests"],
        f"{r['wall_s']:.1f}",
        seconds(r["phases"].get("devices")),
        "-" if merge is None else f"{merge:.2f}",
        f"{r['peak_rss_mb']:.0f}",
        f"{r['bytes_received'] / listed:,.0f}",
        f"{r['database_bytes'] / listed:,.0f}",
    ]


def _resync_checks(config: Config, first: dict[str, Any], again: dict[str, Any]) -> list[Check]:
    if "stopped_after_s" in again:
        wall = again["stopped_after_s"] / first["wall_s"]
        return [
            Check(f"{config.label}: re-sync / first sync (whole run) <= {RESYNC_WALL}",
                  f"> {wall:.0f} (stopped)", False),
            Check(f"{config.label}: re-sync merge / first merge <= {RESYNC_MERGE}",
                  "- (stopped)", False),
        ]  # fmt: skip
    wall = again["wall_s"] / first["wall_s"]
    merge_1 = first["phases"].get("merging") or 0.0
    merge_2 = again["phases"].get("merging") or 0.0
    merge = merge_2 / merge_1 if merge_1 else float("nan")
    return [
        Check(
            f"{config.label}: re-sync / first sync (whole run) <= {RESYNC_WALL}",
            f"{wall:.2f}",
            wall <= RESYNC_WALL,
        ),
        Check(
            f"{config.label}: re-sync merge / first merge <= {RESYNC_MERGE}",
            f"{merge:.2f}",
            merge <= RESYNC_MERGE,
        ),
    ]

"""One measured job in a process of its own: ``python -m bench.child '<job as JSON>'``.

A job is a ``sync`` (``inventory.sync.run_sync`` against the emulator's URL) or a
``baseline`` (``bench.baseline``). The figures come back as the last stdout line, prefixed
with ``BENCH-RESULT``: wall time, phase times (from ``on_progress`` phase transitions), the
sync's counts and this process's peak RSS (``VmHWM``), which is the sync's alone because the
emulator runs elsewhere.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import RESULT_PREFIX

PHASES = ("customers", "devices", "merging", "done")


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _settings(job: dict[str, Any]) -> Any:
    from inventory.config import settings_from

    return settings_from(
        {
            "partner": {"id": job["partner_id"]},
            "auth": {"credentials": "anonymous"},
            "api": {
                "endpoint": job["endpoint"],
                "concurrency": job.get("concurrency", 4),
                "quota_per_100s": job.get("quota_per_100s", 0),
                "quota_window_s": job.get("quota_window_s", 100.0),
                "max_retries": job.get("max_retries", 8),
            },
            "database": {"url": job["db_url"]},
        }
    )


def run_sync_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one sync and return its figures."""
    from inventory import db
    from inventory.store import make_engine
    from inventory.sync import Progress, run_sync

    if job.get("init"):
        engine = make_engine(job["db_url"])
        db.upgrade(engine)
        engine.dispose()
    settings = _settings(job)
    if job.get("sync_constants"):  # an experiment knob, e.g. {"MAX_IDS_PER_LISTING": 250}
        import inventory.sync.fetch
        import inventory.sync.plan

        for name, value in job["sync_constants"].items():
            module = (
                inventory.sync.plan if hasattr(inventory.sync.plan, name) else inventory.sync.fetch
            )
            setattr(module, name, value)
    marks: dict[str, float] = {}

    def on_progress(progress: Progress) -> None:
        if progress.phase not in marks:
            marks[progress.phase] = time.perf_counter()

    profiler = None
    if job.get("profile"):
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    started = time.perf_counter()
    result = run_sync(settings, on_progress=on_progress)
    wall = time.perf_counter() - started
    if profiler is not None:
        profiler.stop()
        _write_profile(profiler, job["profile"])
    ended = started + wall
    times = [marks.get(p) for p in PHASES]
    phases: dict[str, float | None] = {}
    for n, phase in enumerate(PHASES[:-1]):
        begin = times[n]
        end = next((t for t in times[n + 1 :] if t is not None), ended)
        phases[phase] = None if begin is None else end - begin
    return {
        "kind": "sync",
        "wall_s": wall,
        "phases": phases,
        "status": result.status,
        "error": result.error,
        "devices_seen": result.devices_seen,
        "devices_added": result.devices_added,
        "devices_changed": result.devices_changed,
        "devices_removed": result.devices_removed,
        "customers_seen": result.customers_seen,
        "api_requests": result.api_requests,
        "retries": result.retries,
        "listings": len(result.listings),
        "listing_devices": sum(x.devices_seen for x in result.listings),
    }


def _write_profile(profiler: Any, path: str) -> None:
    """Write the profile as text, or as pyinstrument's HTML page when ``path`` ends .html."""
    target = Path(path)
    if target.suffix == ".html":
        target.write_text(profiler.output_html(), encoding="utf-8")
    else:
        text = profiler.output_text(unicode=True, color=False, show_all=False)
        target.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    job: dict[str, Any] = json.loads(args[0])
    if job.get("switch_interval"):  # an experiment knob: the GIL's forced-switch interval
        sys.setswitchinterval(float(job["switch_interval"]))
    if job["kind"] == "sync":
        out = run_sync_job(job)
    elif job["kind"] == "baseline":
        from bench.baseline import run_baseline

        out = run_baseline(
            job["endpoint"], job["partner_id"], job.get("db_url"), job.get("concurrency", 4)
        )
    else:
        raise SystemExit(f"unknown job kind {job['kind']!r}")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu_s"] = usage.ru_utime + usage.ru_stime
    out["peak_rss_mb"] = peak_rss_mb()
    print(RESULT_PREFIX + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

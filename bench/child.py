"""One measured job in a process of its own: ``python -m bench.child '<job as JSON>'``.

A job is a ``sync`` (``inventory.sync.run_sync`` against the emulator's URL), a ``baseline``
(``bench.baseline``: fetch, parse and load plain tables) or a ``fetch`` (the baseline without a
database). All three run on settings built by ``inventory.config.settings_from`` from the job:
``endpoint``, ``partner_id``, ``db_url`` and, in ``settings``, any more keys as a config file
has them (``{"api": {"concurrency": 8}, "sync": {"section_types": [...]}}``): every experiment
knob is a setting. The figures come back as the last stdout line, prefixed with
``BENCH-RESULT``: wall time, phase times (from ``on_progress`` phase transitions), the counts,
CPU time and this process's peak RSS (``VmHWM``), which is the job's alone because the
emulator runs elsewhere.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench.procs import RESULT_PREFIX

PHASES = ("customers", "devices", "merging", "done")
NO_DATABASE = "sqlite:///unused.db"  # a fetch job opens none; settings still want a URL


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def job_settings(job: dict[str, Any]) -> Any:
    """The job's ``Settings``: defaults, then the job's endpoint and database, then its
    ``settings`` (quota off and anonymous credentials unless it says otherwise)."""
    from inventory.config import settings_from

    values: dict[str, dict[str, Any]] = {
        "partner": {"id": job["partner_id"]},
        "auth": {"credentials": "anonymous"},
        "api": {"endpoint": job["endpoint"], "quota_per_100s": 0},
        "database": {"url": job.get("db_url") or NO_DATABASE},
    }
    for section, keys in (job.get("settings") or {}).items():
        if section == "partners":  # [[partners]] tables replace the [partner] shorthand
            values.pop("partner", None)
            values["partners"] = keys
        else:
            values.setdefault(section, {}).update(keys)
    return settings_from(values)


def run_sync_job(job: dict[str, Any], settings: Any) -> dict[str, Any]:
    """Run one sync and return its figures."""
    from inventory import db
    from inventory.store import make_engine
    from inventory.sync import Progress, run_sync

    if job.get("init"):
        engine = make_engine(settings.database.url)
        db.upgrade(engine)
        engine.dispose()
    marks: dict[str, float] = {}

    def on_progress(progress: Progress) -> None:
        marks.setdefault(str(progress.phase), time.perf_counter())

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
    return {
        "kind": "sync",
        "wall_s": wall,
        "phases": phase_times(marks, started + wall),
        "status": str(result.status),
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


def phase_times(marks: dict[str, float], ended: float) -> dict[str, float | None]:
    """Seconds from each phase's start to the next phase's start (the last: to ``ended``)."""
    times = [marks.get(p) for p in PHASES]
    phases: dict[str, float | None] = {}
    for n, phase in enumerate(PHASES[:-1]):
        begin = times[n]
        end = next((t for t in times[n + 1 :] if t is not None), ended)
        phases[phase] = None if begin is None else end - begin
    return phases


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
    settings = job_settings(job)
    if job["kind"] == "sync":
        out = run_sync_job(job, settings)
    elif job["kind"] in ("baseline", "fetch"):
        from bench.baseline import run_baseline

        out = run_baseline(settings, load=job["kind"] == "baseline")
    else:
        raise SystemExit(f"unknown job kind {job['kind']!r}")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu_s"] = usage.ru_utime + usage.ru_stime
    out["peak_rss_mb"] = peak_rss_mb()
    print(RESULT_PREFIX + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The command line of ``python -m bench``.

    .venv/bin/python -m bench                      # every scenario, SQLite and PostgreSQL
    .venv/bin/python -m bench --quick              # a smoke run on small fleets, SQLite (~1 min)
    .venv/bin/python -m bench --scenarios 1,6 --db sqlite
    .venv/bin/python -m bench --scenarios 7 --matrix-large   # the matrix, with its 1M-device rows
    .venv/bin/python -m bench --scenarios 7 --matrix-configs zero-touch,both
    .venv/bin/python -m bench --profile            # pyinstrument profile of scenario 1's sync

A full run writes ``bench/RESULTS.md``; ``--quick`` writes nothing unless ``--out`` is given.
PostgreSQL runs use scratch databases (``zt_bench_*``) created on the server of ``--pg-url``
(default: ``$INVENTORY_TEST_POSTGRES_URL``, else the local ``test`` database) and dropped after.
Exit status: 0 when every target held, 1 when one was missed or a scenario failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from bench.machine import machine_facts, workdir
from bench.outcome import QUICK, Context, Outcome, Sizes
from bench.prose import NOTES
from bench.report import VERDICT, outcome_markdown, results_markdown
from bench.scenarios import SCENARIOS, profile_throughput
from bench.scenarios.matrix import KEYS as MATRIX_KEYS
from bench.scratch import DEFAULT_PG_URL

HERE = Path(__file__).resolve().parent


def _pg_reachable(url: str) -> str | None:
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure means: skip PostgreSQL, and say why
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="zt-inventory benchmarks against the emulator"
    )
    parser.add_argument("--quick", action="store_true", help="small fleets: a smoke run")
    parser.add_argument(
        "--scenarios", default=None, help="comma-separated scenario numbers (default: all)"
    )
    parser.add_argument(
        "--db",
        default=None,
        help="sqlite, postgresql or both (default: both; with --quick, sqlite)",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("INVENTORY_TEST_POSTGRES_URL") or DEFAULT_PG_URL,
        help="PostgreSQL server URL; scratch databases are created on its server",
    )
    parser.add_argument("--repeat", type=int, default=None, help="scenario 1 runs of each kind")
    parser.add_argument("--out", default=None, help="where to write the results markdown")
    parser.add_argument(
        "--matrix-configs",
        default=None,
        help="scenario 7's configurations, comma-separated (default: all of "
        f"{', '.join(MATRIX_KEYS)})",
    )
    parser.add_argument(
        "--matrix-large",
        action="store_true",
        help="scenario 7 also runs each configuration at 1,000,000 devices (long: see README)",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const=str(HERE / "profile.txt"),
        default=None,
        metavar="PATH",
        help="write a pyinstrument profile of scenario 1's sync (main thread) to PATH "
        "(default bench/profile.txt; a .html PATH gets the HTML page); alone, it runs only "
        "the profile",
    )
    args = parser.parse_args(argv)

    sizes: Sizes = QUICK if args.quick else Sizes()
    if args.repeat:
        sizes = sizes.with_repeat(args.repeat)
    configs = tuple(c.strip() for c in (args.matrix_configs or "").split(",") if c.strip())
    if any(c not in MATRIX_KEYS for c in configs):
        parser.error(f"--matrix-configs takes {', '.join(MATRIX_KEYS)}")
    chosen = (
        [s.strip() for s in args.scenarios.split(",") if s.strip()]
        if args.scenarios
        else ([] if args.profile else list(SCENARIOS))
    )
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    db_kinds = args.db or ("sqlite" if args.quick else "sqlite,postgresql")
    kinds = [k.strip() for k in db_kinds.split(",") if k.strip()]
    if any(k not in ("sqlite", "postgresql") for k in kinds):
        parser.error("--db takes sqlite, postgresql or both")

    failures: list[str] = []
    notes = list(NOTES)
    if "postgresql" in kinds:
        problem = _pg_reachable(args.pg_url)
        if problem:
            kinds.remove("postgresql")
            failures.append(f"PostgreSQL skipped: {problem}")
            print(f"PostgreSQL skipped: {problem}", file=sys.stderr)

    started = time.perf_counter()
    facts = machine_facts(args.pg_url if "postgresql" in kinds else None)
    print(" | ".join(f"{k}: {v}" for k, v in facts.items()), flush=True)
    scratch = workdir()
    outcomes: list[Outcome] = []
    try:
        for kind in kinds:
            ctx = Context(
                kind=kind,
                pg_url=args.pg_url,
                workdir=scratch,
                sizes=sizes,
                matrix_configs=configs,
                matrix_large=args.matrix_large,
            )
            try:
                for number in chosen:
                    print(f"scenario {number} on {kind} ...", flush=True)
                    try:
                        outcome = SCENARIOS[number](ctx)
                    except Exception as exc:
                        traceback.print_exc()
                        failures.append(f"scenario {number} on {kind}: {exc}".splitlines()[0])
                        continue
                    outcomes.append(outcome)
                    print(outcome_markdown(outcome), flush=True)
                if args.profile and kind == kinds[0]:
                    target = Path(args.profile).resolve()
                    print(f"profiling scenario 1's sync on {kind} ...", flush=True)
                    result = profile_throughput(ctx, target)
                    print(f"wrote {target} (profiled sync: {result['wall_s']:.1f} s)", flush=True)
            finally:
                ctx.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    elapsed = time.perf_counter() - started
    checks = [c for o in outcomes for c in o.checks]
    missed = [c for c in checks if c.met is False]
    print(f"\n{len(checks)} targets: {len(missed)} missed; {elapsed:.0f} s in all")
    for o in outcomes:
        for c in o.checks:
            print(f"  {o.scenario} [{o.database}] {c.target}: {c.measured} ({VERDICT[c.met]})")
    for failure in failures:
        print(f"  failed: {failure}")

    out = args.out or (None if args.quick or not chosen else str(HERE / "RESULTS.md"))
    if out:
        command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
        notes.append(f"The whole run took {elapsed / 60:.1f} minutes.")
        text = results_markdown(facts, outcomes, notes, failures, command.strip())
        Path(out).write_text(text, encoding="utf-8")
        print(f"wrote {out}")
    return 1 if missed or any(not f.startswith("PostgreSQL skipped") for f in failures) else 0

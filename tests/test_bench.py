"""The benchmarks still run: scenario 7 (the configuration matrix) at its ``--quick`` size on
SQLite, two configurations, in a subprocess. It checks that the figures are produced, never how
fast anything was: timing belongs to ``python -m bench``, not to the suite."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = (
    "| configuration | fleet | run | devices listed | API calls | whole run s | fetch+stage s "
    "| merge s | peak RSS MB | bytes received / device | database bytes / device |"
)
NUMBER = re.compile(r"[0-9][0-9,]*(\.[0-9]+)?")


def run_bench(*args: str, out: Path) -> str:
    """``python -m bench --quick ARGS --db sqlite --out OUT``: its results, once it ran (exit
    1 is a target missed at the quick sizes, not a failure)."""
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", *args, "--db", "sqlite", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode in (0, 1), run.stderr
    assert "failed:" not in run.stdout, run.stdout
    return out.read_text(encoding="utf-8")


def test_the_quick_matrix_produces_its_figures(tmp_path: Path) -> None:
    text = run_bench(
        "--scenarios", "7", "--matrix-configs", "zero-touch,both", out=tmp_path / "results.md"
    )
    lines = text.splitlines()
    start = lines.index(HEADER)
    rows = [line.strip("|").split("|") for line in lines[start + 2 : start + 6]]
    assert [(r[0].strip(), r[2].strip()) for r in rows] == [
        ("ZERO_TOUCH only", "first sync"),
        ("ZERO_TOUCH only", "unchanged re-sync"),
        ("both section types", "first sync"),
        ("both section types", "unchanged re-sync"),
    ]
    for row in rows:
        cells = [c.strip() for c in row[3:]]
        assert all(NUMBER.fullmatch(c) for c in cells), row
        assert int(cells[0].replace(",", "")) > 0  # devices listed
    targets = [line for line in lines if line.startswith("| 7. Configuration matrix | sqlite |")]
    assert len(targets) == 5  # two per configuration, and both section types per device


def test_the_quick_throughput_scenario_runs_its_baselines(tmp_path: Path) -> None:
    """Scenario 1's raw baseline plans and fetches with the product's own functions: a change
    of their signatures must not leave it broken until the next full benchmark."""
    text = run_bench("--scenarios", "1", out=tmp_path / "results.md")
    assert "| raw baseline |" in text
    assert "| zt-inventory sync |" in text


def test_the_quick_partners_scenario_runs_each_partner_alone_then_together(
    tmp_path: Path,
) -> None:
    """Scenario 9 configures ``[[partners]]`` through the bench's child jobs: a change of the
    settings it builds must not leave it broken until the next full benchmark."""
    text = run_bench("--scenarios", "9", out=tmp_path / "results.md")
    rows = [line for line in text.splitlines() if line.startswith("| partner ")]
    assert len(rows) == 2
    together = next(line for line in text.splitlines() if "partners in one run" in line)
    calls = [int(line.split("|")[3]) for line in [*rows, together]]
    assert calls[-1] <= calls[0] + calls[1]

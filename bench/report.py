"""Tables for the terminal and ``RESULTS.md``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bench.outcome import Outcome

VERDICT = {True: "met", False: "MISSED", None: "info"}


def markdown_table(columns: list[str], rows: Iterable[list[Any]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def outcome_markdown(outcome: Outcome) -> str:
    """One scenario on one database: its table, its targets and notes."""
    parts = [f"#### {outcome.database}", "", markdown_table(outcome.columns, outcome.rows), ""]
    for check in outcome.checks:
        parts.append(f"- target: {check.target}: **{check.measured}** ({VERDICT[check.met]})")
    parts.append("")
    return "\n".join(parts)


def summary_rows(outcomes: list[Outcome]) -> list[list[str]]:
    """One row per checked target: scenario, database, target, measured, verdict."""
    return [
        [o.scenario, o.database, c.target, c.measured, VERDICT[c.met]]
        for o in outcomes
        for c in o.checks
    ]


def results_markdown(
    facts: dict[str, str],
    outcomes: list[Outcome],
    notes: list[str],
    failures: list[str],
    command: str,
) -> str:
    """The whole ``RESULTS.md``."""
    parts = [
        "# zt-inventory benchmark results",
        "",
        f"Written by `{command}` on {facts['date']}. Every figure below comes from that one "
        "run: the baselines were measured in it, on the same machine, minutes apart from the "
        "syncs they are compared with (shared machines drift, so only same-run ratios mean "
        "anything).",
        "",
        markdown_table(["fact", "value"], [[k, v] for k, v in facts.items()]),
        "",
        "## Targets",
        "",
        markdown_table(
            ["scenario", "database", "target", "measured", "verdict"], summary_rows(outcomes)
        ),
        "",
    ]
    if failures:
        parts += ["Scenarios that could not run:", ""]
        parts += [f"- {f}" for f in failures]
        parts.append("")
    seen: dict[str, list[Outcome]] = {}
    for o in outcomes:
        seen.setdefault(o.scenario, []).append(o)
    for scenario, group in seen.items():
        parts += [f"## {scenario}", ""]
        for o in group:
            parts.append(outcome_markdown(o))
        scenario_notes = dict.fromkeys(n for o in group for n in o.notes)
        parts += [f"{n}" for n in scenario_notes]
        parts.append("")
    if notes:
        parts += ["## Notes", ""]
        parts += [f"- {n}" for n in notes]
        parts.append("")
    return "\n".join(parts)

"""Staging housekeeping on both databases: emptying the tables, and the planner's statistics."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from inventory import staging


def _coverage(run_id: int, owner: str) -> dict[str, object]:
    return {
        "run_id": run_id,
        "section_type": "SECTION_TYPE_ZERO_TOUCH",
        "owner_kind": "company",
        "owner_key": owner,
        "complete": True,
    }


def _runs(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        sql = "SELECT run_id FROM sync_staging_coverage ORDER BY run_id, owner_key"
        return [r[0] for r in conn.execute(text(sql))]


def test_clearing_a_run_keeps_the_rows_of_other_runs(engine: Engine) -> None:
    staging.stage_coverage(engine, [_coverage(1, "10"), _coverage(1, "11"), _coverage(2, "10")])
    staging.clear(engine, 1)
    assert _runs(engine) == [2]
    staging.clear(engine, 2)  # the run's rows are all there is: emptied whole
    assert _runs(engine) == []
    staging.stage_coverage(engine, [_coverage(3, "10"), _coverage(4, "10")])
    staging.clear(engine)
    assert _runs(engine) == []


def _reltuples(engine: Engine) -> float:
    with engine.connect() as conn:
        sql = "SELECT reltuples FROM pg_class WHERE relname = 'sync_staging_devices'"
        return float(conn.execute(text(sql)).scalar_one())


def _stage_devices(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sync_staging_devices (run_id, device_id, listing_id, change, "
                "content_hash) VALUES (1, :d, 1, 'added', 'h')"
            ),
            [{"d": d} for d in range(n)],
        )


def test_statistics_are_refreshed_only_before_a_large_merge(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stage_devices(engine, 30)
    monkeypatch.setattr(staging, "ANALYZE_MIN_ROWS", 20)
    if engine.dialect.name != "postgresql":
        staging.refresh_statistics(engine, {"added": 30})  # SQLite: nothing to do, no error
        return
    before = _reltuples(engine)
    assert before != 30  # never analyzed since the rows went in
    staging.refresh_statistics(engine, {"added": 10, "same": 20})  # 10 written: below
    assert _reltuples(engine) == before
    staging.refresh_statistics(engine, {"added": 15, "removed": 5})
    assert _reltuples(engine) == 30

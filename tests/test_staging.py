"""Staging housekeeping on both databases: emptying the tables, and the planner's statistics."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from inventory.emulator import Emulator, generate_fleet
from inventory.store.runs import ListingKind, ListingResult
from inventory.sync import merge, staging
from tests.syncutil import settings_for, sync


def _listing(*owners: int) -> ListingResult:
    kind = ListingKind.FIND_BY_OWNER
    return ListingResult(1, kind, "SECTION_TYPE_ZERO_TOUCH", list(owners), [], complete=True)


def _runs(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        sql = "SELECT run_id FROM sync_staging_coverage ORDER BY run_id, owner_key"
        return [r[0] for r in conn.execute(text(sql))]


def test_clearing_a_run_keeps_the_rows_of_other_runs(engine: Engine) -> None:
    staging.stage_coverage(engine, 1, [_listing(10, 11)])
    staging.stage_coverage(engine, 2, [_listing(10)])
    staging.clear(engine, 1)
    assert _runs(engine) == [2]
    staging.clear(engine, 2)  # the run's rows are all there is: emptied whole
    assert _runs(engine) == []
    staging.stage_coverage(engine, 3, [_listing(10)])
    staging.stage_coverage(engine, 4, [_listing(10)])
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


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_statistics_are_refreshed_on_postgresql(engine: Engine) -> None:
    """PostgreSQL only: SQLite plans the merge's joins without statistics, so
    refresh_statistics does nothing there and a SQLite half would have nothing to assert."""
    _stage_devices(engine, 30)
    assert _reltuples(engine) != 30  # never analyzed since the rows went in
    staging.refresh_statistics(engine)
    assert _reltuples(engine) == 30


def test_a_run_refreshes_statistics_before_it_plans_removals(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The removal check joins the fleet to staging: planned on stale statistics it crawled."""
    calls: list[str] = []
    refresh, removals = staging.refresh_statistics, merge.stage_removals

    def spy_refresh(eng: Engine) -> None:
        calls.append("refresh_statistics")
        refresh(eng)

    def spy_removals(*args: Any, **kwargs: Any) -> None:
        calls.append("stage_removals")
        removals(*args, **kwargs)

    monkeypatch.setattr(staging, "refresh_statistics", spy_refresh)
    monkeypatch.setattr(merge, "stage_removals", spy_removals)
    emu = Emulator(generate_fleet(devices=120, customers=6))
    result = sync(emu, settings_for(emu, db_url))
    assert result.status == "succeeded", result.error
    assert calls == ["refresh_statistics", "stage_removals"]


def test_a_first_sync_classifies_without_snapshot_queries(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty devices table stays empty under the writer lock: every device is added."""
    queries: list[int] = []
    snapshot = staging._StagingSql.snapshot

    def spy(self: Any, conn: Any, ids: list[int]) -> Any:
        queries.append(len(ids))
        return snapshot(self, conn, ids)

    monkeypatch.setattr(staging._StagingSql, "snapshot", spy)
    emu = Emulator(generate_fleet(devices=300, customers=8))
    first = sync(emu, settings_for(emu, db_url))
    assert first.status == "succeeded", first.error
    assert first.devices_added > 250
    assert queries == []
    emu.fleet.set_metadata(int(next(emu.fleet.iter_devices())["deviceId"]), {"k": "changed"})
    second = sync(emu, settings_for(emu, db_url))
    assert second.status == "succeeded", second.error
    assert queries, "a re-sync classifies against the snapshot"
    assert (second.devices_added, second.devices_changed) == (0, 1)

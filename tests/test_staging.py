"""Staging on both databases: private temporary tables, one row per device, sightings, and the
planner's statistics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from inventory.emulator import Emulator, generate_fleet
from inventory.store.runs import ListingKind, ListingResult
from inventory.sync import merge, staging
from inventory.transform import to_device_rows
from tests.syncutil import settings_for, staging_tables, sync

ZT = "SECTION_TYPE_ZERO_TOUCH"


@pytest.fixture
def writer(engine: Engine) -> Iterator[Connection]:
    """A writer connection with its staging tables."""
    with engine.connect() as conn:
        staging.create(conn)
        yield conn


def _rows(*device_ids: int) -> list[Any]:
    return [to_device_rows({"deviceId": str(d), "claims": []}, 1) for d in device_ids]


def _all(conn: Connection, sql: str) -> list[tuple[Any, ...]]:
    with conn.begin():
        return [tuple(r) for r in conn.execute(text(sql))]


def test_staging_tables_are_private_to_the_writer_and_go_with_it(engine: Engine) -> None:
    with engine.connect() as conn:
        staging.create(conn)
        stager = staging.Stager(conn)
        stager.add_page(1, _rows(10, 11))
        stager.flush()
        assert _all(conn, "SELECT device_id FROM sync_staging_devices ORDER BY 1") == [
            (10,),
            (11,),
        ]
        assert staging_tables(engine) == []  # another connection sees none of them
        staging.create(conn)  # a second run on the same connection starts empty
        assert _all(conn, "SELECT COUNT(*) FROM sync_staging_devices") == [(0,)]
        staging.drop(conn)
    assert staging_tables(engine) == []


def test_each_listing_stages_what_it_saw_and_duplicates_are_noted(writer: Connection) -> None:
    stager = staging.Stager(writer, batch_size=2)
    stager.add_page(1, _rows(10, 11))  # flushed: a batch of 2
    stager.add_page(2, _rows(11, 12, 12))  # 11 again (another batch), 12 twice in one listing
    stager.add_page(1, _rows(10))  # 10 again, from the same listing
    stager.flush()
    assert _all(writer, "SELECT device_id, listing_id FROM sync_staging_devices ORDER BY 1, 2") == [
        (10, 1),
        (11, 1),
        (11, 2),
        (12, 2),
    ]
    assert _all(writer, "SELECT device_id FROM sync_staging_duplicates") == [(11,)]
    assert stager.staged == 4
    assert stager.repeated == {1: 1, 2: 1}


def test_the_row_that_counts_is_the_first_complete_listings(writer: Connection) -> None:
    stager = staging.Stager(writer)
    stager.add_page(3, _rows(10, 11, 12))  # listing 3: complete
    stager.add_page(1, _rows(11))  # listing 1: incomplete
    stager.add_page(2, _rows(12, 13))  # listing 2: complete
    stager.add_page(1, _rows(14))
    stager.flush()
    merge.mark_incomplete(writer, [1])
    merge.deduplicate(writer)
    rows = "SELECT device_id, listing_id, change FROM sync_staging_devices ORDER BY 1"
    assert _all(writer, rows) == [
        (10, 3, "added"),
        (11, 3, "added"),  # not the incomplete listing 1's
        (12, 2, "added"),  # the lowest complete one's
        (13, 2, "added"),
        (14, 1, "incomplete"),  # only an incomplete listing saw it
    ]


def _listing(*owners: int) -> ListingResult:
    kind = ListingKind.FIND_BY_OWNER
    return ListingResult(1, kind, ZT, list(owners), ["C0ws"], complete=True)


def test_coverage_has_one_row_per_owner(writer: Connection) -> None:
    staging.stage_coverage(writer, [_listing(10, 11)])
    assert _all(writer, "SELECT owner_kind, owner_key, complete FROM sync_staging_coverage") == [
        ("company", "10", True),
        ("company", "11", True),
        ("workspace", "C0ws", True),
    ]


def _reltuples(conn: Connection) -> float:
    sql = "SELECT reltuples FROM pg_class WHERE relname = 'sync_staging_devices'"
    with conn.begin():
        return float(conn.execute(text(sql)).scalar_one())


def test_statistics_are_refreshed_on_postgresql(writer: Connection) -> None:
    if writer.dialect.name != "postgresql":
        pytest.skip("SQLite keeps no planner statistics to refresh")
    stager = staging.Stager(writer)
    stager.add_page(1, _rows(*range(30)))
    stager.flush()
    assert _reltuples(writer) != 30  # autovacuum never analyzes temporary tables
    staging.refresh_statistics(writer)
    assert _reltuples(writer) == 30


def test_a_run_refreshes_statistics_before_it_plans_removals(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The removal check joins the fleet to staging: planned on stale statistics it crawled."""
    calls: list[str] = []
    refresh, removals = staging.refresh_statistics, merge.stage_removals

    def spy_refresh(conn: Connection) -> None:
        calls.append("refresh_statistics")
        refresh(conn)

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
    lookup = staging._StagingSql.lookup

    def spy(self: Any, conn: Any, source: tuple[str, str], ids: list[int]) -> Any:
        if source[0] == "devices":
            queries.append(len(ids))
        return lookup(self, conn, source, ids)

    monkeypatch.setattr(staging._StagingSql, "lookup", spy)
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

"""``zt-inventory demo`` end to end: emulator on loopback, OAuth flow, two syncs, answers."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from inventory.cli import main
from inventory.demo import run_demo


def test_demo_runs_end_to_end_in_under_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zt-demo.db").write_text("an old demo database, replaced")
    started = time.monotonic()
    result = CliRunner().invoke(main, ["demo"], catch_exceptions=False)
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert elapsed < 60
    out = result.stdout
    for question in (
        "How many devices and customers does each reseller account have?",
        "Which vendors (sub-resellers) does each account have",
        "How many devices does each customer have?",
        "Which customer owns IMEI",
        "Which devices have vacation mode set",
        "Which devices we shipped (identifiers file) are not registered?",
        "What changed in the second sync (run 2)?",
        "Which devices moved between customers?",
        "What did customer",
    ):
        assert question in out
    assert "SELECT partner_id, company_id, company_name, devices" in out
    assert 'zt-inventory sql --database-url sqlite:///zt-demo.db "SELECT' in out
    assert "FROM v_device_changes" in out
    assert "datasette zt-demo.db --metadata <(zt-inventory datasette-metadata" in out

    conn = sqlite3.connect(tmp_path / "zt-demo.db")
    try:
        statuses = conn.execute("SELECT status FROM sync_runs ORDER BY run_id").fetchall()
        assert statuses == [("succeeded",), ("succeeded",)]
        assert conn.execute("SELECT COUNT(*) FROM devices").fetchone()[0] > 4000
        not_found = conn.execute(
            "SELECT COUNT(*) FROM v_reconciliation WHERE state = 'not_registered'"
        ).fetchone()[0]
        assert not_found == 3
        # two reseller accounts, each synced whole with its own key file, and their vendors
        partners = conn.execute(
            "SELECT partner_id, status FROM sync_run_partners WHERE run_id = 2 ORDER BY 1"
        ).fetchall()
        assert partners == [(1234567, "succeeded"), (1234568, "succeeded")]
        per_partner = conn.execute("SELECT COUNT(DISTINCT partner_id) FROM v_devices").fetchone()[0]
        assert per_partner == 2
        assert conn.execute("SELECT COUNT(DISTINCT partner_id) FROM vendors").fetchone()[0] == 2
        second = conn.execute(
            "SELECT devices_added, devices_changed, devices_removed FROM sync_runs WHERE run_id = 2"
        ).fetchone()
        # 25 moved + 6 sold by a vendor + 20 new metadata; 10 unclaimed + 5 deleted
        assert second == (20, 51, 15)
        vendor_devices = conn.execute("SELECT COUNT(*) FROM v_vendor_devices").fetchone()[0]
        assert vendor_devices == 6
    finally:
        conn.close()

    # the database it leaves is what the closing lines say: query it with the sql command
    answer = CliRunner().invoke(
        main,
        ["sql", "--database-url", "sqlite:///zt-demo.db", "--format", "csv",
         "SELECT COUNT(*) AS n FROM sync_runs"],
    )  # fmt: skip
    assert answer.stdout == "n\n2\n"


def test_demo_on_postgres(postgres_url: str) -> None:
    report = run_demo(postgres_url, devices=600, customers=10, seed=5)
    assert (report.first.status, report.second.status) == ("succeeded", "succeeded")
    assert len(report.answers["unregistered"]) == 3
    changes = dict(report.answers["changes"])
    assert changes == {
        "moved": len(report.mutations.moved) + len(report.mutations.to_vendors),
        "changed": len(report.mutations.relabelled),
        "added": len(report.mutations.added),
        "removed": len(report.mutations.unclaimed) + len(report.mutations.deleted),
    }
    assert {row[0] for row in report.answers["moved"]} <= set(report.mutations.moved)
    [(then, now)] = report.answers["owned_then"]
    assert then - now >= len(report.mutations.moved)
    assert len(report.answers["history"]) == 2
    sold = sum(row[-1] for row in report.answers["vendor_devices"])
    assert sold == len(report.mutations.to_vendors) > 0
    # A second demo into the same (now not empty) PostgreSQL database is refused.
    result = CliRunner().invoke(main, ["demo", "--database-url", postgres_url])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: the demo needs an empty database")

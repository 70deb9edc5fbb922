"""Bad input: one line naming the problem, exit 2, no traceback, database untouched.

Cases across the config file, ``ZT_INVENTORY_*`` variables, command-line options and the
identifiers CSV, each run through the CLI (click's CliRunner, and a few as a real
``python -m inventory`` process) against a synced database of each kind and a served emulator.
After each: exit status 2, exactly one ``Error:`` line (click's own "Usage:"/"Try" lines aside),
no traceback, not one row of any table changed, and not one request sent to the API.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from inventory.cli import main
from inventory.emulator import Emulator, generate_fleet, serve
from inventory.store import make_engine
from tests.helpers.reliability import REPO, dump_all, fresh_database
from tests.syncutil import FakeSleep, settings_for, sync

PARTNER = 7_000_000_061


@dataclass
class Target:
    url: str
    emu: Emulator
    endpoint: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """A synced database of each kind and the emulator it was synced from, served."""
    with fresh_database(request.param, tmp_path_factory.mktemp("input")) as url:
        emu = Emulator(generate_fleet(devices=200, customers=6, seed=61, partner_id=PARTNER))
        assert sync(emu, settings_for(emu, url), sleep=FakeSleep()).ok
        with serve(emu, host="127.0.0.1", port=0) as server:
            yield Target(url, emu, server.url)


def toml(sections: dict[str, dict[str, Any]]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return str(v)

    lines = []
    for name, body in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {value(v)}" for k, v in body.items() if v is not None]
    return "\n".join(lines) + "\n"


def base_config(target: Target, **changes: dict[str, Any]) -> str:
    sections: dict[str, dict[str, Any]] = {
        "partner": {"id": str(PARTNER)},
        "auth": {"credentials": "anonymous"},
        "api": {"endpoint": target.endpoint, "quota_per_100s": 0},
        "database": {"url": target.url},
    }
    for name, body in changes.items():
        sections.setdefault(name, {}).update(body)
    return toml(sections)


SYNC = ["sync", "--config", "zt.toml"]
WITH_CSV = [*SYNC, "--identifiers", "ids.csv"]


@dataclass
class Case:
    says: str  # a word the error line must contain (the problem's name)
    argv: list[str] = field(default_factory=lambda: list(SYNC))
    config: dict[str, dict[str, Any]] | str | None = None  # changes, or the whole text
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str | bytes] = field(default_factory=dict)
    bug: str | None = None


CASES: dict[str, Case] = {
    # --- the config file
    "config-file-missing": Case("does not exist", ["sync", "--config", "nope.toml"]),
    "config-not-toml": Case("not valid TOML", config="[partner\nid = 1\n"),
    "config-unknown-section": Case("[partnr]", config={"partnr": {"id": "1"}}),
    "config-unknown-key": Case("page_sise", config={"api": {"page_sise": 10}}),
    "config-section-not-a-table": Case("partner", config='partner = "1234"\n'),
    "partner-id-not-a-number": Case("partner.id", config={"partner": {"id": "abc"}}),
    "partner-id-zero": Case("partner.id", config={"partner": {"id": "0"}}),
    "partner-id-missing": Case("partner.id", config={"partner": {"id": None}}),
    "page-size-too-big": Case("api.page_size", config={"api": {"page_size": 500}}),
    "concurrency-zero": Case("api.concurrency", config={"api": {"concurrency": 0}}),
    "timeout-not-a-number": Case("api.timeout_s", config={"api": {"timeout_s": "fast"}}),
    "max-retries-negative": Case("api.max_retries", config={"api": {"max_retries": -1}}),
    "endpoint-not-http": Case(
        "api.endpoint",
        config={"api": {"endpoint": "ftp://example.com"}, "auth": {"credentials": "adc"}},
    ),
    "endpoint-not-http-anonymous": Case(
        "api.endpoint",
        config={"api": {"endpoint": "ftp://example.com"}},
    ),
    "database-url-mysql": Case("database.url", config={"database": {"url": "mysql://u@h/db"}}),
    "section-type-unknown": Case(
        "sync.section_types", config={"sync": {"section_types": ["SECTION_TYPE_FOO"]}}
    ),
    "customers-not-ids": Case("sync.customers", config={"sync": {"customers": ["abc"]}}),
    "removed-fraction-above-one": Case(
        "max_removed_fraction", config={"sync": {"max_removed_fraction": 1.5}}
    ),
    "cron-not-cron": Case("schedule.cron", config={"schedule": {"cron": "every hour"}}),
    "cron-and-interval": Case(
        "interval_minutes", config={"schedule": {"cron": "0 * * * *", "interval_minutes": 5}}
    ),
    "anonymous-at-google": Case(
        "anonymous",
        config={"api": {"endpoint": "https://androiddeviceprovisioning.googleapis.com"}},
    ),
    "key-file-missing": Case("key.json", config={"auth": {"credentials": "key.json"}}),
    "key-file-not-json": Case(
        "not readable JSON",
        config={"auth": {"credentials": "key.json"}},
        files={"key.json": "this is not json"},
    ),
    "key-file-not-a-service-account": Case(
        "service_account",
        config={"auth": {"credentials": "key.json"}},
        files={"key.json": '{"type": "authorized_user", "client_id": "x"}'},
    ),
    "identifiers-file-missing-in-config": Case(
        "identifiers_file", config={"sync": {"identifiers_file": "nope.csv"}}
    ),
    # --- environment variables
    "env-bad-value": Case("api.page_size", env={"ZT_INVENTORY_API_PAGE_SIZE": "0"}),
    "env-unknown-name": Case("ZT_INVENTORY_API_PAGESIZE", env={"ZT_INVENTORY_API_PAGESIZE": "9"}),
    "env-bad-partner": Case("partner.id", env={"ZT_INVENTORY_PARTNER_ID": "12ab"}),
    # --- command-line options
    "option-customer-not-a-number": Case("--customer", [*SYNC, "--customer", "abc"]),
    "option-customer-zero": Case("--customer", [*SYNC, "--customer", "0"]),
    "option-unknown": Case("--bogus", [*SYNC, "--bogus"]),
    "command-unknown": Case("synk", ["synk"]),
    "extra-argument": Case("extra", [*SYNC, "extra"]),
    "status-limit-zero": Case("--limit", ["status", "--config", "zt.toml", "--limit", "0"]),
    "sql-format-unknown": Case(
        "--format", ["sql", "--config", "zt.toml", "--format", "xml", "SELECT 1"]
    ),
    "sql-empty-statement": Case("STATEMENT", ["sql", "--config", "zt.toml", "   "]),
    "database-url-garbage": Case("database.url", [*SYNC, "--database-url", "not a url"]),
    "identifiers-option-missing-file": Case("nope.csv", [*SYNC, "--identifiers", "nope.csv"]),
    # --- the identifiers CSV: a file that cannot be used at all (a bad row is the row's
    # problem: tests/test_reconcile.py)
    "csv-unknown-column": Case(
        "colour", WITH_CSV, files={"ids.csv": "imei,colour\n490154203237518,red\n"}
    ),
    "csv-no-header": Case("header", WITH_CSV, files={"ids.csv": "490154203237518\n"}),
    "csv-column-twice": Case("twice", WITH_CSV, files={"ids.csv": "imei,imei\n1,2\n"}),
    "csv-header-not-utf8": Case(
        "UTF-8", WITH_CSV, files={"ids.csv": b"imei,mod\xe8le\n490154203237518,x\n"}
    ),
    "csv-header-only-extra-columns": Case(
        "header", WITH_CSV, files={"ids.csv": "order_number,expected_company_id\nSO-1,1\n"}
    ),
    "csv-is-a-directory": Case("is a directory", [*SYNC, "--identifiers", "."]),
    "reconcile-missing-file": Case("nope.csv", ["reconcile", "--config", "zt.toml", "nope.csv"]),
    "reconcile-no-header": Case(
        "header",
        ["reconcile", "--config", "zt.toml", "ids.csv"],
        files={"ids.csv": "490154203237518\n"},
    ),
    "reconcile-format-unknown": Case(
        "--format",
        ["reconcile", "--config", "zt.toml", "--format", "xml", "ids.csv"],
        files={"ids.csv": "imei\n490154203237518\n"},
    ),
}


def _params() -> list[Any]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=case.bug))
        if case.bug
        else name
        for name, case in CASES.items()
    ]


def _prepare(case: Case, target: Target, directory: Path) -> None:
    if isinstance(case.config, str):
        text = case.config
    else:
        text = base_config(target, **(case.config or {}))
    (directory / "zt.toml").write_text(text, encoding="utf-8")
    for name, content in case.files.items():
        path = directory / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def _check_output(output: str, says: str) -> None:
    lines = output.splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, output
    assert says.lower() in errors[0].lower(), output
    assert "Traceback" not in output
    others = [
        line for line in lines if line and not line.startswith(("Error: ", "Usage: ", "Try '"))
    ]
    assert others == [], output


def _dump(target: Target) -> dict[str, Any]:
    engine = make_engine(target.url)
    try:
        return dump_all(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("name", _params())
def test_bad_input_is_one_line_and_exit_2(
    target: Target, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[name]
    monkeypatch.chdir(tmp_path)
    _prepare(case, target, tmp_path)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    requests = sum(target.emu.counts().values())
    before = _dump(target)
    result = CliRunner().invoke(main, case.argv)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert _dump(target) == before, "the database must be untouched"
    assert result.exit_code == 2, result.output
    _check_output(result.output, case.says)
    assert sum(target.emu.counts().values()) == requests, "no API call may be made"


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "config-unknown-key",
        "option-customer-not-a-number",
        "csv-unknown-column",
        "sql-empty-statement",
    ],
)
def test_bad_input_in_a_real_process(target: Target, name: str, tmp_path: Path) -> None:
    """The console entry point: exit status 2 and one line on stderr, nothing on stdout."""
    case = CASES[name]
    _prepare(case, target, tmp_path)
    before = _dump(target)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZT_INVENTORY_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "inventory", *case.argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    _check_output(proc.stderr, case.says)
    assert _dump(target) == before


def test_there_are_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20
    kinds = {name.split("-")[0] for name in CASES}
    assert {"config", "env", "option", "csv"} <= kinds

"""The operator's view of the CLI: dry-run previews, exit codes, the database each command used,
and the ``check`` command, asserted as printed (see ``test_cli`` for the helpers)."""

# ruff: noqa: F811 - pytest fixtures imported from test_cli are parameters by name

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from rich.console import Console

from inventory import cli, db
from inventory.emulator import Behaviour, Emulator, LoopbackServer
from tests.test_cli import (  # noqa: F401 - fixtures used by name
    _workdir,
    count,
    emulator,
    lines,
    normalised,
    requests_served,
    rule,
    run,
    synced_config,
    write_config,
    zero_touch_ids,
)

# --- sync --dry-run ------------------------------------------------------------------------


def _change_the_fleet(emu: Emulator) -> tuple[list[int], int]:
    """Remove three devices and move one to another customer; (removed ids, moved id)."""
    ids = sorted(zero_touch_ids(emu))
    removed, moved = ids[:3], ids[3]
    companies = sorted(int(c["companyId"]) for c in emu.iter_customers())
    owner = _owner(emu, moved)
    emu.move_device(moved, next(c for c in companies if c != owner))
    for device_id in removed:
        emu.remove_device(device_id)
    return removed, moved


def _identifiers(emu: Emulator, device_id: int) -> tuple[str, str]:
    device = next(d for d in emu.iter_devices() if int(d["deviceId"]) == device_id)
    ident = device["deviceIdentifier"]
    return ident.get("imei", ""), ident.get("serialNumber", "")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_dry_run_on_a_terminal_shows_its_first_changes(
    synced_config: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    emulator: tuple[Emulator, LoopbackServer],
) -> None:
    emu = emulator[0]
    assert run("sync").exit_code == 0
    first_removed = sorted(zero_touch_ids(emu))[0]  # as it was, before it goes
    gone = (*_identifiers(emu, first_removed), str(_owner(emu, first_removed)))
    removed, moved = _change_the_fleet(emu)
    assert removed[0] == first_removed
    # the plan of a re-sync follows the snapshot: its listings, as a dry run makes them
    listings = len(json.loads(run("sync", "--dry-run", "--json").stdout)["listings"])
    before = requests_served(emu)
    monkeypatch.setattr(cli.app, "is_terminal", lambda _stream: True)
    result = run("sync", "--dry-run", "--preview", "2")
    assert result.exit_code == 0, result.output
    n, requests = len(zero_touch_ids(emu)), requests_served(emu) - before
    imei, serial = _identifiers(emu, moved)
    owner = str(_owner(emu, moved))
    header = ("change", "device_id", "imei", "serial_number", "owner_company_id")
    shown = [
        ("changed", str(moved), imei, serial, owner),
        ("removed", str(removed[0]), *gone),  # as the snapshot has it
    ]
    cols = [max(len(v) for v in column) + 2 for column in zip(header, *shown, strict=True)]

    def row(values: tuple[str, ...], bar: str) -> str:
        right = (False, True, False, False, True)
        cells = [
            v.rjust(w - 2) if r else v.ljust(w - 2)
            for v, w, r in zip(values, cols, right, strict=True)
        ]
        return bar + bar.join(f" {c} " for c in cells) + bar

    widths = [25, 8]  # as wide as the title, which never wraps
    assert normalised(result.stdout) == lines(
        "Dry run: succeeded (nothing written)",
        rule(widths, "┌", "┬", "┐", "─"),
        "│ duration                │  #.# s │",
        "│ customers               │      8 │",
        f"│ devices seen            │ {n:>6} │",
        "│ would be added          │      0 │",
        "│ would be changed        │      1 │",
        "│ would be removed        │      3 │",
        "│ would be reappeared     │      0 │",
        f"│ listings complete       │ {f'{listings}/{listings}':>6} │",
        f"│ API requests            │ {requests:>6} │",
        "│ retries                 │      0 │",
        rule(widths, "└", "┴", "┘", "─"),
        "First 2 of 4 changes".ljust(sum(cols) + len(cols) + 1),
        rule(cols, "┏", "┳", "┓", "━"),
        row(header, "┃"),
        rule(cols, "┡", "╇", "┩", "━"),
        *(row(values, "│") for values in shown),
        rule(cols, "└", "┴", "┘", "─"),
        "… and 2 more (2 removed); `--preview N` shows more",
    )
    # the same selection in JSON, which says that it is capped
    data = json.loads(run("sync", "--dry-run", "--preview", "2", "--json").stdout)
    assert [(p["change"], p["device_id"]) for p in data["preview"]] == [
        ("changed", moved),
        ("removed", removed[0]),
    ]
    assert (data["preview_limit"], data["preview_capped"]) == (2, True)
    everything = json.loads(run("sync", "--dry-run", "--json").stdout)
    assert (everything["preview_limit"], everything["preview_capped"]) == (20, False)
    assert len(everything["preview"]) == 4


def _owner(emu: Emulator, device_id: int) -> int:
    device = next(d for d in emu.iter_devices() if int(d["deviceId"]) == device_id)
    return next(int(c["ownerCompanyId"]) for c in device["claims"] if c.get("ownerCompanyId"))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_dry_run_with_nothing_to_change_says_so(synced_config: Path) -> None:
    assert run("sync").exit_code == 0
    result = run("sync", "--dry-run")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1:] == ["No device would change."]


def test_preview_needs_a_dry_run() -> None:
    result = run("sync", "--preview", "5")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: --preview shows what a --dry-run would change; add --dry-run"
    )


# --- check ---------------------------------------------------------------------------------


def test_check_prints_a_line_per_check(
    tmp_path: Path, emulator: tuple[Emulator, LoopbackServer]
) -> None:
    emu, server = emulator
    write_config(tmp_path / "zt-inventory.toml", server.url, "sqlite:///inv.db")
    result = run("check")
    assert result.exit_code == 0, result.output
    assert result.stdout == lines(
        f"Checking partner 1234567 at {server.url} (SECTION_TYPE_ZERO_TOUCH):",
        "ok      token and scope: auth.credentials = anonymous: no token; customers.list "
        "accepted the call",
        "ok      partner id: customers.list answered for partner 1234567 (totalSize 8)",
        "ok      customers.list page size: asked for 1000, 8 came back, no next page",
        "ok      packing company ids: findByOwner naming 3 companies: totalSize 85 = 39 + 26 + "
        "20, each alone",
        "skipped packing Workspace ids: fewer than two Workspace ids with devices among the "
        "first 10 probed",
        "ok      company and Workspace ids together: the union, 39 devices: company "
        "9007199261770989 alone lists 39, Workspace account C0p36gl0r alone 11, 11 in both; "
        "the sync never names both in one request",
        "ok      ids per request: findByOwner naming 100 company ids was accepted; the sync "
        "names at most api.max_ids_per_request = 100 in one request",
        "ok      page tokens: 2 pages of company 1200009988 (limit 10) read twice: the same 20 "
        "devices in the same order",
        f"8 checks in {requests_served(emu)} API requests: 7 ok, 0 failed, 1 skipped",
    )
    assert result.stderr == ""
    assert not (tmp_path / "inv.db").exists()  # the check writes nothing


def test_check_exits_1_when_a_check_fails(
    tmp_path: Path, emulator: tuple[Emulator, LoopbackServer]
) -> None:
    emu, server = emulator
    emu.behaviour = Behaviour(max_ids_per_request=5)
    write_config(tmp_path / "zt-inventory.toml", server.url, "sqlite:///inv.db")
    result = run("check")
    assert result.exit_code == 1
    [failed] = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert failed.startswith("FAILED  ids per request: findByOwner naming 100 company ids was ")
    assert failed.endswith(
        "; the most accepted is 5, and the sync names at most api.max_ids_per_request = 100 in "
        "one request: set it to 5"
    )
    assert result.stdout.splitlines()[-1].endswith(": 6 ok, 1 failed, 1 skipped")
    assert result.stderr == "Error: 1 of 8 checks failed: ids per request\n"


def test_check_exits_2_for_bad_configuration(tmp_path: Path) -> None:
    (tmp_path / "zt-inventory.toml").write_text(
        '[auth]\ncredentials = "missing.json"\n', encoding="utf-8"
    )
    result = run("check")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        'Error: partner.id is not set; expected your reseller partner id, e.g. id = "1234567" '
        "under [partner] (or ZT_INVENTORY_PARTNER_ID), or a [[partners]] table for each "
        "reseller account",
        "Error: auth.credentials: key file missing.json does not exist; "
        'expected a service-account key file path, "adc" or "anonymous"',
    ]


# --- paths and where a value came from -------------------------------------------------------


@pytest.mark.parametrize("relative", [False, True])
def test_a_relative_sqlite_path_is_the_config_files_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relative: bool
) -> None:
    """SPEC "Paths": ``url = "sqlite:///bad.db"`` in /elsewhere/base.toml is /elsewhere/bad.db
    from any folder, and init and status say which file they used."""
    elsewhere, here = tmp_path / "elsewhere", tmp_path / "here"
    elsewhere.mkdir()
    here.mkdir()
    config = elsewhere / "base.toml"
    config.write_text('[database]\nurl = "sqlite:///bad.db"\n', encoding="utf-8")
    monkeypatch.chdir(here)
    option = ["--config", "../elsewhere/base.toml" if relative else str(config)]
    database = (elsewhere / "bad.db").resolve()
    missing = run("status", *option)
    assert (missing.exit_code, missing.stderr) == (
        2,
        f"Error: database file {database} does not exist; run `zt-inventory init` first (or "
        "pass --database-url)\n",
    )
    init = run("init", *option)
    assert init.exit_code == 0, init.output
    assert init.stdout == (
        f"Created the zt-inventory schema (revision {db.head_revision()}) in "
        f"sqlite:///{database}.\n"
    )
    status = run("status", *option)
    assert status.stdout == lines(
        f"Database: sqlite:///{database}", "No sync has run yet; run `zt-inventory sync`."
    )
    assert json.loads(run("status", "--json", *option).stdout)["database"] == (
        f"sqlite:///{database}"
    )
    assert database.is_file()
    assert list(here.iterdir()) == []  # no second, empty bad.db where the command ran


def test_errors_about_the_database_name_the_variable_that_set_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZT_INVENTORY_DATABASE_URL", "sqlite:///missing.db")
    result = run("status")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: database file {tmp_path.resolve() / 'missing.db'} does not exist; run "
        "`zt-inventory init` first (or pass --database-url); database.url is set by "
        "ZT_INVENTORY_DATABASE_URL\n"
    )
    # the option names itself: no variable to name
    result = run("status", "--database-url", "sqlite:///missing.db")
    assert result.stderr.endswith("first (or pass --database-url)\n")


@pytest.mark.parametrize("command", ["check", "sync"])
def test_sync_and_check_name_the_variable_of_an_unusable_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    (tmp_path / "key.json").write_text("not json", encoding="utf-8")
    monkeypatch.setenv("ZT_INVENTORY_PARTNER_ID", "1234567")
    monkeypatch.setenv("ZT_INVENTORY_AUTH_CREDENTIALS", "key.json")
    monkeypatch.setenv("ZT_INVENTORY_DATABASE_URL", f"sqlite:///{tmp_path / 'inv.db'}")
    result = run(command)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: ZT_INVENTORY_AUTH_CREDENTIALS (auth.credentials): service-account key file "
        "key.json is not readable JSON; download a new JSON key for the service account\n"
    )


def test_sync_names_the_variable_of_an_unusable_identifiers_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ids.csv").write_text("colour\nblue\n", encoding="utf-8")
    monkeypatch.setenv("ZT_INVENTORY_PARTNER_ID", "1234567")
    monkeypatch.setenv("ZT_INVENTORY_AUTH_CREDENTIALS", "anonymous")
    monkeypatch.setenv("ZT_INVENTORY_API_ENDPOINT", "http://127.0.0.1:1")
    monkeypatch.setenv("ZT_INVENTORY_SYNC_IDENTIFIERS_FILE", "ids.csv")
    result = run("sync")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: ZT_INVENTORY_SYNC_IDENTIFIERS_FILE (sync.identifiers_file): ids.csv:1: "
    ), result.stderr


def test_sync_names_the_variables_of_missing_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZT_INVENTORY_PARTNER_ID", "1234567")
    monkeypatch.setenv("ZT_INVENTORY_AUTH_CREDENTIALS", "missing.json")
    monkeypatch.setenv("ZT_INVENTORY_SYNC_IDENTIFIERS_FILE", "missing.csv")
    result = run("sync")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: partner 1234567: ZT_INVENTORY_AUTH_CREDENTIALS (auth.credentials): key file "
        'missing.json does not exist; expected a service-account key file path, "adc" or '
        '"anonymous"',
        "Error: ZT_INVENTORY_SYNC_IDENTIFIERS_FILE (sync.identifiers_file): missing.csv does "
        "not exist; expected a CSV file path",
    ]


# --- log lines on a terminal -----------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_on_a_terminal_logs_print_through_the_progress_bars_console(
    synced_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line another console writes to the terminal is erased by the bars' next refresh."""
    seen: list[tuple[object, object]] = []
    live_progress = cli.sync.LiveProgress

    def spy(console: Console) -> object:
        [handler] = [h for h in logging.getLogger("inventory").handlers if hasattr(h, "console")]
        seen.append((console, handler.console))
        return live_progress(console)

    monkeypatch.setattr(cli.app, "is_terminal", lambda _stream: True)
    monkeypatch.setattr(cli.sync, "LiveProgress", spy)
    assert run("sync").exit_code == 0
    [(bars, logs)] = seen
    assert bars is logs

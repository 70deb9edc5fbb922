"""``zt-inventory emulator`` through click's runner: its banner, its behaviour and partner
options, and the errors it gives (a port in use, a --database-url it has no use for)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result

import inventory.emulator
from inventory.cli import main
from inventory.emulator import Behaviour, LoopbackServer, coverage, generate_fleet

REFUSED = (
    "Error: --database-url does not apply to the emulator: it keeps no database; pass it to "
    "init, sync, status or sql instead\n"
)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, prog_name="zt-inventory")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[LoopbackServer]:
    """Make ``zt-inventory emulator`` stop as soon as it has printed its banner."""
    real: Callable[..., None] = inventory.emulator.run_server_forever
    servers: list[LoopbackServer] = []

    def once(**kwargs: Any) -> None:
        ready, stop = kwargs["ready"], kwargs["stop"]

        def ready_then_stop(server: LoopbackServer) -> None:
            servers.append(server)
            ready(server)
            stop.set()

        real(**{**kwargs, "ready": ready_then_stop})

    monkeypatch.setattr(inventory.emulator, "run_server_forever", once)
    return servers


@pytest.mark.parametrize(
    "args",
    [
        ["emulator", "--database-url", "sqlite:///emulated.db"],
        ["--database-url", "sqlite:///emulated.db", "emulator", "--port", "0"],
    ],
)
def test_database_url_is_a_usage_error(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Usage: zt-inventory emulator [OPTIONS]\n")
    assert result.stderr.endswith("\n\n" + REFUSED)


def test_a_port_in_use_is_one_error_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("emulator", "--port", str(port), "--devices", "10", "--customers", "2")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: port {port} on 127.0.0.1 is already in use; pick another --port "
        "(0: any free one)\n"
    )


def test_banner_says_what_a_default_sync_lists(served: list[LoopbackServer]) -> None:
    result = run("emulator", "--port", "0", "--devices", "300", "--customers", "6", "--seed", "4")
    assert result.exit_code == 0, result.output
    url = served[0].url
    seen = coverage(generate_fleet(devices=300, customers=6, seed=4))
    assert seen.listed < 300
    assert result.stdout.splitlines() == [
        f"Emulator: 300 devices, 6 customers, partner 1234567, serving on {url} (Ctrl-C stops "
        "it). Point zt-inventory at it with:",
        f"  export ZT_INVENTORY_PARTNER_ID=1234567 ZT_INVENTORY_API_ENDPOINT={url} "
        "ZT_INVENTORY_AUTH_CREDENTIALS=anonymous",
        f"Partner 1234567: 300 devices; a default sync lists {seen.listed}, those claimed in "
        "SECTION_TYPE_ZERO_TOUCH by its customers or their Workspace accounts. Not listed: "
        f"{seen.unlisted} unclaimed or SIM-lock only (findByOwner lists only the section asked "
        f"for), {seen.workspace_only} claimed by Workspace accounts of no customer (name them "
        "in sync.google_workspace_customer_ids).",
    ]
    assert result.stderr == "Emulator stopped.\n"
    assert served[0].emulator.behaviour == Behaviour()


def test_behaviour_and_partner_options(served: list[LoopbackServer]) -> None:
    result = run(
        "emulator", "--port", "0", "--devices", "200", "--customers", "5", "--partners", "3",
        "--partner-id", "500", "--owners", "intersect", "--max-ids-per-request", "40",
        "--page-tokens", "offset", "--total-size", "per_owner", "--churn-every", "9",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    emu = served[0].emulator
    assert emu.partner_ids == (500, 501, 502)
    assert emu.behaviour == Behaviour("intersect", 40, "offset", "per_owner", 9)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        "Emulator: 3 partners (500, 501, 502), 200 devices and 5 customers each, serving on "
    )
    assert lines[2] == "  (or one [[partners]] table per id: 500, 501, 502)"
    assert [line.split(":")[0] for line in lines[3:6]] == [f"Partner {p}" for p in emu.partner_ids]
    assert lines[6] == (
        "Behaviour: owners=intersect, max_ids_per_request=40, page_tokens=offset, "
        "total_size=per_owner, churn_every=9"
    )


def test_fleet_shape_options(served: list[LoopbackServer]) -> None:
    result = run(
        "emulator", "--port", "0", "--devices", "400", "--customers", "8", "--even",
        "--unclaimed-share", "0", "--chrome-share", "0.5", "--workspace-alone-share", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = generate_fleet(
        devices=400,
        customers=8,
        weights=[1.0] * 8,
        unclaimed_share=0.0,
        chrome_share=0.5,
        workspace_alone_share=1.0,
    )
    fleet = served[0].emulator.fleet
    assert list(fleet.iter_devices()) == list(expected.iter_devices())
    assert coverage(fleet) == coverage(expected)
    assert coverage(fleet).workspace_only == 0  # no standalone Workspace account
    skewed = run("emulator", "--port", "0", "--devices", "400", "--customers", "8", "--skew", "2")
    assert skewed.exit_code == 0, skewed.output
    assert list(served[1].emulator.fleet.iter_devices()) == list(
        generate_fleet(devices=400, customers=8, skew=2.0).iter_devices()
    )


def test_help_names_every_behaviour_option() -> None:
    result = run("emulator", "--help")
    assert result.exit_code == 0
    for option in (
        "--owners",
        "--max-ids-per-request",
        "--page-tokens",
        "--total-size",
        "--churn-every",
        "--partners",
        "--skew",
        "--even",
        "--unclaimed-share",
        "--chrome-share",
        "--workspace-alone-share",
        "/_emulator/stats",
        "prettyPrint=false",
    ):
        assert option in result.stdout

"""Reconciliation (SPEC "Identifiers CSV and reconciliation"), on SQLite and PostgreSQL.

``zt-inventory reconcile`` and ``run_reconcile``: every state, devices not in the file, one
findByIdentifier call per row; ``sync`` with malformed rows (stored, skipped, the run partial,
the fleet synced), also under the scheduled service; revision 0007 down and up.
"""

from __future__ import annotations

import csv
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from inventory import db
from inventory.cli import main
from inventory.config import Settings
from inventory.emulator import Emulator, FaultConfig, generate_fleet, serve
from inventory.errors import ConfigError
from inventory.identifiers import COLUMNS, luhn_valid
from inventory.scheduler import SyncService
from inventory.sync.reconcile import Reconciliation, run_reconcile
from tests.syncutil import (
    ZT,
    FakeSleep,
    Tamper,
    assert_equals_fleet,
    expected_devices,
    settings_for,
    snapshot,
    sync,
)

PARTNER = 7_000_000_001
NOT_REGISTERED = "490154203237518"  # Luhn-valid, in no fleet here
REFUSED = "359881234567899"  # Luhn-valid; the API answers 400 for it (see Refuse)
BAD_LUHN = "490154203237519"


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def emu() -> Emulator:
    return Emulator(generate_fleet(devices=600, customers=25, seed=11, partner_id=PARTNER))


@pytest.fixture
def settings(emu: Emulator, engine: Engine, db_url: str) -> Settings:
    """Settings of a database the fleet was synced into once."""
    settings = settings_for(emu, db_url)
    assert sync(emu, settings).ok
    return settings


class Refuse(httpx.BaseTransport):
    """The emulator, but findByIdentifier answers 400 for one IMEI."""

    def __init__(self, inner: httpx.BaseTransport, imei: str) -> None:
        self.inner = inner
        self.imei = imei

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(":findByIdentifier"):
            body = json.loads(request.content)
            if body["deviceIdentifier"].get("imei") == self.imei:
                error = {"code": 400, "message": "Request contains an invalid argument."}
                return httpx.Response(400, json={"error": error}, request=request)
        return self.inner.handle_request(request)


def reconcile(emu: Emulator, settings: Settings, path: Path, **kwargs: Any) -> Reconciliation:
    kwargs.setdefault("transport", emu.transport())
    return run_reconcile(settings, path, sleep=FakeSleep(), **kwargs)


def zt_owner(device: dict[str, Any]) -> int | None:
    for claim in device.get("claims", []):
        if claim.get("sectionType") == ZT and claim.get("ownerCompanyId"):
            return int(claim["ownerCompanyId"])
    return None


def order_of(device: dict[str, Any]) -> str | None:
    entries: dict[str, str] = device.get("deviceMetadata", {}).get("entries", {})
    return entries.get("ordernumber")


def write_csv(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(columns)
        out.writerows([row.get(c, "") for c in columns] for row in rows)
    return path


def lookups_of(engine: Engine, run_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM identifier_lookups WHERE run_id = :r ORDER BY line_number"),
            {"r": run_id},
        ).mappings()
        return [dict(r) for r in rows]


@functools.cache
def _customer_names(seed: int) -> dict[int, str]:
    fleet = generate_fleet(devices=600, customers=25, seed=seed, partner_id=PARTNER)
    return {int(c["companyId"]): c["companyName"] for c in Emulator(fleet).iter_customers()}


class Shipment:
    """A CSV with a row of every state, built from the emulated fleet.

    The order is one customer's: ``order`` holds two of its devices that carry it in their
    metadata; a third device of that order is left out of the file (``not_in_file``).
    """

    def __init__(self, emu: Emulator) -> None:
        devices = [d for d in emu.iter_devices() if "imei" in d["deviceIdentifier"]]
        by_order: dict[str, list[dict[str, Any]]] = {}
        for d in devices:
            if order_of(d) and zt_owner(d):
                by_order.setdefault(order_of(d) or "", []).append(d)
        self.order, members = next((o, m) for o, m in sorted(by_order.items()) if len(m) >= 3)
        self.ok, self.ok_any = members[0], members[1]
        in_file = (self.ok["deviceId"], self.ok_any["deviceId"])
        self.left_out = [  # every other device of the order, whatever its identifiers
            d
            for d in emu.iter_devices()
            if order_of(d) == self.order and d["deviceId"] not in in_file
        ]
        self.customer = zt_owner(self.ok)
        self.wrong = next(d for d in devices if zt_owner(d) not in (None, self.customer))
        self.unclaimed = next(d for d in devices if not d.get("claims"))
        # a Chrome OS device claimed for the customer's Workspace account alone
        workspace = next(
            c["googleWorkspaceAccount"]["customerId"]
            for c in emu.iter_customers()
            if c.get("googleWorkspaceAccount", {}).get("customerId")
        )
        self.workspace_owner = next(
            int(c["companyId"])
            for c in emu.iter_customers()
            if c.get("googleWorkspaceAccount", {}).get("customerId") == workspace
        )
        self.chromebook_id = emu.add_device(
            identifiers={
                "serialNumber": "5CD-RECON-1",
                "manufacturer": "HP",
                "deviceType": "DEVICE_TYPE_CHROME_OS",
            },
            google_workspace_customer_id=workspace,
        )

    def rows(self) -> list[dict[str, Any]]:
        """The file's rows, lines 2 to 10."""
        imei = lambda d: d["deviceIdentifier"]["imei"]  # noqa: E731
        order, expected = self.order, self.customer
        return [
            {"imei": imei(self.ok), "expected_company_id": expected, "order_number": order},
            {"imei": imei(self.ok_any), "order_number": order},
            {"imei": imei(self.wrong), "expected_company_id": expected, "order_number": order},
            {"imei": imei(self.unclaimed), "order_number": order},
            {"imei": NOT_REGISTERED, "order_number": order},
            {"imei": BAD_LUHN, "order_number": order},
            {"imei": REFUSED},
            {"serial_number": "5CD-RECON-1", "manufacturer": "HP",
             "expected_company_id": self.workspace_owner},
            {"serial_number": "SN-NO-MAKER"},
        ]  # fmt: skip


# --- every state ---------------------------------------------------------------------------


def test_every_state(emu: Emulator, settings: Settings, engine: Engine, tmp_path: Path) -> None:
    ship = Shipment(emu)
    path = write_csv(tmp_path / "shipped.csv", ship.rows())
    before = snapshot(engine)
    emu.clear_log()
    found = reconcile(emu, settings, path, transport=Refuse(emu.transport(), REFUSED))

    names = _customer_names(11)
    wrong_owner = zt_owner(ship.wrong)
    assert [
        (r["line_number"], r["state"], r["device_id"], r["company_id"], r["company_name"])
        for r in found.rows
    ] == [
        (2, "ok", int(ship.ok["deviceId"]), ship.customer, names[ship.customer or 0]),
        (3, "ok", int(ship.ok_any["deviceId"]), ship.customer, names[ship.customer or 0]),
        (4, "wrong_customer", int(ship.wrong["deviceId"]), wrong_owner, names[wrong_owner or 0]),
        (5, "unclaimed", int(ship.unclaimed["deviceId"]), None, None),
        (6, "not_registered", None, None, None),
        (7, "error", None, None, None),
        (8, "error", None, None, None),
        (9, "ok", ship.chromebook_id, ship.workspace_owner, names[ship.workspace_owner]),
        (10, "error", None, None, None),
    ]
    errors = {r["line_number"]: r["error"] for r in found.rows if r["error"]}
    assert errors[7] == f"imei '{BAD_LUHN}' fails its check digit (Luhn); is a digit mistyped?"
    assert errors[8].startswith("findByIdentifier: HTTP 400 on ")
    assert "invalid argument" in errors[8]
    assert errors[10] == "serial_number needs manufacturer (serial numbers repeat across makers)"
    # the run: lookups only, one call per well-formed row, nothing else asked or changed
    assert emu.counts() == {"findByIdentifier": 6}  # and the one Refuse answered
    assert found.result.api_requests == 7
    assert (found.result.status, found.result.scope) == ("partial", "identifiers")
    assert not found.all_ok
    after = snapshot(engine)
    assert {k: v for k, v in after.items() if k != "identifier_lookups"} == {
        k: v for k, v in before.items() if k != "identifier_lookups"
    }
    with engine.connect() as conn:
        run = conn.execute(
            text("SELECT status, scope, api_requests, warnings FROM sync_runs WHERE run_id = :r"),
            {"r": found.result.run_id},
        ).one()
        listings = conn.execute(
            text("SELECT kind, complete, error FROM sync_listings WHERE run_id = :r"),
            {"r": found.result.run_id},
        ).all()
    assert (run.status, run.scope, run.api_requests) == ("partial", "identifiers", 7)
    warnings = run.warnings if isinstance(run.warnings, list) else json.loads(run.warnings)
    assert warnings == [
        f"{path}:7: imei '{BAD_LUHN}' fails its check digit (Luhn); is a digit mistyped?; "
        "row skipped",
        f"{path}:10: serial_number needs manufacturer (serial numbers repeat across makers); "
        "row skipped",
    ]
    assert [tuple(x) for x in listings] == [("find_by_identifier", False, "3 row(s) with errors")]
    # the lookups keep what the file said and what the API said
    stored = lookups_of(engine, found.result.run_id or 0)
    assert [(x["expected_company_id"], x["order_number"]) for x in stored[:3]] == [
        (ship.customer, ship.order),
        (None, ship.order),
        (ship.customer, ship.order),
    ]
    assert [x["owner_company_id"] for x in stored[:4]] == [
        ship.customer,
        ship.customer,
        wrong_owner,
        None,
    ]
    assert stored[7]["owner_company_id"] is None  # claimed by the Workspace account alone
    assert stored[7]["google_workspace_customer_id"] is not None
    assert [x["found"] for x in stored] == [True, True, True, True] + [False] * 3 + [True, False]
    # the view says the same as the command
    with engine.connect() as conn:
        view = [dict(r) for r in conn.execute(text("SELECT * FROM v_reconciliation")).mappings()]
    assert [{k: r[k] for k in found.rows[0]} for r in view] == found.rows
    assert {r["run_id"] for r in view} == {found.result.run_id}


def test_not_in_file_lists_the_orders_other_devices(
    emu: Emulator, settings: Settings, tmp_path: Path
) -> None:
    ship = Shipment(emu)
    found = reconcile(emu, settings, write_csv(tmp_path / "shipped.csv", ship.rows()))
    expected = sorted(int(d["deviceId"]) for d in ship.left_out)
    assert expected
    assert [d["device_id"] for d in found.not_in_file] == expected
    assert {d["order_number"] for d in found.not_in_file} == {ship.order}
    assert {d["company_id"] for d in found.not_in_file} == {ship.customer}
    counts = found.by_state()
    assert counts == {
        "ok": 3,
        "wrong_customer": 1,
        "unclaimed": 1,
        "not_registered": 2,
        "error": 2,
        "not_in_file": len(expected),
    }
    assert found.by_order() == {
        "": {
            "ok": 1,
            "wrong_customer": 0,
            "unclaimed": 0,
            "not_registered": 1,  # REFUSED answers as not registered without Refuse
            "error": 1,
            "not_in_file": 0,
        },
        ship.order: {
            "ok": 2,
            "wrong_customer": 1,
            "unclaimed": 1,
            "not_registered": 1,
            "error": 1,
            "not_in_file": len(expected),
        },
    }


def test_a_removed_device_of_the_order_is_not_listed(
    emu: Emulator, settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    ship = Shipment(emu)
    gone = int(ship.left_out[0]["deviceId"])
    emu.remove_device(gone)
    assert sync(emu, settings).ok
    found = reconcile(emu, settings, write_csv(tmp_path / "shipped.csv", ship.rows()))
    assert gone not in {d["device_id"] for d in found.not_in_file}
    assert len(found.not_in_file) == len(ship.left_out) - 1


def test_a_device_registered_after_the_last_sync_has_its_owner(
    emu: Emulator, settings: Settings, tmp_path: Path
) -> None:
    """The lookup's owner answers: the snapshot does not know the device yet."""
    customer = int(next(emu.iter_customers())["companyId"])
    imei = "356938035643809"
    new = emu.add_device(company_id=customer, identifiers={"imei": imei})
    path = write_csv(
        tmp_path / "shipped.csv", [{"imei": imei, "expected_company_id": customer}], COLUMNS
    )
    found = reconcile(emu, settings, path)
    assert [(r["state"], r["device_id"], r["company_id"]) for r in found.rows] == [
        ("ok", new, customer)
    ]
    assert found.all_ok


@pytest.mark.parametrize("content", ["", "imei,order_number\n", "\n\n"])
def test_an_empty_or_header_only_file_has_0_identifiers(
    emu: Emulator, settings: Settings, tmp_path: Path, content: str
) -> None:
    path = tmp_path / "shipped.csv"
    path.write_text(content, encoding="utf-8")
    emu.clear_log()
    found = reconcile(emu, settings, path)
    assert (found.result.status, found.rows, found.not_in_file) == ("succeeded", [], [])
    assert found.all_ok
    assert emu.counts() == {}


def test_a_missing_file_or_bad_header_is_a_config_error(
    emu: Emulator, settings: Settings, tmp_path: Path
) -> None:
    emu.clear_log()
    with pytest.raises(ConfigError, match="does not exist"):
        reconcile(emu, settings, tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("colour\nred\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="header row names none"):
        reconcile(emu, settings, tmp_path / "bad.csv")
    assert emu.counts() == {}


# --- calls ---------------------------------------------------------------------------------


def _imeis(count: int) -> Iterator[str]:
    """Luhn-valid IMEIs under a TAC no emulated model uses."""
    for n in range(count):
        body = f"99{n:012d}"
        yield next(body + d for d in "0123456789" if luhn_valid(body + d))


def test_one_call_per_row_for_many_rows(
    emu: Emulator, settings: Settings, db_url: str, tmp_path: Path
) -> None:
    registered = [d["deviceIdentifier"].get("imei") for d in emu.iter_devices()]
    registered = [i for i in registered if i][:50]
    rows = [{"imei": i} for i in [*registered, *_imeis(10_000 - len(registered))]]
    path = write_csv(tmp_path / "many.csv", rows, ("imei",))
    emu.clear_log()
    emu.faults = FaultConfig(fail_every=97, retry_after_s=0.0)  # some 429s, retried
    found = reconcile(emu, settings_for(emu, db_url, api={"concurrency": 8}), path)
    assert found.result.status == "succeeded"
    assert len(found.rows) == 10_000
    assert found.by_state()["ok"] == len(registered)
    assert found.result.retries > 0
    calls = emu.counts()["findByIdentifier"]
    assert calls == found.result.api_requests == 10_000 + found.result.retries


def test_an_identifier_matching_more_than_a_page_takes_one_call(
    emu: Emulator, settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    device = next(d for d in emu.iter_devices() if d["deviceIdentifier"].get("imei"))
    imei = device["deviceIdentifier"]["imei"]

    def many(request: httpx.Request, body: dict[str, Any]) -> dict[str, Any] | None:
        if request.url.path.endswith(":findByIdentifier"):
            sent = json.loads(request.content)
            assert sent["limit"] == "100"
            return dict(body, totalSize=150, nextPageToken="more")
        return None

    path = write_csv(tmp_path / "shipped.csv", [{"imei": imei}], ("imei",))
    emu.clear_log()
    found = reconcile(emu, settings, path, transport=Tamper(emu.transport(), many))
    assert emu.counts() == {"findByIdentifier": 1}
    assert [(r["state"], r["device_id"]) for r in found.rows] == [("ok", int(device["deviceId"]))]
    assert found.result.warnings == [
        f"{path}:2: the identifier matches 150 devices; one call a row reads the first 1, "
        "and the row keeps the first"
    ]
    (stored,) = lookups_of(engine, found.result.run_id or 0)
    assert stored["matches"] == 150


def test_a_failed_lookup_fails_the_run_and_stores_no_lookup(
    emu: Emulator, settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    device = next(d for d in emu.iter_devices() if d["deviceIdentifier"].get("imei"))
    path = write_csv(tmp_path / "s.csv", [{"imei": device["deviceIdentifier"]["imei"]}], ("imei",))
    emu.faults = FaultConfig(script=[403])
    found = reconcile(emu, settings, path)
    assert found.result.status == "failed"
    assert found.rows == []
    assert not found.all_ok
    assert lookups_of(engine, found.result.run_id or 0) == []
    with engine.connect() as conn:
        status = conn.execute(
            text("SELECT status, scope FROM sync_runs WHERE run_id = :r"),
            {"r": found.result.run_id},
        ).one()
    assert tuple(status) == ("failed", "identifiers")


def test_lookups_keep_within_the_quota(
    emu: Emulator, settings: Settings, db_url: str, tmp_path: Path
) -> None:
    """The client-side limiter paces the lookups: the emulator's own quota never says 429."""
    rows = [{"imei": i} for i in _imeis(12)]
    path = write_csv(tmp_path / "s.csv", rows, ("imei",))
    emu.faults = FaultConfig(quota_requests=5, quota_window_s=0.3)
    paced = settings_for(
        emu, db_url, api={"quota_per_100s": 5, "quota_window_s": 0.3, "concurrency": 4}
    )
    emu.clear_log()
    found = run_reconcile(paced, path, transport=emu.transport())
    assert found.result.status == "succeeded"
    assert (found.result.api_requests, found.result.retries) == (12, 0)
    assert emu.counts() == {"findByIdentifier": 12}


# --- the command ---------------------------------------------------------------------------


@pytest.fixture
def served(emu: Emulator) -> Iterator[str]:
    with serve(emu) as server:
        yield server.url


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write_config(path: Path, endpoint: str, url: str) -> Path:
    path.write_text(
        f'[partner]\nid = "{PARTNER}"\n[auth]\ncredentials = "anonymous"\n'
        f'[api]\nendpoint = "{endpoint}"\nquota_per_100s = 0\n[database]\nurl = "{url}"\n',
        encoding="utf-8",
    )
    return path


def stderr_lines(result: Result) -> list[str]:
    """stderr without the log lines' timestamps."""
    return [re.sub(r"^\S+ (WARNING|ERROR) ", r"\1 ", line) for line in result.stderr.splitlines()]


@pytest.fixture
def small(db_url: str, engine: Engine, tmp_path: Path) -> Iterator[tuple[Emulator, Path]]:
    """A small fleet synced once, served on loopback, and a config pointing at both; two
    devices of order SO-TEST-1 that the file below names, and one it does not."""
    fleet = generate_fleet(devices=40, customers=3, seed=5, partner_id=PARTNER)
    emu = Emulator(fleet, auth="anonymous")
    customers = sorted(int(c["companyId"]) for c in emu.iter_customers())
    order = {"ordernumber": "SO-TEST-1"}
    for imei, owner in (
        ("356938035643809", customers[0]),
        ("356938035643817", customers[0]),
        ("356938035643825", customers[1]),
        ("356938035643833", customers[0]),
    ):
        emu.add_device(
            company_id=owner,
            identifiers={"imei": imei, "manufacturer": "Google", "model": "Pixel 8"},
            metadata=order,
        )
    emu.add_device(identifiers={"imei": "356938035643841"})  # registered, never claimed
    with serve(emu) as server:
        config = write_config(tmp_path / "zt.toml", server.url, db_url)
        assert sync(emu, settings_for(emu, db_url, endpoint=server.url)).ok
        yield emu, config


SHIPPED = (
    "imei,expected_company_id,order_number\n"
    "356938035643809,{a},SO-TEST-1\n"  # ok
    "356938035643817,,SO-TEST-1\n"  # ok: no customer expected
    "356938035643825,{a},SO-TEST-1\n"  # wrong_customer
    "356938035643841,,SO-TEST-2\n"  # unclaimed
    "490154203237518,{a},SO-TEST-2\n"  # not_registered
    "490154203237519,{a},SO-TEST-2\n"  # error: check digit
    "356938035643809,{a}\n"  # error: a cell short
)


def _shipped(emu: Emulator, tmp_path: Path) -> tuple[Path, list[int], dict[str, int]]:
    customers = sorted(int(c["companyId"]) for c in emu.iter_customers())
    path = tmp_path / "shipped.csv"
    path.write_text(SHIPPED.format(a=customers[0]), encoding="utf-8")
    ids = {d["deviceIdentifier"].get("imei", ""): int(d["deviceId"]) for d in emu.iter_devices()}
    return path, customers, ids


def test_the_command_prints_summaries_and_problems(
    small: tuple[Emulator, Path], tmp_path: Path
) -> None:
    emu, config = small
    path, customers, ids = _shipped(emu, tmp_path)
    names = {int(c["companyId"]): c["companyName"] for c in emu.iter_customers()}
    a, b = customers[0], customers[1]
    result = run("reconcile", "--config", str(config), "shipped.csv")
    assert result.exit_code == 1, result.output
    a_name, b_name = names[a], names[b]
    width = max(len(a_name), len(b_name), len("company_name"))
    assert result.stdout == (
        "Reconciled shipped.csv in run 2: 7 identifiers, 5 API requests, 0 retries.\n"
        "\n"
        "By state:\n"
        " state          | rows\n"
        "----------------+------\n"
        " ok             |    2\n"
        " wrong_customer |    1\n"
        " unclaimed      |    1\n"
        " not_registered |    1\n"
        " error          |    2\n"
        " not_in_file    |    1\n"
        "\n"
        "By order:\n"
        " order_number | rows | ok | wrong_customer | unclaimed | not_registered | error "
        "| not_in_file\n"
        "--------------+------+----+----------------+-----------+----------------+-------"
        "+-------------\n"
        " (none)       |    1 |  0 |              0 |         0 |              0 |     1 "
        "|           0\n"
        " SO-TEST-1    |    3 |  2 |              1 |         0 |              0 |     0 "
        "|           1\n"
        " SO-TEST-2    |    3 |  0 |              0 |         1 |              1 |     1 "
        "|           0\n"
        "\n"
        "Rows that are not ok:\n"
        + _rows(
            ["line_number", "imei", "order_number", "expected_company_id", "device_id",
             "company_id", "company_name", "state", "error"],
            [
                [4, "356938035643825", "SO-TEST-1", a, ids["356938035643825"], b, b_name,
                 "wrong_customer", None],
                [5, "356938035643841", "SO-TEST-2", None, ids["356938035643841"], None, None,
                 "unclaimed", None],
                [6, "490154203237518", "SO-TEST-2", a, None, None, None, "not_registered",
                 None],
                [7, "490154203237519", "SO-TEST-2", a, None, None, None, "error",
                 "imei '490154203237519' fails its check digit (Luhn); is a digit mistyped?"],
                [8, None, None, None, None, None, None, "error",
                 "has 2 cells, the header has 3"],
            ],
        )
        + "\n"
        "Devices whose ordernumber names an order of the file, but not in the file "
        "(not_in_file; from the snapshot of the last sync):\n"
        + _rows(
            ["imei", "manufacturer", "model", "order_number", "device_id", "company_id",
             "company_name", "state"],
            [["356938035643833", "Google", "Pixel 8", "SO-TEST-1", ids["356938035643833"], a,
              a_name, "not_in_file"]],
        )
    )  # fmt: skip
    assert width
    assert stderr_lines(result) == [
        "WARNING shipped.csv:7: imei '490154203237519' fails its check digit (Luhn); is a digit "
        "mistyped?; row skipped",
        "WARNING shipped.csv:8: has 2 cells, the header has 3; row skipped",
    ]


def _rows(columns: list[str], rows: list[list[Any]]) -> str:
    """The table ``zt-inventory sql`` would print (sqlout.table_lines), for expected output."""
    from inventory.sqlout import table_lines

    return "".join(line + "\n" for line in table_lines(columns, rows, width=None, limit=None))


def test_the_command_as_csv_and_json(small: tuple[Emulator, Path], tmp_path: Path) -> None:
    emu, config = small
    path, customers, ids = _shipped(emu, tmp_path)
    a, b = customers[0], customers[1]
    result = run("reconcile", "--config", str(config), "--format", "csv", str(path))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == ",".join(
        [*["line_number", "imei", "meid", "serial_number", "manufacturer", "model"],
         *["device_type", "chrome_os_attested_device_id", "order_number", "expected_company_id"],
         *["device_id", "company_id", "company_name", "state", "error"]]
    )  # fmt: skip
    states = [row[-2] for row in csv.reader(lines[1:])]
    assert states == [
        "wrong_customer",
        "unclaimed",
        "not_registered",
        "error",
        "error",
        "not_in_file",
    ]
    assert lines[-1].startswith(",356938035643833,,,Google,Pixel 8,,,SO-TEST-1,,")
    assert stderr_lines(result)[-1] == (
        f"{path}: 7 identifiers in run 2: 2 ok, 1 wrong_customer, 1 unclaimed, "
        "1 not_registered, 2 error; 1 not_in_file"
    )
    data = json.loads(
        run("reconcile", "--config", str(config), "--format", "json", str(path)).stdout
    )
    assert (data["run_id"], data["status"], data["identifiers"]) == (3, "partial", 7)
    assert data["by_state"] == {
        "ok": 2, "wrong_customer": 1, "unclaimed": 1, "not_registered": 1, "error": 2,
        "not_in_file": 1,
    }  # fmt: skip
    assert data["by_order"]["SO-TEST-1"]["not_in_file"] == 1
    assert [r["line_number"] for r in data["rows"]] == [4, 5, 6, 7, 8]
    wrong = data["rows"][0]
    assert (wrong["expected_company_id"], wrong["company_id"]) == (
        a if a < 2**53 else str(a),
        b if b < 2**53 else str(b),
    )
    assert [int(d["device_id"]) for d in data["not_in_file"]] == [ids["356938035643833"]]
    assert len(data["warnings"]) == 2


def test_the_command_exits_0_when_every_row_is_ok(
    small: tuple[Emulator, Path], tmp_path: Path
) -> None:
    emu, config = small
    customers = sorted(int(c["companyId"]) for c in emu.iter_customers())
    (tmp_path / "ok.csv").write_text(
        f"imei,expected_company_id\n356938035643809,{customers[0]}\n356938035643833,\n",
        encoding="utf-8",
    )
    result = run("reconcile", "--config", str(config), "ok.csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "Reconciled ok.csv in run 2: 2 identifiers, 2 API requests, 0 retries."
    )
    assert result.stdout.endswith("\nEvery row is ok.\n")
    assert result.stderr == ""


@pytest.mark.parametrize("content", ["", "imei,order_number\n"])
def test_the_command_on_an_empty_file_says_0_identifiers(
    small: tuple[Emulator, Path], tmp_path: Path, content: str
) -> None:
    emu, config = small
    (tmp_path / "empty.csv").write_text(content, encoding="utf-8")
    emu.clear_log()
    result = run("reconcile", "--config", str(config), "empty.csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "Reconciled empty.csv in run 2: 0 identifiers, 0 API requests, 0 retries."
    )
    assert emu.counts() == {}


def test_the_command_exits_2_on_a_missing_file_or_bad_header(
    small: tuple[Emulator, Path], tmp_path: Path
) -> None:
    _, config = small
    missing = run("reconcile", "--config", str(config), "nope.csv")
    assert (missing.exit_code, missing.stderr) == (
        2,
        "Error: identifiers file nope.csv does not exist\n",
    )
    (tmp_path / "bad.csv").write_text("colour\nred\n", encoding="utf-8")
    bad = run("reconcile", "--config", str(config), "bad.csv")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("Error: bad.csv:1: the header row names none of imei, ")


def test_the_command_exits_1_when_the_api_refuses(
    small: tuple[Emulator, Path], tmp_path: Path
) -> None:
    emu, config = small
    (tmp_path / "s.csv").write_text("imei\n356938035643809\n", encoding="utf-8")
    emu.faults = FaultConfig(script=[403])
    result = run("reconcile", "--config", str(config), "s.csv")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: reconcile failed: findByIdentifier: HTTP 403 ")


def test_help_names_the_csv_columns() -> None:
    for command in ("sync", "reconcile"):
        text_ = " ".join(run(command, "--help").stdout.split())
        for column in COLUMNS:
            assert column in text_, (command, column)


# --- sync: a malformed row is that row's problem --------------------------------------------


def test_sync_stores_malformed_rows_and_syncs_the_fleet(
    emu: Emulator, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    device = next(d for d in emu.iter_devices() if d["deviceIdentifier"].get("imei"))
    imei = device["deviceIdentifier"]["imei"]
    path = tmp_path / "ids.csv"
    path.write_bytes(
        b"imei,serial_number,manufacturer,order_number\n"
        + f"{imei},,,SO-1\n".encode()  # 2 ok
        + f"{imei},,,SO-1,extra,cells\n".encode()  # 3 wrong cell count
        + b"12345,,,\n"  # 4 bad IMEI length
        + f"{BAD_LUHN},,,\n".encode()  # 5 bad check digit
        + b",SN-1,,\n"  # 6 serial without manufacturer
        + b"356938035643809,,,Caf\xe9\n"  # 7 undecodable
        + f"{NOT_REGISTERED},,,\n".encode()  # 8 ok, not registered
    )
    result = sync(emu, settings_for(emu, db_url, sync={"identifiers_file": str(path)}))
    assert result.status == "partial"
    assert_equals_fleet(engine, expected_devices(emu))  # the fleet is synced all the same
    assert result.warnings == [
        f"{path}:3: has 6 cells, the header has 4; row skipped",
        f"{path}:4: imei '12345' is not 14 to 16 digits; row skipped",
        f"{path}:5: imei '{BAD_LUHN}' fails its check digit (Luhn); is a digit mistyped?; "
        "row skipped",
        f"{path}:6: serial_number needs manufacturer (serial numbers repeat across makers); "
        "row skipped",
        f"{path}:7: is not UTF-8 text (byte 0xe9 at column 22); save the file as UTF-8; "
        "row skipped",
    ]
    stored = lookups_of(engine, result.run_id or 0)
    assert [(x["line_number"], x["found"], x["error"] is None) for x in stored] == [
        (2, True, True),
        (3, False, False),
        (4, False, False),
        (5, False, False),
        (6, False, False),
        (7, False, False),
        (8, False, True),
    ]
    assert stored[0]["order_number"] == "SO-1"
    assert result.identifiers_looked_up == 7
    identifier_listing = [x for x in result.listings if x.kind == "find_by_identifier"]
    assert [(x.complete, x.error) for x in identifier_listing] == [
        (False, "5 identifier row(s) with errors")
    ]
    assert all(x.complete for x in result.listings if x.kind == "find_by_owner")


def test_sync_command_with_a_malformed_row_is_partial_and_says_why(
    small: tuple[Emulator, Path], tmp_path: Path
) -> None:
    emu, config = small
    (tmp_path / "ids.csv").write_text("imei\n356938035643809\n1234\n", encoding="utf-8")
    result = run("sync", "--config", str(config), "--identifiers", "ids.csv")
    assert result.exit_code == 1
    assert "  identifiers: 1 of 2 found" in result.stdout
    assert [x for x in stderr_lines(result) if x.startswith(("WARNING", "Error"))] == [
        "WARNING ids.csv:3: imei '1234' is not 14 to 16 digits; row skipped",
        "Error: the run was partial: 1 identifier row(s) with errors in the identifiers file, "
        "skipped (see the warnings and identifier_lookups.error); the rest was synced",
    ]


@pytest.mark.parametrize("content", ["", "imei\n"])
def test_sync_with_an_empty_file_says_0_identifiers(
    small: tuple[Emulator, Path], tmp_path: Path, content: str
) -> None:
    _, config = small
    (tmp_path / "ids.csv").write_text(content, encoding="utf-8")
    result = run("sync", "--config", str(config), "--identifiers", "ids.csv")
    assert result.exit_code == 0, result.output
    assert "  identifiers: 0 identifiers in the file\n" in result.stdout
    assert "ids.csv: 0 identifiers" in result.stderr  # the run's log


def test_a_scheduled_service_with_a_bad_row_still_syncs_the_fleet(
    emu: Emulator, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("imei,model\n490154203237518,Pixel,extra\n", encoding="utf-8")
    settings = settings_for(emu, db_url, sync={"identifiers_file": str(path)})
    service = SyncService(settings, sync=functools.partial(sync, emu, transport=emu.transport()))
    for _ in range(2):  # every tick
        result = service.run_once()
        assert result is not None
        assert result.status == "partial"
        assert_equals_fleet(engine, expected_devices(emu))
        emu.move_device(
            int(next(iter(expected_devices(emu)))),
            int(list(emu.iter_customers())[-1]["companyId"]),
        )
    with engine.connect() as conn:
        statuses = conn.execute(text("SELECT status FROM sync_runs ORDER BY run_id")).scalars()
        assert list(statuses) == ["partial", "partial"]


# --- revision 0007 -----------------------------------------------------------------------------


def test_revision_0007_down_and_up(
    emu: Emulator, settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    found = reconcile(emu, settings, write_csv(tmp_path / "s.csv", Shipment(emu).rows()))
    assert found.rows
    new = {
        "expected_company_id",
        "order_number",
        "owner_company_id",
        "google_workspace_customer_id",
    }
    db.downgrade(engine, "0006")
    insp = inspect(engine)
    assert "v_reconciliation" not in insp.get_view_names()
    assert not new & {c["name"] for c in insp.get_columns("identifier_lookups")}
    assert "ix_device_metadata_ordernumber" not in {
        i["name"] for i in insp.get_indexes("device_metadata")
    }
    with engine.connect() as conn:  # the lookups are kept, without the new columns
        kept = conn.execute(text("SELECT COUNT(*) FROM identifier_lookups")).scalar_one()
    assert kept == len(found.rows)
    db.upgrade(engine)
    insp = inspect(engine)
    assert "v_reconciliation" in insp.get_view_names()
    assert new <= {c["name"] for c in insp.get_columns("identifier_lookups")}
    assert "ix_device_metadata_ordernumber" in {
        i["name"] for i in insp.get_indexes("device_metadata")
    }
    with engine.connect() as conn:
        states = conn.execute(text("SELECT state FROM v_reconciliation")).scalars().all()
    assert len(states) == len(found.rows)  # old lookups: no expected customer, no owner


def test_status_names_the_sync_as_the_snapshot_after_a_reconcile(
    emu: Emulator, settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """A reconcile run applies nothing to the snapshot, and says nothing of its freshness."""
    from inventory.status import collect_status

    reconcile(emu, settings, write_csv(tmp_path / "s.csv", [{"imei": NOT_REGISTERED}]))
    with engine.connect() as conn:
        data = collect_status(conn, 5)
    assert [r["scope"] for r in data["runs"]] == ["identifiers", "full"]
    assert (data["snapshot"]["run_id"], data["snapshot"]["full_run_id"]) == (1, 1)

"""``zt-inventory demo``: the whole product on a laptop, no Google account, no network.

It generates a fleet in the built-in emulator, serves it on a loopback port behind the real
OAuth flow (a freshly generated service-account key, so google-auth signs and refreshes tokens
as it would against Google), syncs it into ``./zt-demo.db``, changes the fleet (moves,
unclaims, metadata, new and deleted devices), syncs again, and answers the questions resellers
ask with the SQL that answers them.
"""

from __future__ import annotations

import csv
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from inventory import db
from inventory.config import Settings, settings_from
from inventory.emulator import Emulator, generate_fleet, serve
from inventory.errors import ConfigError
from inventory.redact import redact_url
from inventory.store import make_engine, sqlite_path
from inventory.sync import SyncResult, run_sync

DEMO_URL = "sqlite:///zt-demo.db"
DEMO_PARTNER_ID = 1234567
UNKNOWN_IMEIS = ("990000862471853", "353918059998886", "356938035643809")  # Luhn-valid


@dataclass
class Mutations:
    """What the demo changed in the emulated fleet between the two syncs."""

    moved: list[int] = field(default_factory=list)
    unclaimed: list[int] = field(default_factory=list)
    relabelled: list[int] = field(default_factory=list)
    added: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    to_vendors: list[int] = field(default_factory=list)  # claimed for a vendor's customers
    from_company: int | None = None
    to_company: int | None = None


@dataclass
class DemoReport:
    """What a demo run did, for tests and the closing lines."""

    url: str
    first: SyncResult
    second: SyncResult
    mutations: Mutations
    answers: dict[str, list[tuple[Any, ...]]]
    seconds: float


def _fresh_database(url: str) -> None:
    path = sqlite_path(url)
    if path is not None:
        for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
            Path(path + suffix).unlink(missing_ok=True)
        return
    engine = make_engine(url)
    try:
        if db.current_revision(engine) is not None:
            raise ConfigError(
                f"the demo needs an empty database, and {redact_url(url)} already has a "
                "zt-inventory schema; use another database or the default ./zt-demo.db"
            )
    finally:
        engine.dispose()


def _settings(url: str, endpoint: str, keys: dict[int, Path], identifiers: Path) -> Settings:
    """Two reseller accounts, each with a key file of its own (``[[partners]]``)."""
    return settings_from(
        {
            "partners": [{"id": pid, "credentials": str(key)} for pid, key in keys.items()],
            "api": {"endpoint": endpoint, "quota_per_100s": 0, "concurrency": 4},
            "database": {"url": url},
            "sync": {"identifiers_file": str(identifiers)},
        }
    )


def _write_identifiers(emu: Emulator, path: Path, rng: random.Random) -> list[str]:
    """Our "shipped last month" list: some registered IMEIs and some nobody registered."""
    imeis = [
        d["deviceIdentifier"]["imei"]
        for d in emu.iter_devices()
        if d.get("claims") and d["deviceIdentifier"].get("imei")
    ]
    known = rng.sample(imeis, min(7, len(imeis)))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["imei"])
        for imei in [*known, *UNKNOWN_IMEIS]:
            writer.writerow([imei])
    return known


def _owner(device: dict[str, Any]) -> int | None:
    for claim in device.get("claims", []):
        if claim.get("sectionType") == "SECTION_TYPE_ZERO_TOUCH" and claim.get("ownerCompanyId"):
            return int(claim["ownerCompanyId"])
    return None


def mutate(emu: Emulator, rng: random.Random, keep: set[str] | None = None) -> Mutations:
    """Change the fleet the way a week of business does.

    Args:
        emu: the emulator whose fleet changes.
        rng: the demo's seeded RNG.
        keep: IMEIs to leave alone (the identifiers file's registered devices).
    """
    keep = keep or set()
    owned = [  # the first partner's devices: the second one's week is quiet
        d
        for d in emu.iter_devices(DEMO_PARTNER_ID)
        if _owner(d) is not None and d["deviceIdentifier"].get("imei") not in keep | {None}
    ]
    by_owner: dict[int, list[int]] = {}
    for d in owned:
        by_owner.setdefault(_owner(d) or 0, []).append(int(d["deviceId"]))
    ranked = sorted(by_owner, key=lambda c: len(by_owner[c]), reverse=True)
    if len(ranked) < 2:
        raise ConfigError("the demo needs at least two customers with devices; raise --devices")
    m = Mutations(from_company=ranked[0], to_company=ranked[1])
    m.moved = rng.sample(by_owner[ranked[0]], min(25, len(by_owner[ranked[0]]) // 4))
    for device_id in m.moved:
        emu.move_device(device_id, ranked[1], partner_id=DEMO_PARTNER_ID)
    moved = set(m.moved)
    rest = [int(d["deviceId"]) for d in owned if int(d["deviceId"]) not in moved]
    # Small fleets get fewer removals: a run removing over 20% would stop (mass-removal guard).
    unclaim, relabel, delete = (
        min(10, len(rest) // 40),
        min(20, len(rest) // 20),
        min(5, len(rest) // 80),
    )
    picks = rng.sample(rest, unclaim + relabel + delete)
    m.unclaimed = picks[:unclaim]
    m.relabelled = picks[unclaim : unclaim + relabel]
    m.deleted = picks[unclaim + relabel :]
    # a vendor (sub-reseller) sold a few devices: claimed for its customers
    vendor_customers = [c.company_id for v in emu.fleet.vendors_of(DEMO_PARTNER_ID)
                        for c in v.customers]  # fmt: skip
    left = [d for d in rest if d not in set(picks)]
    if vendor_customers and left:
        m.to_vendors = rng.sample(left, min(6, len(left)))
        for n, device_id in enumerate(m.to_vendors):
            company = vendor_customers[n % len(vendor_customers)]
            emu.move_device(device_id, company, partner_id=DEMO_PARTNER_ID)
    for device_id in m.unclaimed:
        emu.unclaim(device_id)
    for n, device_id in enumerate(m.relabelled):
        emu.set_metadata(device_id, {"store": f"Store {n % 4 + 1:02d}", "asset_tag": f"DEMO-{n}"})
    for device_id in m.deleted:
        emu.remove_device(device_id)
    for _ in range(20):
        m.added.append(
            emu.add_device(company_id=ranked[2 % len(ranked)], partner_id=DEMO_PARTNER_ID)
        )
    return m


def _stamp(when: datetime, dialect: str) -> str:
    """A UTC timestamp literal that compares correctly with the stored column."""
    text = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return text if dialect == "sqlite" else text + "+00"


def questions(
    engine_dialect: str, m: Mutations, imei: str, moment: datetime, second_run: int
) -> list[tuple[str, str, str]]:
    """(key, question, SQL) for the demo's examples, in the order they are shown."""
    t = _stamp(moment, engine_dialect)
    c = m.from_company
    return [
        (
            "per_partner",
            "How many devices and customers does each reseller account have?",
            "SELECT partner_id, COUNT(*) AS devices, COUNT(DISTINCT company_id) AS customers\n"
            "FROM v_devices\nGROUP BY partner_id ORDER BY partner_id",
        ),
        (
            "per_customer",
            "How many devices does each customer have? (top 10)",
            "SELECT partner_id, company_id, company_name, devices\n"
            "FROM v_customer_device_counts\nORDER BY devices DESC, company_id\nLIMIT 10",
        ),
        (
            "vendors",
            "Which vendors (sub-resellers) does each account have, with how many customers?",
            "SELECT v.partner_id, v.vendor_id, v.company_name AS vendor,\n"
            "       COUNT(c.company_id) AS customers\n"
            "FROM vendors v LEFT JOIN vendor_customers c\n"
            "  ON c.partner_id = v.partner_id AND c.vendor_id = v.vendor_id\n"
            "WHERE v.removed_at IS NULL AND c.removed_at IS NULL\n"
            "GROUP BY v.partner_id, v.vendor_id, v.company_name\n"
            "ORDER BY v.partner_id, v.vendor_id",
        ),
        (
            "vendor_devices",
            "Which vendor's customers own which devices? (view v_vendor_devices)",
            "SELECT vendor_name, company_name, COUNT(*) AS devices\n"
            "FROM v_vendor_devices\nGROUP BY vendor_name, company_name\n"
            "ORDER BY devices DESC, company_name",
        ),
        (
            "owner_of_imei",
            f"Which customer owns IMEI {imei}?",
            "SELECT device_id, manufacturer, model, company_id, company_name\n"
            f"FROM v_devices\nWHERE imei = '{imei}' OR imei2 = '{imei}'",
        ),
        (
            "history",
            "And before? That device's history (one row per version in device_versions)",
            "SELECT v.valid_from, v.valid_to, v.owner_company_id, v.removed, v.run_id\n"
            "FROM device_versions v JOIN devices d ON d.device_id = v.device_id\n"
            f"WHERE d.imei = '{imei}'\nORDER BY v.valid_from",
        ),
        (
            "vacation",
            "Which devices have vacation mode set, and until when? (first 10)",
            "SELECT c.device_id, d.imei, c.owner_company_id, c.vacation_mode_expire_time\n"
            "FROM device_claims c JOIN devices d ON d.device_id = c.device_id\n"
            "WHERE c.vacation_mode_start_time IS NOT NULL\n"
            "ORDER BY c.vacation_mode_expire_time DESC, c.device_id\nLIMIT 10",
        ),
        (
            "unregistered",
            "Which devices we shipped (identifiers file) are not registered?",
            "SELECT line_number, imei, state\nFROM v_reconciliation\n"
            "WHERE state = 'not_registered'\nORDER BY line_number",
        ),
        (
            "runs",
            "What did each sync do?",
            "SELECT run_id, status, devices_seen AS seen, devices_added AS added,\n"
            "       devices_changed AS changed, devices_removed AS removed,\n"
            "       devices_reappeared AS reappeared, api_requests AS requests\n"
            "FROM sync_runs ORDER BY run_id",
        ),
        (
            "changes",
            f"What changed in the second sync (run {second_run})? (view v_device_changes)",
            "SELECT change, COUNT(*) AS devices\n"
            f"FROM v_device_changes\nWHERE run_id = {second_run}\n"
            "GROUP BY change ORDER BY devices DESC, change",
        ),
        (
            "moved",
            "Which devices moved between customers? (first 5)",
            "SELECT c.device_id, f.company_name AS moved_from, t.company_name AS moved_to\n"
            "FROM v_device_changes c\n"
            "JOIN customers f ON f.partner_id = c.partner_id "
            "AND f.company_id = c.previous_company_id\n"
            "JOIN customers t ON t.partner_id = c.partner_id AND t.company_id = c.company_id\n"
            f"WHERE c.change = 'moved' AND c.run_id = {second_run}\n"
            "ORDER BY c.device_id\nLIMIT 5",
        ),
        (
            "owned_then",
            f"What did customer {c} own at {t[:19]} UTC, before the second sync?",
            "SELECT COUNT(*) AS devices_then,\n"
            "       (SELECT COUNT(*) FROM v_devices WHERE company_id = "
            f"{c}) AS devices_now\n"
            f"FROM device_versions\nWHERE owner_company_id = {c} AND NOT removed\n"
            f"  AND valid_from <= '{t}'\n  AND (valid_to IS NULL OR valid_to > '{t}')",
        ),
    ]


def _result_table(columns: list[str], rows: list[tuple[Any, ...]]) -> Table:
    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


def run_demo(
    url: str = DEMO_URL,
    *,
    devices: int = 5000,
    customers: int = 60,
    seed: int = 7,
    console: Console | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemoReport:
    """Run the demo end to end and print it.

    Args:
        url: the database (default ``sqlite:///zt-demo.db``; a SQLite file is replaced).
        devices: devices in the generated fleet (half for each of its two partners).
        customers: customers in the generated fleet (half for each partner; two are
            customers of both).
        seed: the fleet's seed (the same seed gives the same fleet).
        console: where to print (default: stdout).
        progress: called with a short status line before each step.

    Returns:
        What the demo did.

    Raises:
        ConfigError: a PostgreSQL database that already holds a schema.
    """
    out = console or Console()
    say = progress or (lambda text: out.print(f"[dim]• {text}[/dim]"))
    started = time.monotonic()
    rng = random.Random(seed)
    _fresh_database(url)
    engine = make_engine(url)
    try:
        db.upgrade(engine)
    finally:
        engine.dispose()
    say(
        f"generating {devices:,} devices over {customers} customers of two reseller accounts "
        f"(seed {seed})"
    )
    fleet = generate_fleet(
        devices=devices // 2,
        customers=max(2, customers // 2),
        seed=seed,
        partner_id=DEMO_PARTNER_ID,
        partners=2,
    )
    emu = Emulator(fleet, auth="token")
    with serve(emu) as server, tempfile.TemporaryDirectory(prefix="zt-demo-") as tmp:
        keys = {  # one service account per reseller account, linked to it alone
            pid: emu.write_service_account_key(Path(tmp) / f"key-{pid}.json", partner_ids=[pid])
            for pid in fleet.partner_ids
        }
        ident = Path(tmp) / "shipped.csv"
        known = _write_identifiers(emu, ident, rng)
        settings = _settings(url, server.url, keys, ident)
        say(f"emulator on {server.url} (OAuth service-account flow); syncing into {url}")
        first = run_sync(settings)
        _check(first)
        say(
            f"run {first.run_id}: {first.devices_added:,} devices added in "
            f"{first.duration_s or 0:.1f} s with {first.api_requests} API requests"
        )
        moment = datetime.now(UTC)
        mutations = mutate(emu, rng, set(known))
        say(
            f"changing the fleet: {len(mutations.moved)} moved, {len(mutations.unclaimed)} "
            f"unclaimed, {len(mutations.relabelled)} new metadata, {len(mutations.added)} "
            f"added, {len(mutations.deleted)} deleted, {len(mutations.to_vendors)} sold by a "
            "vendor; syncing again"
        )
        second = run_sync(settings)
        _check(second)
    answers = _answer(out, url, mutations, known, moment, second.run_id or 0)
    seconds = time.monotonic() - started
    shown = url if url == DEMO_URL else redact_url(url)
    out.print()
    out.print(f"[bold]Done in {seconds:.1f} s.[/bold] The snapshot is in {shown}. Ask it yourself:")
    out.print(
        f'  zt-inventory sql --database-url {shown} "SELECT * FROM v_customer_device_counts '
        'ORDER BY devices DESC LIMIT 5"',
        highlight=False,
        soft_wrap=True,
    )
    out.print(f"  zt-inventory status --database-url {shown}", highlight=False, soft_wrap=True)
    if url == DEMO_URL:
        out.print(
            "Browse it in Datasette (pip install datasette):\n"
            "  datasette zt-demo.db --metadata <(zt-inventory datasette-metadata "
            f"--database-url {DEMO_URL})",
            highlight=False,
            soft_wrap=True,
        )
    return DemoReport(url, first, second, mutations, answers, seconds)


def _check(result: SyncResult) -> None:
    if result.status != "succeeded":
        raise ConfigError(f"the demo's sync ended {result.status}: {result.error}")


def _answer(
    out: Console,
    url: str,
    m: Mutations,
    known_imeis: list[str],
    moment: datetime,
    second_run: int,
) -> dict[str, list[tuple[Any, ...]]]:
    answers: dict[str, list[tuple[Any, ...]]] = {}
    engine = make_engine(url, read_only=True)
    try:
        with engine.connect() as conn:
            moved = conn.exec_driver_sql(
                f"SELECT imei FROM devices WHERE device_id = {m.moved[0]}"
            ).scalar() if m.moved else None  # fmt: skip
            imei = str(moved or known_imeis[0])
            for key, question, sql in questions(engine.dialect.name, m, imei, moment, second_run):
                result = conn.exec_driver_sql(sql)
                columns = list(result.keys())
                rows = [tuple(r) for r in result]
                answers[key] = rows
                out.print()
                out.print(f"[bold cyan]{question}[/bold cyan]")
                out.print(Syntax(sql, "sql", theme="ansi_dark", background_color="default"))
                out.print(_result_table(columns, rows))
    finally:
        engine.dispose()
    return answers

"""Helpers for sync tests: settings for an emulator, the expected fleet, the stored snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

from inventory.config import Settings, settings_from
from inventory.emulator import Emulator
from inventory.sync import SyncResult, run_sync

ENDPOINT = "http://emulator.test"
ZT = "SECTION_TYPE_ZERO_TOUCH"


def settings_for(
    emu: Emulator,
    db_url: str,
    *,
    endpoint: str = ENDPOINT,
    credentials: str = "anonymous",
    api: dict[str, Any] | None = None,
    sync: dict[str, Any] | None = None,
) -> Settings:
    """Settings that point at the emulator, with no quota and fast retries by default."""
    return settings_from(
        {
            "partner": {"id": emu.partner_id},
            "auth": {"credentials": credentials},
            "api": {"endpoint": endpoint, "quota_per_100s": 0, "max_retries": 8, **(api or {})},
            "database": {"url": db_url},
            "sync": sync or {},
        }
    )


class FakeSleep:
    """Records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def sync(
    emu: Emulator,
    settings: Settings,
    *,
    transport: httpx.BaseTransport | None = None,
    **kwargs: Any,
) -> SyncResult:
    """One run against the in-process emulator."""
    kwargs.setdefault("sleep", FakeSleep())
    return run_sync(settings, transport=transport or emu.transport(), **kwargs)


def expected_devices(
    emu: Emulator,
    sections: tuple[str, ...] = (ZT,),
    customers: set[int] | None = None,
    extra_workspaces: tuple[str, ...] = (),
) -> dict[int, dict[str, Any]]:
    """The devices a full findByOwner sweep over every customer returns, by id."""
    companies = list(emu.iter_customers())
    ids = {int(c["companyId"]) for c in companies}
    if customers is not None:
        ids &= customers
    workspaces = {
        c["googleWorkspaceAccount"]["customerId"]
        for c in companies
        if int(c["companyId"]) in ids and c.get("googleWorkspaceAccount", {}).get("customerId")
    } | set(extra_workspaces)
    found = {}
    for device in emu.iter_devices():
        for claim in device.get("claims", []):
            if claim.get("sectionType") not in sections:
                continue
            owner = claim.get("ownerCompanyId")
            if (owner is not None and int(owner) in ids) or (
                claim.get("googleWorkspaceCustomerId") in workspaces
            ):
                found[int(device["deviceId"])] = device
    return found


def standalone_workspaces(emu: Emulator) -> tuple[str, ...]:
    """Workspace accounts that own Chrome OS devices without being a zero-touch customer."""
    return tuple(
        sorted(
            {
                c["googleWorkspaceCustomerId"]
                for d in emu.iter_devices()
                for c in d.get("claims", [])
                if "ownerCompanyId" not in c and "googleWorkspaceCustomerId" in c
            }
        )
    )


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def stored_devices(engine: Engine) -> dict[int, dict[str, Any]]:
    """Current devices as the database holds them: row, claims and metadata."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM devices WHERE removed_at IS NULL")).mappings()
        devices = {r["device_id"]: {"row": dict(r), "claims": {}, "metadata": {}} for r in rows}
        for c in conn.execute(text("SELECT * FROM device_claims")).mappings():
            devices[c["device_id"]]["claims"][c["section_type"]] = dict(c)
        for m in conn.execute(text("SELECT * FROM device_metadata")).mappings():
            devices[m["device_id"]]["metadata"][m["key"]] = m["value"]
    return devices


def assert_equals_fleet(engine: Engine, expected: dict[int, dict[str, Any]]) -> None:
    """The stored snapshot equals the API's devices, column by column."""
    stored = stored_devices(engine)
    assert sorted(stored) == sorted(expected)
    columns = {
        "imei": "imei", "imei2": "imei2", "meid": "meid", "meid2": "meid2",
        "serialNumber": "serial_number", "manufacturer": "manufacturer", "model": "model",
        "deviceType": "device_type", "chromeOsAttestedDeviceId": "chrome_os_attested_device_id",
    }  # fmt: skip
    for device_id, device in expected.items():
        got = stored[device_id]
        row = got["row"]
        assert _loads(row["raw"]) == device
        assert row["name"] == device.get("name")
        ident = device.get("deviceIdentifier", {})
        for api, column in columns.items():
            assert row[column] == ident.get(api), (device_id, column)
        claims = {c.get("sectionType"): c for c in device.get("claims", [])}
        assert set(got["claims"]) == set(claims)
        for section, claim in claims.items():
            mine = got["claims"][section]
            owner = claim.get("ownerCompanyId")
            assert mine["owner_company_id"] == (int(owner) if owner is not None else None)
            assert mine["google_workspace_customer_id"] == claim.get("googleWorkspaceCustomerId")
            assert mine["additional_service"] == claim.get("additionalService")
            assert (mine["vacation_mode_start_time"] is None) == (
                "vacationModeStartTime" not in claim
            )
        assert got["metadata"] == device.get("deviceMetadata", {}).get("entries", {})


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables readers see (for "nothing changed" checks)."""
    tables = {
        "customers": "company_id",
        "devices": "device_id",
        "device_claims": "device_id, section_type",
        "device_metadata": "device_id, key",
        "device_versions": "version_id",
        "identifier_lookups": "lookup_id",
    }
    out = {}
    with engine.connect() as conn:
        for table, order in tables.items():
            rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY {order}")).all()
            out[table] = [tuple(str(v) for v in r) for r in rows]
    return out


def current_ids(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return set(
            conn.execute(text("SELECT device_id FROM devices WHERE removed_at IS NULL")).scalars()
        )


class Tamper(httpx.BaseTransport):
    """Wraps a transport and lets a test rewrite chosen JSON responses."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        rewrite: Callable[[httpx.Request, dict[str, Any]], dict[str, Any] | None],
    ) -> None:
        self.inner = inner
        self.rewrite = rewrite

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        if response.status_code != 200 or "json" not in response.headers.get("content-type", ""):
            return response
        body = json.loads(response.content)
        new = self.rewrite(request, body)
        if new is None:
            return response
        return httpx.Response(200, json=new, request=request)


def iter_listing_bodies(emu: Emulator, method: str = "findByOwner") -> Iterator[dict[str, Any]]:
    for record in emu.request_log:
        if getattr(record, "method", None) == method:
            yield record.body


def staging_tables(engine: Engine) -> list[str]:
    """The ``sync_staging_*`` tables another connection can see: none, since a run's staging
    tables are TEMPORARY tables of its own connection (revision 0003)."""
    from sqlalchemy import inspect

    return [t for t in inspect(engine).get_table_names() if t.startswith("sync_staging")]


def commit_now(conn: Any) -> None:
    """Commit the connection's open transaction behind SQLAlchemy's back and open another, as a
    merge that forgot its transaction would: for negative controls only. The staging tables
    are temporary tables of the writer connection, so the statements must stay on it."""
    raw = conn.connection.dbapi_connection
    raw.commit()
    if conn.dialect.name == "sqlite":  # the engine leaves BEGIN to SQLAlchemy: open the next
        raw.execute("BEGIN")

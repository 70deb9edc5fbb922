"""Credentials, tokens and database passwords never appear in logs, errors or the database.

SPEC "What a sync guarantees" 8. The emulator requires bearer tokens from its OAuth endpoint;
zt-inventory gets them with a real service-account key file (google-auth's JWT flow). On
PostgreSQL the database URL carries a password (the test server trusts any password). Then:
``init``, a good ``sync``, a ``sync`` whose API calls all fail, a ``sync`` whose token request is
refused, ``status``, ``sql`` over ``sync_runs``, and ``status`` on an unreachable server whose URL
has the password, all with ``--verbose`` in real processes; and the same runs in-process with
every logger at DEBUG. Nothing printed, logged, raised or stored may contain the private key (any
40 characters of its PEM body), a bearer token the emulator issued, the signed JWT assertion,
or the password.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from inventory.emulator import (
    Emulator,
    FaultConfig,
    LoopbackServer,
    generate_fleet,
    serve,
    write_service_account_key,
)
from inventory.store import make_engine, sqlite_path
from inventory.sync import SyncResult, run_sync
from tests.helpers.reliability import REPO, dump_all, fresh_database
from tests.syncutil import FakeSleep, settings_for

PARTNER = 7_000_000_081
PASSWORD = f"Zt-S3cret-{uuid.uuid4().hex[:12]}"
CHUNK = 40


class Secrets:
    """What must never leak, and a scanner for it."""

    def __init__(self, key_file: Path, password: str | None) -> None:
        info = json.loads(key_file.read_text(encoding="utf-8"))
        body = "".join(
            line for line in info["private_key"].splitlines() if line and "-----" not in line
        )
        assert len(body) > 1000
        self.key_chunks = [body[i : i + CHUNK] for i in range(0, len(body) - CHUNK, CHUNK)]
        self.password = password
        self.tokens: set[str] = set()
        self.assertions: set[str] = set()

    def learn(self, emu: Emulator) -> None:
        """Collect every bearer token and JWT assertion the emulator saw or issued."""
        for record in emu.request_log:
            scheme, _, token = record.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and token:
                self.tokens.add(token.strip())
            if record.method == "token" and isinstance(record.body, dict):
                if record.body.get("assertion"):
                    self.assertions.add(record.body["assertion"])
                if isinstance(record.response, dict) and record.response.get("access_token"):
                    self.tokens.add(record.response["access_token"])

    def found_in(self, text: str) -> list[str]:
        flat = re.sub(r"\s+|\\n|\\\\n", "", text)
        found = [f"private key chunk {i}" for i, c in enumerate(self.key_chunks) if c in flat]
        found += [f"token {t[:12]}…" for t in self.tokens if t in text]
        found += [f"assertion {a[:12]}…" for a in self.assertions if a in text]
        if self.password and self.password in text:
            found.append("the database password")
        return found


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(URL, its password): on PostgreSQL the URL carries one."""
    with fresh_database(request.param, tmp_path, upgrade=False) as url:
        if request.param == "sqlite":
            yield url, None
        else:
            with_password = make_url(url).set(password=PASSWORD)
            yield with_password.render_as_string(hide_password=False), PASSWORD


@pytest.fixture
def emulator() -> Iterator[tuple[Emulator, LoopbackServer]]:
    fleet = generate_fleet(devices=150, customers=5, seed=81, partner_id=PARTNER)
    emu = Emulator(fleet, auth="token", keep_responses=True)
    with serve(emu, host="127.0.0.1", port=0) as server:
        yield emu, server


def _config(path: Path, endpoint: str, key: Path, url: str) -> Path:
    path.write_text(
        f'[partner]\nid = "{PARTNER}"\n[auth]\ncredentials = "{key}"\n'
        f'[api]\nendpoint = "{endpoint}"\nquota_per_100s = 0\nmax_retries = 1\n'
        f'[database]\nurl = "{url}"\n',
        encoding="utf-8",
    )
    return path


def _cli(cwd: Path, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZT_INVENTORY_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "inventory", "--verbose", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _stored_text(url: str) -> str:
    engine = make_engine(url)
    try:
        text = json.dumps(dump_all(engine), ensure_ascii=False)
    finally:
        engine.dispose()
    path = sqlite_path(url)
    if path:  # the raw file and its WAL too: deleted rows and free pages included
        for name in (path, f"{path}-wal"):
            if Path(name).exists():
                text += Path(name).read_bytes().decode("latin-1")
    return text


@pytest.mark.slow
def test_no_secret_in_output_logs_errors_or_the_database(
    database: tuple[str, str | None],
    emulator: tuple[Emulator, LoopbackServer],
    tmp_path: Path,
) -> None:
    url, password = database
    emu, server = emulator
    key = write_service_account_key(tmp_path / "key.json", server.url + "/token")
    secrets = Secrets(key, password)
    config = _config(tmp_path / "zt-inventory.toml", server.url, key, url)
    unreachable = make_url(url if password else "postgresql+psycopg://postgres@127.0.0.1/x")
    unreachable = unreachable.set(port=1, password=PASSWORD)
    outputs: dict[str, tuple[int, str]] = {}

    outputs["init"] = _cli(tmp_path, "init", "--config", str(config))
    outputs["sync"] = _cli(tmp_path, "sync", "--config", str(config))
    emu.faults = FaultConfig(error_rate=1.0)
    outputs["sync, API failing"] = _cli(tmp_path, "sync", "--config", str(config))
    emu.faults = FaultConfig(faults_on_token=True, script=[403] * 10)
    outputs["sync, token refused"] = _cli(tmp_path, "sync", "--config", str(config))
    emu.faults = FaultConfig()
    outputs["status"] = _cli(tmp_path, "status", "--config", str(config))
    outputs["sql"] = _cli(
        tmp_path, "sql", "--config", str(config), "--format", "json", "SELECT * FROM sync_runs"
    )
    outputs["status, unreachable"] = _cli(
        tmp_path, "status", "--database-url", unreachable.render_as_string(hide_password=False)
    )
    secrets.learn(emu)

    codes = {name: code for name, (code, _) in outputs.items()}
    assert codes == {
        "init": 0,
        "sync": 0,
        "sync, API failing": 1,
        "sync, token refused": 1,
        "status": 0,
        "sql": 0,
        "status, unreachable": 1,
    }, outputs
    assert len(secrets.tokens) >= 1
    assert secrets.assertions
    assert "Traceback" in outputs["status, unreachable"][1]  # --verbose shows it: scanned too
    assert "gave up after" in outputs["sync, API failing"][1]
    assert "403" in outputs["sync, token refused"][1]
    for name, (_, output) in outputs.items():
        assert secrets.found_in(output) == [], f"{name} printed a secret:\n{output}"
    assert secrets.found_in(_stored_text(url)) == []


@pytest.mark.slow
def test_no_secret_in_any_log_record(
    database: tuple[str, str | None],
    emulator: tuple[Emulator, LoopbackServer],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In-process, every logger (httpx, httpcore, google-auth, SQLAlchemy…) at DEBUG."""
    from inventory import db

    url, password = database
    emu, server = emulator
    engine = make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    key = write_service_account_key(tmp_path / "key.json", server.url + "/token")
    secrets = Secrets(key, password)
    settings = settings_for(
        emu, url, endpoint=server.url, credentials=str(key), api={"max_retries": 1}
    )
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # SQL and its parameters
    caplog.set_level(logging.DEBUG, logger="google")  # google-auth's request/response log
    google = logging.getLogger("google")
    google.addHandler(caplog.handler)  # google-auth may have turned off its propagation
    try:
        results = run_three_syncs(emu, settings)
    finally:
        google.removeHandler(caplog.handler)
    secrets.learn(emu)
    assert [r.status for r in results] == ["succeeded", "failed", "failed"]
    assert secrets.tokens
    names = {r.name.split(".")[0] for r in caplog.records}
    assert {"inventory", "httpx", "httpcore", "sqlalchemy"} <= names, names
    logged = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    assert secrets.found_in(logged) == []
    captured = capsys.readouterr()
    assert secrets.found_in(captured.out + captured.err) == []
    for result in results:
        assert secrets.found_in(json.dumps(result.to_dict(), default=str)) == []
    assert secrets.found_in(_stored_text(url)) == []


def run_three_syncs(emu: Emulator, settings: Any) -> list[SyncResult]:
    """A good run, a run whose API calls all fail, a run whose token request is refused."""
    results = [run_sync(settings, sleep=FakeSleep())]
    emu.faults = FaultConfig(error_rate=1.0)
    results.append(run_sync(settings, sleep=FakeSleep()))
    emu.faults = FaultConfig(faults_on_token=True, script=[403] * 10)
    results.append(run_sync(settings, sleep=FakeSleep()))
    emu.faults = FaultConfig()
    return results


def test_the_scanner_finds_what_it_looks_for(tmp_path: Path) -> None:
    """Negative control: each kind of secret is found, also inside JSON and across lines."""
    key = write_service_account_key(tmp_path / "key.json", "http://127.0.0.1/token")
    secrets = Secrets(key, PASSWORD)
    secrets.tokens.add("ya29.emu-abcdefghijklmnop")
    secrets.assertions.add("eyJhbGciOi.eyJpc3Mi.c2lnbmF0dXJl")
    info = json.loads(key.read_text(encoding="utf-8"))
    assert secrets.found_in(json.dumps({"key": info["private_key"]}))
    assert secrets.found_in(info["private_key"][200:400])
    assert secrets.found_in("Authorization: Bearer ya29.emu-abcdefghijklmnop")
    assert secrets.found_in("assertion=eyJhbGciOi.eyJpc3Mi.c2lnbmF0dXJl&grant_type=x")
    assert secrets.found_in(f"postgresql://u:{PASSWORD}@h/db")
    assert secrets.found_in("postgresql://u:***@h/db") == []

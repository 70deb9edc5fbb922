"""Credentials: google-auth's own service-account and ADC flows against the emulator's /token."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from inventory.auth import SCOPE, GoogleAuth, build_auth, load_credentials
from inventory.emulator import Emulator, FaultConfig, generate_fleet, write_service_account_key
from inventory.errors import AuthError

BASE = "http://emulator.test"


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


@pytest.fixture
def emu(clock: list[float]) -> Emulator:
    return Emulator(
        generate_fleet(devices=20, customers=3, seed=1, partner_id=42),
        auth="token",
        faults=FaultConfig(token_ttl_s=3600),
        clock=lambda: clock[0],
    )


def _client(emu: Emulator, auth: httpx.Auth | None) -> httpx.Client:
    return httpx.Client(base_url=BASE, transport=emu.transport(), auth=auth)


def _key(tmp_path: Path) -> Path:
    return write_service_account_key(tmp_path / "sa.json", f"{BASE}/token")


def _statuses(emu: Emulator) -> list[tuple[str, int]]:
    return [(r.method, r.status) for r in emu.request_log]


def test_service_account_key_gets_a_token_and_reuses_it(emu: Emulator, tmp_path: Path) -> None:
    with httpx.Client(transport=emu.transport()) as token_client:
        auth = build_auth(str(_key(tmp_path)), token_client)
        assert isinstance(auth, GoogleAuth)
        with _client(emu, auth) as client:
            for _ in range(3):
                assert client.get("/v1/partners/42/customers").status_code == 200
    assert emu.counts()["token"] == 1
    assert emu.counts()["customers.list"] == 3
    assert auth.credentials.scopes == [SCOPE]


def test_a_401_refreshes_once_and_retries(
    emu: Emulator, clock: list[float], tmp_path: Path
) -> None:
    with httpx.Client(transport=emu.transport()) as token_client:
        auth = build_auth(str(_key(tmp_path)), token_client)
        with _client(emu, auth) as client:
            assert client.get("/v1/partners/42/customers").status_code == 200
            clock[0] += 7200  # the server expires the token; the client still thinks it valid
            assert client.get("/v1/partners/42/customers").status_code == 200
    assert _statuses(emu) == [
        ("token", 200),
        ("customers.list", 200),
        ("customers.list", 401),
        ("token", 200),
        ("customers.list", 200),
    ]


def test_a_second_401_is_returned_not_looped(emu: Emulator, tmp_path: Path) -> None:
    emu.faults.script = [401, 401]  # refused twice even with a fresh token
    with httpx.Client(transport=emu.transport()) as token_client:
        auth = build_auth(str(_key(tmp_path)), token_client)
        with _client(emu, auth) as client:
            assert client.get("/v1/partners/42/customers").status_code == 401
    assert emu.counts()["token"] == 2


def test_adc_reads_google_application_credentials(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(_key(tmp_path)))
    with httpx.Client(transport=emu.transport()) as token_client:
        auth = build_auth("adc", token_client)
        with _client(emu, auth) as client:
            assert client.get("/v1/partners/42/customers").status_code == 200
    assert emu.counts()["token"] == 1


def test_missing_adc_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    with pytest.raises(AuthError, match="Application Default Credentials") as info:
        load_credentials("adc")
    assert "\n" not in str(info.value)


def test_anonymous_means_no_authorization_header() -> None:
    assert load_credentials("anonymous") is None
    assert build_auth("ANONYMOUS", httpx.Client()) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "not readable JSON"),
        ('{"type": "authorized_user"}', "not a service-account key"),
        ('{"type": "service_account", "client_email": "a@b"}', "incomplete or damaged"),
    ],
    ids=["missing", "garbage", "wrong-type", "incomplete"],
)
def test_bad_key_files_are_one_line_without_key_material(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "key.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(AuthError, match=message) as info:
        load_credentials(str(path))
    assert "\n" not in str(info.value)


def test_a_key_the_token_endpoint_does_not_trust_is_refused(emu: Emulator, tmp_path: Path) -> None:
    good = json.loads(_key(tmp_path).read_text(encoding="utf-8"))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good["private_key"] = stranger.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    good["private_key_id"] = "0" * 40
    path = tmp_path / "stranger.json"
    path.write_text(json.dumps(good), encoding="utf-8")
    with httpx.Client(transport=emu.transport()) as token_client:
        auth = build_auth(str(path), token_client)
        with _client(emu, auth) as client, pytest.raises(AuthError, match="refused") as info:
            client.get("/v1/partners/42/customers")
    assert "PRIVATE KEY" not in str(info.value)
    assert emu.counts().get("customers.list", 0) == 0

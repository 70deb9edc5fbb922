"""google-auth's service-account flow against the emulator's token endpoint, and bearer checks.

``requests`` is not a dependency: the product's ``google.auth.transport.Request`` over httpx
(``inventory.auth.HttpxRequest``) carries google-auth's token requests to the in-process
transport or the loopback server.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import google.auth.exceptions
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2 import service_account

from inventory.auth import HttpxRequest
from inventory.emulator import (
    SCOPE,
    Emulator,
    FaultConfig,
    generate_fleet,
    serve,
    write_service_account_key,
)

PID = 1234567
CUSTOMERS = f"/v1/partners/{PID}/customers"
IN_PROCESS_TOKEN_URI = "http://zt-emulator.invalid/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_service_account_key(
        tmp_path_factory.mktemp("keys") / "sa.json", IN_PROCESS_TOKEN_URI
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Emulator:
    fleet = generate_fleet(devices=60, customers=4, seed=3, partner_id=PID)
    return Emulator(fleet, clock=clock, auth="token", faults=FaultConfig(token_ttl_s=600))


@pytest.fixture
def client(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(transport=emu.transport(), base_url="http://zt-emulator.invalid") as c:
        yield c


def _credentials(key_file: Path, scopes: list[str] | None = None) -> service_account.Credentials:
    return service_account.Credentials.from_service_account_file(
        str(key_file), scopes=[SCOPE] if scopes is None else scopes
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_key_file_is_a_private_service_account_key(key_file: Path) -> None:
    info = json.loads(key_file.read_text())
    assert info["type"] == "service_account"
    assert info["token_uri"] == IN_PROCESS_TOKEN_URI
    assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_google_auth_obtains_and_refreshes_a_token(
    key_file: Path, emu: Emulator, client: httpx.Client, clock: FakeClock
) -> None:
    creds = _credentials(key_file)
    request = HttpxRequest(client)
    creds.refresh(request)
    first = creds.token
    assert first.startswith("ya29.")
    lifetime = creds.expiry - datetime.now(UTC).replace(tzinfo=None)
    assert 590 <= lifetime.total_seconds() <= 600
    assert client.get(CUSTOMERS, headers=_bearer(first)).status_code == 200

    clock.now += 601  # the emulator's clock: the token is now expired
    expired = client.get(CUSTOMERS, headers=_bearer(first))
    assert expired.status_code == 401
    assert expired.json()["error"]["status"] == "UNAUTHENTICATED"
    assert expired.headers["WWW-Authenticate"].startswith("Bearer")

    creds.refresh(request)
    assert creds.token != first
    assert client.get(CUSTOMERS, headers=_bearer(creds.token)).status_code == 200
    assert emu.counts()["token"] == 2
    grant = emu.request_log[0].body
    assert grant["grant_type"] == JWT_GRANT


def test_short_lived_tokens_are_refreshed_before_each_request(
    key_file: Path, emu: Emulator, client: httpx.Client
) -> None:
    emu.faults.token_ttl_s = 60  # under google-auth's refresh threshold: never "valid"
    creds = _credentials(key_file)
    request = HttpxRequest(client)
    for _ in range(2):
        headers: dict[str, str] = {}
        creds.before_request(request, "GET", CUSTOMERS, headers)
        assert client.get(CUSTOMERS, headers=headers).status_code == 200
    assert emu.counts()["token"] == 2


@pytest.mark.parametrize(
    ("scopes", "fragment"),
    [
        (["https://www.googleapis.com/auth/cloud-platform"], "invalid_scope: Invalid OAuth scope"),
        ([], "invalid_scope: Empty or missing scope"),
    ],
)
def test_wrong_scope_is_refused(
    key_file: Path, client: httpx.Client, scopes: list[str], fragment: str
) -> None:
    creds = _credentials(key_file, scopes)
    with pytest.raises(google.auth.exceptions.RefreshError, match=fragment):
        creds.refresh(HttpxRequest(client))


def _unregistered_key(path: Path) -> Path:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "private_key_id": "f" * 40,
        "private_key": pem,
        "client_email": "stranger@elsewhere.iam.gserviceaccount.com",
        "token_uri": IN_PROCESS_TOKEN_URI,
    }
    path.write_text(json.dumps(info))
    return path


def test_unknown_keys_are_refused_until_registered(
    tmp_path: Path, emu: Emulator, client: httpx.Client
) -> None:
    path = _unregistered_key(tmp_path / "other.json")
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        _credentials(path).refresh(HttpxRequest(client))
    emu.register_key_file(path)
    creds = _credentials(path)
    creds.refresh(HttpxRequest(client))
    assert client.get(CUSTOMERS, headers=_bearer(creds.token)).status_code == 200


def test_token_endpoint_refuses_bad_grants(
    key_file: Path, emu: Emulator, client: httpx.Client
) -> None:
    wrong = client.post("/token", data={"grant_type": "password", "username": "x"})
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "unsupported_grant_type"
    creds = _credentials(key_file)
    assertion = creds._make_authorization_grant_assertion().decode()  # what refresh() sends
    head, body, sig = assertion.split(".")
    for bad in (f"{head}.{body}.{sig[:-4]}AAAA", "not-a-jwt", f"{head}.{body}"):
        answer = client.post("/token", data={"grant_type": JWT_GRANT, "assertion": bad})
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_grant"
    emu.wall_clock = lambda: datetime.now(UTC).timestamp() + 7200  # the JWT is stale by then
    stale = client.post("/token", data={"grant_type": JWT_GRANT, "assertion": assertion})
    assert stale.json()["error"] == "invalid_grant"
    assert "short-lived" in stale.json()["error_description"]
    assert client.get("/token").status_code == 405


def test_api_requires_an_issued_bearer_token(
    key_file: Path, emu: Emulator, client: httpx.Client
) -> None:
    assert client.get(CUSTOMERS).status_code == 401
    assert client.get(CUSTOMERS, headers=_bearer("ya29.forged")).status_code == 401
    assert client.get(CUSTOMERS, headers={"Authorization": "Basic eDp5"}).status_code == 401
    # 401 comes before the partner check, so a stranger learns nothing about partner ids
    assert client.get("/v1/partners/1/customers").status_code == 401
    creds = _credentials(key_file)
    creds.refresh(HttpxRequest(client))
    assert client.get(CUSTOMERS, params={"access_token": creds.token}).status_code == 200
    assert client.get("/v1/partners/1/customers", headers=_bearer(creds.token)).status_code == 403


def test_anonymous_mode_accepts_any_or_no_authorization() -> None:
    emu = Emulator(generate_fleet(devices=10, customers=2, seed=1, partner_id=PID))
    with httpx.Client(transport=emu.transport(), base_url="http://x") as client:
        assert client.get(CUSTOMERS).status_code == 200
        assert client.get(CUSTOMERS, headers=_bearer("anything")).status_code == 200


def test_token_endpoint_is_exempt_from_faults_unless_asked(
    key_file: Path, emu: Emulator, client: httpx.Client
) -> None:
    emu.faults.script = [503]
    creds = _credentials(key_file)
    creds.refresh(HttpxRequest(client))
    assert emu.faults.script == [503]
    assert client.get(CUSTOMERS, headers=_bearer(creds.token)).status_code == 503
    emu.faults.faults_on_token = True
    emu.faults.script = [503]
    assert client.post("/token", data={}).status_code == 503


def test_google_auth_over_the_loopback_server(key_file: Path) -> None:
    fleet = generate_fleet(devices=40, customers=3, seed=4, partner_id=PID)
    emu = Emulator(fleet, auth="token")
    with serve(emu) as server, httpx.Client() as http:
        info = {**json.loads(key_file.read_text()), "token_uri": server.token_uri}
        creds = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
        creds.refresh(HttpxRequest(http))
        assert http.get(server.url + CUSTOMERS).status_code == 401
        answer = http.get(server.url + CUSTOMERS, headers=_bearer(creds.token))
        assert answer.status_code == 200
        assert answer.json()["customers"] == list(emu.iter_customers())

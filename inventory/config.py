"""Configuration: ``zt-inventory.toml`` plus ``ZT_INVENTORY_<SECTION>_<KEY>`` overrides.

Every problem is collected, then raised once as a :class:`ConfigError` whose ``errors`` hold one
line each, naming the key and the expected form. ``config.example.toml`` is the documented
reference of every key.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from inventory.errors import ConfigError

DEFAULT_CONFIG_FILE = "zt-inventory.toml"
ENV_PREFIX = "ZT_INVENTORY_"
GOOGLE_ENDPOINT = "https://androiddeviceprovisioning.googleapis.com"
SECTION_TYPES = ("SECTION_TYPE_SIM_LOCK", "SECTION_TYPE_ZERO_TOUCH")
INT64_MAX = 2**63 - 1
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?LW#-]+$")


@dataclass(frozen=True)
class PartnerSettings:
    id: int | None = None


@dataclass(frozen=True)
class AuthSettings:
    credentials: str = "service-account.json"


@dataclass(frozen=True)
class ApiSettings:
    endpoint: str = GOOGLE_ENDPOINT
    page_size: int = 100
    concurrency: int = 4
    quota_per_100s: int = 1000
    quota_window_s: float = 100.0
    timeout_s: float = 30.0
    max_retries: int = 8


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///zt-inventory.db"


@dataclass(frozen=True)
class SyncSettings:
    section_types: tuple[str, ...] = ("SECTION_TYPE_ZERO_TOUCH",)
    customers: tuple[int, ...] = ()
    google_workspace_customer_ids: tuple[str, ...] = ()
    identifiers_file: str = ""
    max_removed_fraction: float = 0.2


@dataclass(frozen=True)
class ScheduleSettings:
    cron: str | None = "0 * * * *"
    interval_minutes: float | None = None


@dataclass(frozen=True)
class Settings:
    """Every setting of zt-inventory, validated."""

    partner: PartnerSettings = field(default_factory=PartnerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    source: Path | None = None

    @property
    def is_google_endpoint(self) -> bool:
        """True when the endpoint is a googleapis.com host (anonymous auth is refused there)."""
        return is_google_host(self.api.endpoint)


def settings_for_endpoint(
    endpoint: str,
    partner_id: int,
    database_url: str,
    *,
    credentials: str = "anonymous",
    api: Mapping[str, Any] | None = None,
    sync: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings for a sync against ``endpoint`` (the emulator, in the demo, tests and benchmarks):
    defaults everywhere else, ``api`` and ``sync`` overriding fields of their sections."""
    return Settings(
        partner=PartnerSettings(id=partner_id),
        auth=AuthSettings(credentials=credentials),
        api=ApiSettings(**{"endpoint": endpoint, **(api or {})}),
        database=DatabaseSettings(url=database_url),
        sync=SyncSettings(**(sync or {})),
    )


def is_google_host(endpoint: str) -> bool:
    """True for ``googleapis.com`` and its subdomains."""
    host = (urlsplit(endpoint).hostname or "").lower().rstrip(".")
    return host == "googleapis.com" or host.endswith(".googleapis.com")


# --- value parsers: each returns the value or raises ValueError with the expected form --------


def _int(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"an integer from {lo} to {hi}")
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            value = int(value)
        if not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"an integer from {lo} to {hi}")
        return value

    return parse


def _float(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[Any], float]:
    bound = f"greater than {lo}" if lo_open else f"from {lo}"

    def parse(value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"a number {bound} to {hi}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"a number {bound} to {hi}")
        if not (lo < value if lo_open else lo <= value) or value > hi:
            raise ValueError(f"a number {bound} to {hi}")
        return float(value)

    return parse


def _int64_id(value: Any) -> int:
    expected = 'a positive int64 id, written as a string, e.g. "1234567"'
    if isinstance(value, bool):
        raise ValueError(expected)
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        value = int(value)
    if not isinstance(value, int) or not 0 < value <= INT64_MAX:
        raise ValueError(expected)
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a string")
    return value


def _endpoint(value: Any) -> str:
    expected = "an http(s) URL, e.g. https://androiddeviceprovisioning.googleapis.com"
    if not isinstance(value, str):
        raise ValueError(expected)
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(expected)
    return value.strip().rstrip("/")


def _database_url(value: Any) -> str:
    expected = (
        "a SQLAlchemy URL, e.g. sqlite:///zt-inventory.db or postgresql+psycopg://user@host/db"
    )
    if not isinstance(value, str) or not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
        raise ValueError(expected)
    return value


def _list(value: Any) -> list[Any]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = tomllib.loads(f"v = {text}")["v"]
            except tomllib.TOMLDecodeError:
                raise ValueError('a list, e.g. ["A", "B"]') from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, list):
        raise ValueError("a list")
    return value


def _section_types(value: Any) -> tuple[str, ...]:
    expected = "a non-empty list of " + " or ".join(SECTION_TYPES)
    try:
        items = _list(value)
    except ValueError:
        raise ValueError(expected) from None
    if not items or any(item not in SECTION_TYPES for item in items):
        raise ValueError(expected)
    return tuple(dict.fromkeys(items))


def _customers(value: Any) -> tuple[int, ...]:
    expected = 'a list of customer ids (int64, as strings), e.g. ["1234", "5678"]'
    try:
        return tuple(dict.fromkeys(_int64_id(item) for item in _list(value)))
    except ValueError:
        raise ValueError(expected) from None


def _workspace_ids(value: Any) -> tuple[str, ...]:
    expected = 'a list of Google Workspace customer ids, e.g. ["C01abc2de"]'
    try:
        items = _list(value)
    except ValueError:
        raise ValueError(expected) from None
    if not all(isinstance(i, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", i) for i in items):
        raise ValueError(expected)
    return tuple(dict.fromkeys(items))


def _credentials(value: Any) -> str:
    expected = 'a path to a service-account key file, "adc" or "anonymous"'
    if not isinstance(value, str) or not value.strip():
        raise ValueError(expected)
    return value.strip()


def _cron(value: Any) -> str:
    expected = 'a five-field crontab expression, e.g. "0 * * * *"'
    if not isinstance(value, str):
        raise ValueError(expected)
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(expected)
    return " ".join(fields)


SCHEMA: dict[str, dict[str, Callable[[Any], Any]]] = {
    "partner": {"id": _int64_id},
    "auth": {"credentials": _credentials},
    "api": {
        "endpoint": _endpoint,
        "page_size": _int(1, 100),
        "concurrency": _int(1, 64),
        "quota_per_100s": _int(0, 1_000_000),
        "quota_window_s": _float(0, 86_400, lo_open=True),
        "timeout_s": _float(0, 3_600, lo_open=True),
        "max_retries": _int(0, 50),
    },
    "database": {"url": _database_url},
    "sync": {
        "section_types": _section_types,
        "customers": _customers,
        "google_workspace_customer_ids": _workspace_ids,
        "identifiers_file": _str,
        "max_removed_fraction": _float(0, 1),
    },
    "schedule": {"cron": _cron, "interval_minutes": _float(0, 525_600, lo_open=True)},
}


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _env_overrides(environ: Mapping[str, str], errors: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    names = [f"{ENV_PREFIX}{s.upper()}_{k.upper()}" for s, keys in SCHEMA.items() for k in keys]
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        for section, keys in SCHEMA.items():
            for key in keys:
                if name == f"{ENV_PREFIX}{section.upper()}_{key.upper()}":
                    found.setdefault(section, {})[key] = value
                    break
            else:
                continue
            break
        else:
            errors.append(f"environment variable {name} is not a setting{_suggest(name, names)}")
    return found


def load_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    database_url: str | None = None,
    explicit: bool = False,
) -> Settings:
    """Read, merge and validate the configuration.

    Args:
        path: the TOML file; when None, ``./zt-inventory.toml`` if it exists, else defaults.
        environ: the environment to read ``ZT_INVENTORY_*`` overrides from (default os.environ).
        database_url: a ``--database-url`` override, applied last.
        explicit: the path was given by the user (``--config``), so it must exist.

    Raises:
        ConfigError: with one line per problem found.
    """
    environ = os.environ if environ is None else environ
    errors: list[str] = []
    raw: dict[str, Any] = {}
    source: Path | None = None
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None:
        source = Path(path)
        try:
            raw = tomllib.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if explicit or source.name != DEFAULT_CONFIG_FILE:
                raise ConfigError(
                    f"config file {source} does not exist; copy config.example.toml there "
                    "or pass --config PATH"
                ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {source} cannot be read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {source} is not valid TOML: {exc}") from None

    values: dict[str, dict[str, Any]] = {}
    for section, body in raw.items():
        if section not in SCHEMA:
            errors.append(f"[{section}] is not a config section{_suggest(section, list(SCHEMA))}")
            continue
        if not isinstance(body, dict):
            errors.append(f"{section} must be a [{section}] table of keys")
            continue
        for key, value in body.items():
            if key not in SCHEMA[section]:
                hint = _suggest(key, list(SCHEMA[section]))
                errors.append(f"{section}.{key} is not a setting{hint}")
                continue
            values.setdefault(section, {})[key] = value
    for section, body in _env_overrides(environ, errors).items():
        values.setdefault(section, {}).update(body)
    if database_url is not None:
        values.setdefault("database", {})["url"] = database_url

    parsed: dict[str, dict[str, Any]] = {}
    for section, body in values.items():
        for key, value in body.items():
            try:
                parsed.setdefault(section, {})[key] = SCHEMA[section][key](value)
            except ValueError as exc:
                errors.append(
                    f"{section}.{key} = {_show(section, key, value)} is invalid; expected {exc}"
                )

    schedule = parsed.get("schedule", {})
    if "interval_minutes" in schedule:
        if "cron" in schedule:
            errors.append("schedule: set either cron or interval_minutes, not both")
        schedule["cron"] = None

    base = source.parent if source is not None else Path.cwd()
    for section, key in (("auth", "credentials"), ("sync", "identifiers_file")):
        value = parsed.get(section, {}).get(key)
        if value and value.lower() not in ("adc", "anonymous") and not Path(value).is_absolute():
            parsed[section][key] = str(base / value)

    settings = Settings(
        partner=PartnerSettings(**parsed.get("partner", {})),
        auth=AuthSettings(**parsed.get("auth", {})),
        api=ApiSettings(**parsed.get("api", {})),
        database=DatabaseSettings(**parsed.get("database", {})),
        sync=SyncSettings(**parsed.get("sync", {})),
        schedule=ScheduleSettings(**schedule),
        source=source,
    )
    endpoint_ok = not any(e.startswith("api.endpoint") for e in errors)
    if (
        settings.auth.credentials.lower() == "anonymous"
        and endpoint_ok
        and settings.is_google_endpoint
    ):
        errors.append(
            'auth.credentials = "anonymous" is allowed only for a non-Google api.endpoint '
            '(emulator, tests); use a service-account key file or "adc"'
        )
    if errors:
        raise ConfigError(errors)
    return settings


def _show(section: str, key: str, value: Any) -> str:
    if section == "database" and isinstance(value, str):
        return repr(re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", value))
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def require_for_sync(settings: Settings) -> None:
    """Check what a sync needs beyond a valid file: a partner id and readable credentials.

    Raises:
        ConfigError: one line per missing piece.
    """
    errors: list[str] = []
    if settings.partner.id is None:
        errors.append(
            'partner.id is not set; expected your reseller partner id, e.g. id = "1234567" '
            "under [partner] (or ZT_INVENTORY_PARTNER_ID)"
        )
    creds = settings.auth.credentials
    if creds.lower() not in ("adc", "anonymous") and not Path(creds).is_file():
        errors.append(
            f"auth.credentials: key file {creds} does not exist; expected a service-account "
            'key file path, "adc" or "anonymous"'
        )
    ident = settings.sync.identifiers_file
    if ident and not Path(ident).is_file():
        errors.append(f"sync.identifiers_file: {ident} does not exist; expected a CSV file path")
    if errors:
        raise ConfigError(errors)

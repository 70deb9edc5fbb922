"""Reading the configuration: its sources, their order, validation, and what a sync needs.

Sources, a later one winning over an earlier one: the declared defaults < the config file (or a
mapping given to :func:`settings_from`) < ``ZT_INVENTORY_*`` environment variables <
``--database-url``. A relative path that a file gave is relative to the file's folder; one from
the environment or the command line, to the working directory.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inventory.config.parsers import KEYWORD_CREDENTIALS, Invalid, is_google_host, shown
from inventory.config.settings import (
    ENV_PREFIX,
    ONE_OF,
    PARTNER_KEYS,
    PARTNER_REQUIRED,
    SECTIONS,
    SETTINGS,
    PartnerSection,
    PartnerSettings,
    Setting,
    Settings,
    env_var,
    label_of,
)
from inventory.errors import ConfigError

DEFAULT_CONFIG_FILE = "zt-inventory.toml"
_BAD = object()  # what _read returns for a value it reported as invalid


@dataclass(frozen=True)
class _Given:
    """A value as one source gave it."""

    value: Any
    origin: str | None = None  # the environment variable or option; None: a file or a mapping
    base: Path | None = None  # the folder a relative path in it is relative to; None: as is


_Layer = dict[str, dict[str, _Given]]


def settings_from(values: Mapping[str, Any], *, base: Path | None = None) -> Settings:
    """Validate ``values`` exactly as if they had been read from a config file.

    Args:
        values: sections as the TOML file has them, e.g. ``{"api": {"page_size": 50}}``, and
            optionally ``"partners"``: a list of ``[[partners]]`` tables.
        base: the folder relative paths are relative to; None leaves them as given.

    Raises:
        ConfigError: with one line per problem found.

    Example:
        ``settings_from({"partner": {"id": 1}, "api": {"endpoint": "http://127.0.0.1:8080"}})``
    """
    return _settings(values, base=base, environ={}, database_url=None, source=None)


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
    return _settings(
        raw,
        base=source.parent if source is not None else None,
        environ=os.environ if environ is None else environ,
        database_url=database_url,
        source=source,
    )


def _settings(
    values: Mapping[str, Any],
    *,
    base: Path | None,
    environ: Mapping[str, str],
    database_url: str | None,
    source: Path | None,
) -> Settings:
    errors: list[str] = []
    layers = [_file_layer(values, base, errors), _env_layer(environ, errors)]
    if database_url is not None:
        layers.append({"database": {"url": _Given(database_url, origin="--database-url")}})
    given = _merge(layers, errors)
    parsed = {
        section: _read_section(section, given.get(section, {}), errors) for section in SETTINGS
    }
    sections = {section: SECTIONS[section](**body) for section, body in parsed.items()}

    endpoint = given.get("api", {}).get("endpoint")
    refused = None  # names the endpoint when it is Google's, where anonymous auth is refused
    # (the default stands in for an invalid endpoint, reported already: it decides nothing)
    if (endpoint is None or "endpoint" in parsed["api"]) and is_google_host(
        sections["api"].endpoint
    ):
        refused = label_of("api.endpoint", endpoint.origin if endpoint else None)
    credentials = given.get("auth", {}).get("credentials")
    if refused and credentials is not None and sections["auth"].credentials.lower() == "anonymous":
        errors.append(_anonymous(_assignment("auth.credentials", credentials), refused))
    partners = _partners(values.get("partners"), base, given, sections, refused, errors)
    if "partners" in values and partners:
        sections["partner"] = PartnerSection(id=partners[0].id)
    if errors:
        raise ConfigError(errors)
    origins = {
        f"{section}.{key}": value.origin
        for section, body in given.items()
        for key, value in body.items()
        if value.origin is not None
    }
    return Settings(**sections, partners=partners, source=source, origins=origins)


def require_for_sync(settings: Settings) -> None:
    """Check what a sync needs beyond valid settings: a partner, and each partner's key file.

    Raises:
        ConfigError: one line per missing piece, naming the partner it concerns.
    """
    errors: list[str] = []
    if not settings.partners:
        errors.append(
            'partner.id is not set; expected your reseller partner id, e.g. id = "1234567" '
            "under [partner] (or ZT_INVENTORY_PARTNER_ID), or a [[partners]] table for each "
            "reseller account"
        )
    auth = settings.auth.credentials
    missing: dict[tuple[str, str], list[int]] = {}  # (key, file) -> the partners it fails
    for partner in settings.partners or (None,):
        path = auth if partner is None else partner.credentials
        if path.lower() in KEYWORD_CREDENTIALS or Path(path).is_file():
            continue
        key = settings.label("auth.credentials") if path == auth else "credentials"
        missing.setdefault((key, path), []).extend([] if partner is None else [partner.id])
    for (key, path), ids in missing.items():
        errors.append(
            f"{_whose(ids)}{key}: key file {path} does not exist; expected a service-account "
            'key file path, "adc" or "anonymous"'
        )
    ident = settings.sync.identifiers_file
    if ident and not Path(ident).is_file():
        name = settings.label("sync.identifiers_file")
        errors.append(f"{name}: {ident} does not exist; expected a CSV file path")
    if errors:
        raise ConfigError(errors)


def _whose(ids: list[int]) -> str:
    """``partner 1: ``, ``partners 1, 2: `` or nothing, before a problem of those partners."""
    if not ids:
        return ""
    return f"partner{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}: "


# --- sources --------------------------------------------------------------------------------


def _file_layer(values: Mapping[str, Any], base: Path | None, errors: list[str]) -> _Layer:
    """The sections of a file (``[[partners]]`` aside), checked for unknown names."""
    layer: _Layer = {}
    for section, body in values.items():
        if section == "partners":
            continue
        if section not in SETTINGS:
            hint = _suggest(section, [*SETTINGS, "partners"])
            errors.append(f"[{section}] is not a config section{hint}")
        elif not isinstance(body, Mapping):
            errors.append(f"{section} must be a [{section}] table of keys")
        else:
            for key, value in body.items():
                if key in SETTINGS[section]:
                    layer.setdefault(section, {})[key] = _Given(value, base=base)
                else:
                    errors.append(
                        f"{section}.{key} is not a setting{_suggest(key, list(SETTINGS[section]))}"
                    )
    return layer


def _env_layer(environ: Mapping[str, str], errors: list[str]) -> _Layer:
    """The ``ZT_INVENTORY_<SECTION>_<KEY>`` variables; any other ``ZT_INVENTORY_*`` is an error."""
    by_name = {s.env: s for keys in SETTINGS.values() for s in keys.values()}
    layer: _Layer = {}
    for name in sorted(environ):
        if name in by_name:
            s = by_name[name]
            layer.setdefault(s.section, {})[s.key] = _Given(environ[name], origin=name)
        elif name.startswith(env_var("partners", "")):
            errors.append(
                f"environment variable {name} is not a setting; [[partners]] tables are set "
                "in the config file only"
            )
        elif name.startswith(ENV_PREFIX):
            errors.append(
                f"environment variable {name} is not a setting{_suggest(name, list(by_name))}"
            )
    return layer


def _merge(layers: list[_Layer], errors: list[str]) -> _Layer:
    """Later layers win; choosing one key of a ``ONE_OF`` group drops an earlier layer's other."""
    merged: _Layer = {}
    for layer in layers:
        for section, body in layer.items():
            one_of = ONE_OF[section]
            chosen = [key for key in one_of if key in body]
            if len(chosen) > 1:
                names = " or ".join(body[key].origin or key for key in chosen)
                errors.append(f"{section}: set either {names}, not both")
            target = merged.setdefault(section, {})
            for key in one_of if chosen else ():
                target.pop(key, None)
            target.update(body)
    return merged


# --- values ---------------------------------------------------------------------------------


def _read_section(section: str, body: dict[str, _Given], errors: list[str]) -> dict[str, Any]:
    """The valid values of a section; the keys of its ``ONE_OF`` group not chosen are None."""
    keys = SETTINGS[section]
    read = {key: _read(keys[key], given, keys[key].name, errors) for key, given in body.items()}
    parsed = {key: value for key, value in read.items() if value is not _BAD}
    if any(key in body for key in ONE_OF[section]):
        parsed.update({key: None for key in ONE_OF[section] if key not in body})
    return parsed


def _read(setting: Setting, given: _Given, name: str, errors: list[str]) -> Any:
    """The value ``given`` for ``setting`` (named ``name`` in errors), or _BAD, reported."""
    try:
        value = setting.parse(given.value, given.origin is not None)
    except Invalid as exc:
        where = _assignment(name, given, secret=setting.secret)
        if exc.written is None:
            errors.append(f"{where} is invalid; expected {exc.expected}")
        else:
            errors.append(
                f"{where} is a string; write {setting.key} = {exc.written} "
                f"(expected {exc.expected})"
            )
        return _BAD
    if setting.resolve is not None and given.base is not None:
        return setting.resolve(value, given.base)
    return value


def _assignment(name: str, given: _Given, *, secret: bool = False) -> str:
    """``api.page_size = 0``, ``ZT_INVENTORY_API_PAGE_SIZE = '0' (api.page_size)`` or
    ``--database-url 'x' (database.url)``."""
    value = shown(given.value, secret=secret)
    if given.origin is None:
        return f"{name} = {value}"
    equals = " " if given.origin.startswith("-") else " = "
    return f"{given.origin}{equals}{value} ({name})"


def _anonymous(where: str, endpoint: str) -> str:
    return (
        f"{where} is allowed only when {endpoint} is not a googleapis.com host "
        '(emulator, tests); use a service-account key file or "adc"'
    )


def _suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# --- [[partners]] ---------------------------------------------------------------------------


def _partners(
    tables: Any,
    base: Path | None,
    given: _Layer,
    sections: dict[str, Any],
    endpoint: str | None,
    errors: list[str],
) -> tuple[PartnerSettings, ...]:
    """The reseller accounts: ``[[partners]]`` tables, or the ``[partner] id`` shorthand.

    ``endpoint`` names a Google endpoint, where anonymous credentials are refused; else None.
    """
    inherited = {key: getattr(sections[s.section], s.key) for key, s in PARTNER_KEYS.items()}
    if tables is None:
        return () if inherited["id"] is None else (PartnerSettings(**inherited),)
    if not isinstance(tables, list | tuple) or not tables:
        errors.append("partners must be [[partners]] tables, one per reseller account")
        return ()
    shorthand = given.get("partner", {}).get("id")
    if shorthand is not None:
        name = label_of("[partner] id", shorthand.origin)
        errors.append(f"partners: set either {name} or [[partners]] tables, not both")
    partners: list[PartnerSettings] = []
    first: dict[int, int] = {}  # partner id -> the number of the table that has it first
    for number, table in enumerate(tables, start=1):
        own = _partner(number, table, base, endpoint, first, errors)
        if own is not None:
            partners.append(PartnerSettings(**{**inherited, **own}))
    return tuple(partners)


def _partner(
    number: int,
    table: Any,
    base: Path | None,
    endpoint: str | None,
    first: dict[int, int],
    errors: list[str],
) -> dict[str, Any] | None:
    """The keys the ``number``th ``[[partners]]`` table sets, or None when it has problems
    (reported). ``first`` maps each id seen so far to the table that has it."""
    label = f"partners[{number}]"
    if not isinstance(table, Mapping):
        errors.append(f"{label}: expected a [[partners]] table of keys")
        return None
    problems: list[str] = []
    own: dict[str, Any] = {}
    for key, value in table.items():
        if key not in PARTNER_KEYS:
            problems.append(f"{key} is not a setting{_suggest(key, list(PARTNER_KEYS))}")
            continue
        read = _read(PARTNER_KEYS[key], _Given(value, base=base), key, problems)
        if read is not _BAD:
            own[key] = read
    problems += [
        f"{key} is not set; each [[partners]] table needs its own {key}"
        for key in PARTNER_REQUIRED
        if key not in table
    ]
    if endpoint is not None and str(own.get("credentials", "")).lower() == "anonymous":
        problems.append(
            _anonymous(_assignment("credentials", _Given(table["credentials"])), endpoint)
        )
    if "id" in own:
        label = f"{label} (id {own['id']})"
        if own["id"] in first:
            problems.append(
                f"partners[{first[own['id']]}] has the same id; list each reseller account once"
            )
        else:
            first[own["id"]] = number
    errors.extend(f"{label}: {problem}" for problem in problems)
    return None if problems else own

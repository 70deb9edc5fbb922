"""How a setting's value is read: one parser per kind of value, each naming the form it expects.

A parser is called as ``parse(value, text)``. ``text`` is True for a value that came as text (an
environment variable, a command-line option), which is read into the setting's type; it is False
for a TOML value (the config file, or a mapping given to ``settings_from``), where a string is
never taken for a number or a list: the error says how to write it instead
(:attr:`Invalid.written`). A parser raises :class:`Invalid` with the expected form.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

from inventory.redact import scrub

T = TypeVar("T")
Parse: TypeAlias = Callable[[Any, bool], T]
Resolve: TypeAlias = Callable[[Any, Path], Any]

GOOGLE_ENDPOINT = "https://androiddeviceprovisioning.googleapis.com"
SECTION_TYPES = ("SECTION_TYPE_SIM_LOCK", "SECTION_TYPE_ZERO_TOUCH")
INT64_MAX = 2**63 - 1
KEYWORD_CREDENTIALS = ("adc", "anonymous")
DATABASE_EXAMPLES = "sqlite:///zt-inventory.db or postgresql+psycopg://user@host/db"
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?LW#-]+$")
_SCHEME = re.compile(r"^([A-Za-z][\w+.-]*)://")
_SQLITE = re.compile(r"^(sqlite(?:\+\w+)?:///)([^?]*)(\?.*)?$")


class Invalid(ValueError):
    """A value that does not parse.

    Attributes:
        expected: the form a value must have, e.g. "an integer from 1 to 100".
        written: for a string in TOML where a number or a list belongs, and whose text would be
            a valid value, that value as TOML writes it (``100``, ``["A"]``); else None.
    """

    def __init__(self, expected: str, written: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.written = written


def typed(expected: str, read_text: Callable[[str], Any], check: Callable[[Any], T]) -> Parse[T]:
    """A parser for a number or a list.

    Args:
        expected: the form, for the error.
        read_text: turns text (an environment variable) into the TOML value it stands for.
        check: takes a TOML value and returns the setting's value; raises ValueError.
    """

    def parse(value: Any, text: bool) -> T:
        if not isinstance(value, str):
            return _checked(check, value, expected)
        try:
            read = read_text(value)
        except ValueError:
            raise Invalid(expected) from None
        checked = _checked(check, read, expected)
        if text:
            return checked
        raise Invalid(expected, written=json.dumps(read))

    return parse


def _checked(check: Callable[[Any], T], value: Any, expected: str) -> T:
    try:
        return check(value)
    except ValueError:
        raise Invalid(expected) from None


def _bound(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _read_int(text: str) -> int:
    if not re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):
        raise ValueError(text)
    return int(text)


def integer(lo: int, hi: int) -> Parse[int]:
    """An integer from ``lo`` to ``hi``, both included."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(value)
        return value

    return typed(f"an integer from {lo} to {hi}", _read_int, check)


def number(lo: float, hi: float, *, above: bool = False) -> Parse[float]:
    """A number from ``lo`` (or, with ``above``, greater than ``lo``) to ``hi``."""
    low = f"greater than {_bound(lo)} and at most" if above else f"from {_bound(lo)} to"

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(value)
        if not (lo < value if above else lo <= value) or not value <= hi:
            raise ValueError(value)
        return float(value)

    return typed(f"a number {low} {_bound(hi)}", float, check)


def _read_list(text: str) -> list[Any]:
    """``["a", "b"]`` (a TOML array) or ``a,b``."""
    text = text.strip()
    if text.startswith("["):
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            raise ValueError(text) from None
        return list(value)
    return [part.strip() for part in text.split(",") if part.strip()]


def _list_of(
    check_item: Callable[[Any], T], *, empty: bool = True
) -> Callable[[Any], tuple[T, ...]]:
    def check(value: Any) -> tuple[T, ...]:
        # A tuple is a list too, for settings built in code (TOML itself has no tuples).
        if not isinstance(value, list | tuple) or not (empty or value):
            raise ValueError(value)
        return tuple(dict.fromkeys(check_item(item) for item in value))

    return check


def int64_id(value: Any, text: bool = False) -> int:
    """A positive int64 id, as an integer or a string of digits (the API writes them as strings).

    The same in TOML and in text: the spec writes ids as strings, so a string is no coercion.
    """
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= INT64_MAX:
        raise Invalid('a positive int64 id, written as a string, e.g. "1234567"')
    return value


def _section_type(item: Any) -> str:
    if item not in SECTION_TYPES:
        raise ValueError(item)
    return str(item)


def _workspace_id(item: Any) -> str:
    if not isinstance(item, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", item):
        raise ValueError(item)
    return item


def _customer_id(item: Any) -> int:
    try:
        return int64_id(item)
    except Invalid:
        raise ValueError(item) from None


section_types = typed(
    "a non-empty list of " + " or ".join(SECTION_TYPES),
    _read_list,
    _list_of(_section_type, empty=False),
)
customers = typed(
    'a list of customer ids (int64, as strings), e.g. ["1234", "5678"]',
    _read_list,
    _list_of(_customer_id),
)
workspace_ids = typed(
    'a list of Google Workspace customer ids, e.g. ["C01abc2de"]',
    _read_list,
    _list_of(_workspace_id),
)


def string(value: Any, text: bool = False) -> str:
    """Any string."""
    if not isinstance(value, str):
        raise Invalid("a string")
    return value


def credentials(value: Any, text: bool = False) -> str:
    """A key file path, ``adc`` or ``anonymous``."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid('a path to a service-account key file, "adc" or "anonymous"')
    return value.strip()


def endpoint(value: Any, text: bool = False) -> str:
    """An http(s) URL, without a trailing slash."""
    expected = f"an http(s) URL, e.g. {GOOGLE_ENDPOINT}"
    if not isinstance(value, str):
        raise Invalid(expected)
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(expected)
    return value.strip().rstrip("/")


def database_url(value: Any, text: bool = False) -> str:
    """A SQLAlchemy URL of SQLite or PostgreSQL, the two databases zt-inventory supports."""
    expected = f"a SQLite or PostgreSQL URL, e.g. {DATABASE_EXAMPLES}"
    match = _SCHEME.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise Invalid(expected)
    backend = match[1].split("+")[0].lower()
    if backend == "postgres":
        raise Invalid(f"{expected}; the scheme is postgresql://, not postgres://")
    if backend not in ("sqlite", "postgresql"):
        raise Invalid(f"{expected}; {backend} is not supported")
    return str(value).strip()


def cron(value: Any, text: bool = False) -> str:
    """A five-field crontab expression."""
    expected = 'a five-field crontab expression, e.g. "0 * * * *"'
    if not isinstance(value, str):
        raise Invalid(expected)
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise Invalid(expected)
    return " ".join(fields)


# --- relative paths: a value from a file is relative to the file's folder --------------------


def file_path(value: str, base: Path) -> str:
    """A path (empty: none), relative to ``base`` unless absolute."""
    if not value or Path(value).is_absolute():
        return value
    return str(base / value)


def credentials_path(value: str, base: Path) -> str:
    """A key file path relative to ``base``; ``adc`` and ``anonymous`` are no paths."""
    return value if value.lower() in KEYWORD_CREDENTIALS else file_path(value, base)


def sqlite_path(url: str, base: Path) -> str:
    """A SQLite URL's file relative to ``base``; absolute paths, ``:memory:``, ``file:`` URIs
    and PostgreSQL URLs are left alone."""
    match = _SQLITE.match(url)
    if match is None or match[2] in ("", ":memory:") or match[2].startswith("file:"):
        return url
    return f"{match[1]}{file_path(match[2], base)}{match[3] or ''}"


# --- showing a value in an error --------------------------------------------------------------


def shown(value: Any, *, secret: bool = False) -> str:
    """A value as an error shows it: its repr, shortened, with secrets and passwords hidden."""
    if secret:
        return "'***'"
    text = repr(scrub(value) if isinstance(value, str) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_google_host(url: str) -> bool:
    """True for ``googleapis.com`` and its subdomains."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    return host == "googleapis.com" or host.endswith(".googleapis.com")

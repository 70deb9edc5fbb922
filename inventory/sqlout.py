"""The ``sql`` command's values, one form whichever database answered, and its three formats.

PostgreSQL's driver hands over typed values (timestamps, parsed ``jsonb``, booleans); SQLite's
hands over text and integers. On SQLite the read connection asks for declared types
(``PARSE_DECLTYPES``) and :data:`SQLITE_CONVERTERS` turns a ``DATETIME`` column into an aware
UTC datetime, a ``JSON`` column into its parsed value and a ``BOOLEAN`` into a bool, as
PostgreSQL's would be; text columns come back as :class:`DeclaredText`. A value SQLite computed
(``MAX(finished_at)``, a view's ``metadata``) has no declared type: such plain text is read as a
timestamp when it has the exact form the schema stores timestamps in, and as JSON when it is a
JSON object or array (:func:`sqlite_value`).

Then one set of rules prints them (:func:`text_of`, :func:`json_of`): timestamps as ISO 8601
with offset and microseconds, JSON as compact text with sorted keys (``--format json``: nested),
booleans as ``true``/``false``, and in ``--format json`` integers a JavaScript client cannot
hold exactly (beyond ±(2^53 - 1)) as strings. Nothing here prints; ``cli`` writes the lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from itertools import chain, islice
from typing import Any

from rich.cells import cell_len

MAX_SAFE_INTEGER = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER
TABLE_WIDTH_ROWS = 10_000  # rows whose widths set the columns (later, wider values push over)
_SQLITE_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")  # SQLAlchemy's form
_ESCAPES = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})
_CONTROL = re.compile("[\n\r\t]")

Row = tuple[Any, ...]


class DeclaredText(str):
    """Text from a SQLite column declared as text: printed as it is, never reinterpreted."""

    __slots__ = ()


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _timestamp(raw: bytes) -> Any:
    text = _text(raw)
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)  # stored as UTC wall time
    except ValueError:
        return DeclaredText(text)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return DeclaredText(_text(raw))


def _boolean(raw: bytes) -> Any:
    return {b"1": True, b"0": False}.get(raw, DeclaredText(_text(raw)))


# declared type (its first word, as sqlite3 looks converters up) -> converter of the stored bytes
SQLITE_CONVERTERS: dict[str, Callable[[bytes], Any]] = {
    "DATETIME": _timestamp,
    "JSON": _json,
    "BOOLEAN": _boolean,
    "TEXT": lambda raw: DeclaredText(_text(raw)),
    "VARCHAR": lambda raw: DeclaredText(_text(raw)),
}


def sqlite_value(value: Any) -> Any:
    """A SQLite value as PostgreSQL would give it, for text SQLite computed (no declared type)."""
    if value.__class__ is not str:
        return value
    if _SQLITE_TIMESTAMP.fullmatch(value):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    if value and value[0] in "{[" and value[-1] in "}]":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def sqlite_rows(rows: Iterable[Row]) -> Iterator[Row]:
    """:func:`sqlite_value` over every value of each row."""
    for row in rows:
        yield tuple(sqlite_value(v) for v in row)


# --- one value as text, or as JSON -------------------------------------------------------------


def json_text(value: Any) -> str:
    """Compact JSON text with sorted keys: the same bytes for SQLite's text and jsonb."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _moment(value: datetime | date | time) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat(timespec="microseconds")
    return value.isoformat()


def text_of(value: Any) -> str:
    """One value as CSV or table text ("" for NULL)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return str(value)
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, datetime | date | time):
        return _moment(value)
    if isinstance(value, dict | list):
        return json_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def json_of(value: Any) -> Any:
    """One value as JSON data: nested JSON stays nested, unsafe integers become strings."""
    if value is None or value is True or value is False or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else str(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_of(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_of(v) for v in value]
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return json_of(int(value))
        return float(value)
    return text_of(value)


def json_row(columns: Sequence[str], row: Row) -> str:
    """One row as a compact JSON object, in column order."""
    data = {name: json_of(v) for name, v in zip(columns, row, strict=True)}
    return json.dumps(data, ensure_ascii=False, separators=(", ", ": "))


# --- the table ---------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    text = text_of(value)
    return text.translate(_ESCAPES) if _CONTROL.search(text) else text


def _width(text: str) -> int:
    """Terminal columns of ``text`` (wide characters count two)."""
    return len(text) if text.isascii() else cell_len(text)


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def table_lines(
    columns: Sequence[str], rows: Iterable[Row], *, width: int | None, limit: int | None
) -> Iterator[str]:
    """A query's rows as text lines, psql style; no value is ever cut short.

    Columns are as wide as their widest value (among the first :data:`TABLE_WIDTH_ROWS`
    rows; a wider value later pushes its line over instead of being cut). When the rows are
    wider than ``width`` (the terminal's), each row becomes a block of ``column | value`` lines.

    Args:
        columns: the column names.
        rows: the rows (already in one form: :func:`sqlite_rows` for SQLite).
        width: the terminal's width, or None off a terminal (never switch to blocks).
        limit: show at most this many rows (on a terminal), then count the rest; None: all.

    Yields:
        The lines, then ``(N rows)``, or how many were shown and how to get the rest.
    """
    rows = iter(rows)
    head = list(islice(rows, TABLE_WIDTH_ROWS if limit is None else limit))
    cells = [[_cell(v) for v in row] for row in head]
    widths = [_width(name) for name in columns]
    right = [True] * len(columns)  # numbers are right-aligned
    for row, texts in zip(head, cells, strict=True):
        for i, (value, text) in enumerate(zip(row, texts, strict=True)):
            widths[i] = max(widths[i], _width(text))
            if value is not None and not _numeric(value):
                right[i] = False
    # rows past the first ones: all of them off a terminal, none on one (they are counted)
    rest = ([_cell(v) for v in row] for row in rows) if limit is None else iter(())
    blocks = width is not None and sum(widths) + 3 * len(widths) - 1 > width
    if not blocks:
        yield _line(columns, widths, [False] * len(columns))
        yield "-" + "-+-".join("-" * w for w in widths) + "-"
    count = 0
    for texts in chain(cells, rest):
        count += 1
        if blocks:
            yield from _block(count, columns, texts)
        else:
            yield _line(texts, widths, right)
    more = 0 if limit is None else sum(1 for _ in rows)
    if more:
        yield f"({count + more:,} rows: the first {count:,} shown, {more:,} more with --format csv)"
    else:
        yield f"({count:,} row{'' if count == 1 else 's'})"


def _line(texts: Sequence[str], widths: Sequence[int], right: Sequence[bool]) -> str:
    parts = []
    for text, w, r in zip(texts, widths, right, strict=True):
        pad = " " * (w - _width(text))
        parts.append(pad + text if r else text + pad)
    return (" " + " | ".join(parts)).rstrip()


def _block(number: int, columns: Sequence[str], texts: Sequence[str]) -> Iterator[str]:
    name_width = max(_width(name) for name in columns)
    yield f"-[ RECORD {number} ]" + "-" * max(0, name_width - 10)
    for name, text in zip(columns, texts, strict=True):
        yield (name + " " * (name_width - _width(name)) + " | " + text).rstrip()

"""The identifiers CSV (``sync.identifiers_file``, ``zt-inventory reconcile FILE``): one device a
row, each row checked before any call.

Header columns, any of the identifier columns ``imei``, ``meid``, ``serial_number``,
``manufacturer``, ``model``, ``device_type``, ``chrome_os_attested_device_id``, and the optional
``expected_company_id`` (the customer the device was shipped to) and ``order_number``.

The file is a configuration error (:class:`ConfigError`, nothing is looked up) only when it
cannot be used at all: it is missing or unreadable, or its header is undecodable, names no
identifier column, names a column twice or an unknown column. A bad row is that row's problem:
it comes back with its ``error`` set (wrong cell count, an IMEI that is not 14 to 16 digits or
fails its check digit, an MEID that is not 14 hexadecimal digits, a serial number without a
manufacturer, bytes that are not UTF-8, ...) and the caller stores it and goes on. The file is
read as bytes and decoded line by line, so that one undecodable line spoils only its own row.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inventory.errors import ConfigError
from inventory.transform import to_identifier

IDENTIFIER_COLUMNS = (
    "imei",
    "meid",
    "serial_number",
    "manufacturer",
    "model",
    "device_type",
    "chrome_os_attested_device_id",
)
EXTRA_COLUMNS = ("expected_company_id", "order_number")
COLUMNS = IDENTIFIER_COLUMNS + EXTRA_COLUMNS
DEVICE_TYPES = ("DEVICE_TYPE_ANDROID", "DEVICE_TYPE_CHROME_OS")
MAX_REPORTED = 20  # bad rows named one line each in a run's warnings; the rest are counted
_IMEI = re.compile(r"^\d{14,16}$")
_MEID = re.compile(r"^[0-9A-Fa-f]{14}$")
_COMPANY_ID = re.compile(r"^\d{1,19}$")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class IdentifierRow:
    """One data row of the identifiers CSV.

    Attributes:
        line: its line in the file (the header is line 1).
        columns: its identifier columns that have a value (``imei``, ``serial_number``, ...).
        expected_company_id: the customer it should be registered to, if the file says.
        order_number: the order it was shipped in, if the file says.
        error: why the row cannot be looked up; None for a good row.
    """

    line: int
    columns: dict[str, str] = field(default_factory=dict)
    expected_company_id: int | None = None
    order_number: str | None = None
    error: str | None = None

    @property
    def identifier(self) -> dict[str, str]:
        """The ``DeviceIdentifier`` request object of the row."""
        return to_identifier(self.columns)


def luhn_valid(digits: str) -> bool:
    """True when the last digit of ``digits`` is the Luhn check digit of the others."""
    total = 0
    for n, char in enumerate(reversed(digits)):
        value = int(char) * (2 if n % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _identifier_problem(row: dict[str, str]) -> str | None:
    imei, meid = row.get("imei", ""), row.get("meid", "")
    serial, maker = row.get("serial_number", ""), row.get("manufacturer", "")
    attested, kind = row.get("chrome_os_attested_device_id", ""), row.get("device_type", "")
    if not (imei or meid or serial or attested):
        return "needs one of imei, meid, serial_number or chrome_os_attested_device_id"
    if imei and not _IMEI.match(imei):
        return f"imei {imei!r} is not 14 to 16 digits"
    # 15 digits: the IMEI with its check digit (14: without it; 16: an IMEISV, which has none)
    if imei and len(imei) == 15 and not luhn_valid(imei):
        return f"imei {imei!r} fails its check digit (Luhn); is a digit mistyped?"
    if meid and not _MEID.match(meid):
        return f"meid {meid!r} is not 14 hexadecimal digits"
    if kind and kind not in DEVICE_TYPES:
        return f"device_type {kind!r} is not one of {', '.join(DEVICE_TYPES)}"
    if serial and not maker and kind != "DEVICE_TYPE_CHROME_OS" and not (imei or meid):
        return "serial_number needs manufacturer (serial numbers repeat across makers)"
    return None


def _row(line: int, cells: dict[str, str]) -> IdentifierRow:
    """A row from its cells by column name, checked."""
    columns = {k: v for k, v in cells.items() if k in IDENTIFIER_COLUMNS and v}
    order = cells.get("order_number") or None
    company = cells.get("expected_company_id", "")
    problem = _identifier_problem(cells)
    expected = None
    if company and _COMPANY_ID.match(company) and 0 < int(company) < 2**63:
        expected = int(company)
    elif company:
        problem = problem or f"expected_company_id {company!r} is not a company id (digits)"
    return IdentifierRow(line, columns, expected, order, problem)


def _decoded_lines(data: bytes, bad: dict[int, str]) -> Iterator[str]:
    """The file's lines as text; a line that is not UTF-8 becomes an empty line and its problem
    goes into ``bad`` by line number (so the csv reader's line count stays the file's)."""
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad[number] = (
                f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                "save the file as UTF-8"
            )
            yield "\n"


def read_identifiers(path: str | Path) -> list[IdentifierRow]:
    """Read and check the identifiers CSV.

    Returns:
        One row per data row, in file order; a bad row has ``error`` set. An empty file, or
        one with a header only, has no rows.

    Raises:
        ConfigError: the file cannot be read, or its header is unusable.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"identifiers file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(
            f"identifiers file {path} cannot be read: {exc.strerror or exc}"
        ) from None
    data = data.removeprefix(_BOM)
    if not data.strip():
        return []
    bad: dict[int, str] = {}
    reader = csv.reader(_decoded_lines(data, bad))
    header = _header(path, reader, bad)
    rows: list[IdentifierRow] = []
    end = 1  # the last line the reader has consumed
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # a NUL byte, a field over csv's size limit
            rows.append(IdentifierRow(reader.line_num, error=f"is not readable CSV: {exc}"))
            end = reader.line_num
            continue
        line, end = end + 1, reader.line_num  # a quoted cell may span lines: name the first
        if line in bad or not any(cell.strip() for cell in cells):
            continue  # a blank line; an undecodable one is reported below
        if len(cells) != len(header):
            error = f"has {len(cells)} cells, the header has {len(header)}"
            rows.append(IdentifierRow(line, error=error))
            continue
        rows.append(_row(line, {h: c.strip() for h, c in zip(header, cells, strict=True)}))
    rows += [IdentifierRow(line, error=problem) for line, problem in bad.items()]
    return sorted(rows, key=lambda r: r.line)


def _header(path: Path, reader: Iterator[list[str]], bad: dict[int, str]) -> list[str]:
    """The header row's column names, checked.

    Raises:
        ConfigError: the header is undecodable, names no identifier column, names a column
            twice or an unknown column.
    """
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as exc:
        raise ConfigError(f"{path}:1: the header row is not readable CSV: {exc}") from None
    if 1 in bad:
        raise ConfigError(f"{path}:1: the header row {bad[1]}")
    if not any(h in IDENTIFIER_COLUMNS for h in header):
        raise ConfigError(
            f"{path}:1: the header row names none of {', '.join(IDENTIFIER_COLUMNS)}; "
            "the first row must name the columns"
        )
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise ConfigError(f"{path}:1: column(s) {', '.join(map(repr, repeated))} appear twice")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise ConfigError(
            f"{path}:1: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"expected any of {', '.join(COLUMNS)}"
        )
    return header


def row_problems(path: str | Path, rows: Sequence[IdentifierRow]) -> list[str]:
    """The bad rows as warnings, one ``path:line: problem`` line each, at most
    :data:`MAX_REPORTED` of them and then one line counting the rest."""
    bad = [f"{path}:{r.line}: {r.error}; row skipped" for r in rows if r.error is not None]
    if len(bad) > MAX_REPORTED:
        more = len(bad) - MAX_REPORTED
        bad = [*bad[:MAX_REPORTED], f"{path}: ... and {more} more bad rows, skipped"]
    return bad


def describe(path: str | Path, rows: Sequence[IdentifierRow]) -> str:
    """One line on what the file holds: ``ids.csv: 12 identifiers (1 bad row)``."""
    bad = sum(1 for r in rows if r.error is not None)
    text = f"{path}: {len(rows)} identifier{'' if len(rows) == 1 else 's'}"
    return text + (f" ({bad} bad row{'' if bad == 1 else 's'}, skipped)" if bad else "")

"""The identifiers CSV (``sync.identifiers_file``): one device a row, checked before any call.

Header columns, any of: ``imei``, ``meid``, ``serial_number``, ``manufacturer``, ``model``,
``device_type``, ``chrome_os_attested_device_id``. Every bad row is reported with its line
number, all at once.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from inventory.errors import ConfigError
from inventory.transform import to_identifier

COLUMNS = (
    "imei",
    "meid",
    "serial_number",
    "manufacturer",
    "model",
    "device_type",
    "chrome_os_attested_device_id",
)
DEVICE_TYPES = ("DEVICE_TYPE_ANDROID", "DEVICE_TYPE_CHROME_OS")
MAX_ERRORS = 20
_IMEI = re.compile(r"^\d{14,16}$")
_MEID = re.compile(r"^[0-9A-Fa-f]{14}$")


def _row_problem(row: dict[str, str]) -> str | None:
    imei, meid = row.get("imei", ""), row.get("meid", "")
    serial, maker = row.get("serial_number", ""), row.get("manufacturer", "")
    attested, kind = row.get("chrome_os_attested_device_id", ""), row.get("device_type", "")
    if not (imei or meid or serial or attested):
        return "needs one of imei, meid, serial_number or chrome_os_attested_device_id"
    if imei and not _IMEI.match(imei):
        return f"imei {imei!r} is not 14 to 16 digits"
    if meid and not _MEID.match(meid):
        return f"meid {meid!r} is not 14 hexadecimal digits"
    if kind and kind not in DEVICE_TYPES:
        return f"device_type {kind!r} is not one of {', '.join(DEVICE_TYPES)}"
    if serial and not maker and kind != "DEVICE_TYPE_CHROME_OS" and not (imei or meid):
        return "serial_number needs manufacturer (serial numbers repeat across makers)"
    return None


def read_identifiers(path: str | Path) -> list[tuple[int, dict[str, str]]]:
    """Read and check the identifiers CSV.

    Returns:
        (line number, ``DeviceIdentifier`` request object) per data row.

    Raises:
        ConfigError: the file cannot be read, has no usable header, or has bad rows
            (each named by its line number).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"identifiers file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"identifiers file {path} cannot be read as UTF-8 text: {exc}") from None
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader, [])]
    if not header or not any(h in COLUMNS for h in header):
        raise ConfigError(
            f"{path}:1: the header row names none of {', '.join(COLUMNS)}; "
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
    result: list[tuple[int, dict[str, str]]] = []
    errors: list[str] = []
    for line, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            errors.append(f"{path}:{line}: has {len(cells)} cells, the header has {len(header)}")
            continue
        row = {h: cell.strip() for h, cell in zip(header, cells, strict=True)}
        problem = _row_problem(row)
        if problem:
            errors.append(f"{path}:{line}: {problem}")
            continue
        result.append((line, to_identifier(row)))
    if errors:
        if len(errors) > MAX_ERRORS:
            errors = [*errors[:MAX_ERRORS], f"... and {len(errors) - MAX_ERRORS} more bad rows"]
        raise ConfigError(errors)
    return result

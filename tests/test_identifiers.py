"""Tests of the identifiers CSV reader: a bad row comes back with its line and error, and only
a file that cannot be used at all is a configuration error."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory.errors import ConfigError
from inventory.identifiers import (
    COLUMNS,
    IDENTIFIER_COLUMNS,
    MAX_REPORTED,
    IdentifierRow,
    describe,
    luhn_valid,
    read_identifiers,
    row_problems,
)

IMEI = "490154203237518"  # Luhn-valid
IMEI2 = "359881234567899"
MEID = "A0000012345678"


def write(tmp_path: Path, text: str | bytes, name: str = "ids.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        read_identifiers(path)
    return info.value.errors


def bad(path: Path) -> list[tuple[int, str | None]]:
    """(line, error) of the rows that have one."""
    return [(r.line, r.error) for r in read_identifiers(path) if r.error is not None]


# --- good files ------------------------------------------------------------------------------


def test_every_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        ",".join(COLUMNS)
        + "\n"
        + f"{IMEI},{MEID},SN1,Google,Pixel 8,DEVICE_TYPE_ANDROID,,1200119706,SO-1\n"
        + ",,5CD1,HP,Chromebook,DEVICE_TYPE_CHROME_OS,ATT-9,,\n",
    )
    rows = read_identifiers(path)
    assert rows == [
        IdentifierRow(
            2,
            {
                "imei": IMEI,
                "meid": MEID,
                "serial_number": "SN1",
                "manufacturer": "Google",
                "model": "Pixel 8",
                "device_type": "DEVICE_TYPE_ANDROID",
            },
            1200119706,
            "SO-1",
        ),
        IdentifierRow(
            3,
            {
                "serial_number": "5CD1",
                "manufacturer": "HP",
                "model": "Chromebook",
                "device_type": "DEVICE_TYPE_CHROME_OS",
                "chrome_os_attested_device_id": "ATT-9",
            },
        ),
    ]
    assert rows[0].identifier == {
        "imei": IMEI,
        "meid": MEID,
        "serialNumber": "SN1",
        "manufacturer": "Google",
        "model": "Pixel 8",
        "deviceType": "DEVICE_TYPE_ANDROID",
    }
    assert rows[1].identifier["chromeOsAttestedDeviceId"] == "ATT-9"


def test_columns() -> None:
    assert (*IDENTIFIER_COLUMNS, "expected_company_id", "order_number") == COLUMNS


def test_header_any_subset_any_order(tmp_path: Path) -> None:
    path = write(tmp_path, f"order_number,manufacturer,imei\nA,Samsung,{IMEI}\n,,{IMEI2}\n")
    assert read_identifiers(path) == [
        IdentifierRow(2, {"manufacturer": "Samsung", "imei": IMEI}, order_number="A"),
        IdentifierRow(3, {"imei": IMEI2}),
    ]


def test_single_column(tmp_path: Path) -> None:
    path = write(tmp_path, f"meid\n{MEID}\na0000012345679\n")
    assert [r.identifier for r in read_identifiers(path)] == [
        {"meid": MEID},
        {"meid": "a0000012345679"},
    ]


def test_header_case_and_spaces_and_cells_trimmed(tmp_path: Path) -> None:
    path = write(tmp_path, f" IMEI , Serial_Number ,Manufacturer\n {IMEI} , SN 1 , Google \n")
    assert [r.identifier for r in read_identifiers(path)] == [
        {"imei": IMEI, "serialNumber": "SN 1", "manufacturer": "Google"}
    ]


def test_utf8_bom(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbfimei,model\r\n" + IMEI.encode() + b",Pixel\r\n")
    assert read_identifiers(path) == [IdentifierRow(2, {"imei": IMEI, "model": "Pixel"})]


def test_blank_lines_skipped_and_line_numbers_kept(tmp_path: Path) -> None:
    path = write(tmp_path, f"imei,model\n\n{IMEI},A\n , \n\n{IMEI2},B\n\n")
    assert [(r.line, r.columns["model"]) for r in read_identifiers(path)] == [(3, "A"), (6, "B")]


def test_crlf_and_quoted_cells(tmp_path: Path) -> None:
    path = write(tmp_path, f'imei,model\r\n"{IMEI}","Pixel 8, Pro"\r\n')
    assert read_identifiers(path) == [IdentifierRow(2, {"imei": IMEI, "model": "Pixel 8, Pro"})]


def test_a_quoted_cell_across_lines_names_its_first_line(tmp_path: Path) -> None:
    path = write(tmp_path, f'imei,model\n{IMEI},"Pixel\n8"\n{IMEI2},x\n12,y\n')
    rows = read_identifiers(path)
    assert [(r.line, r.error) for r in rows] == [
        (2, None),
        (4, None),
        (5, "imei '12' is not 14 to 16 digits"),
    ]
    assert rows[0].columns["model"] == "Pixel\n8"


@pytest.mark.parametrize("text", ["", "\n", "\r\n\r\n", "imei,meid\n", "imei\n\n\n"])
def test_empty_or_header_only_has_no_rows(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    assert read_identifiers(path) == []
    assert describe(path, []) == f"{path}: 0 identifiers"


@pytest.mark.parametrize("imei", ["12345678901234", IMEI, "1234567890123456"])
def test_imei_lengths_14_to_16(tmp_path: Path, imei: str) -> None:
    path = write(tmp_path, f"imei\n{imei}\n")
    assert read_identifiers(path) == [IdentifierRow(2, {"imei": imei})]


@pytest.mark.parametrize(
    "row",
    [
        "SN1,Google,,,",  # serial + manufacturer
        f"SN1,,{IMEI},,",  # serial + imei
        f"SN1,,,{MEID},",  # serial + meid
        "SN1,,,,DEVICE_TYPE_CHROME_OS",  # Chrome OS serial
    ],
)
def test_serial_number_is_accepted_with_a_disambiguator(tmp_path: Path, row: str) -> None:
    path = write(tmp_path, f"serial_number,manufacturer,imei,meid,device_type\n{row}\n")
    (found,) = read_identifiers(path)
    assert (found.line, found.error, found.identifier["serialNumber"]) == (2, None, "SN1")


def test_attested_id_alone_is_enough(tmp_path: Path) -> None:
    path = write(tmp_path, "chrome_os_attested_device_id\nATT-1\n")
    assert read_identifiers(path) == [IdentifierRow(2, {"chrome_os_attested_device_id": "ATT-1"})]


def test_accepts_string_path(tmp_path: Path) -> None:
    path = write(tmp_path, f"imei\n{IMEI}\n")
    assert read_identifiers(str(path)) == [IdentifierRow(2, {"imei": IMEI})]


def test_luhn() -> None:
    assert luhn_valid(IMEI)
    assert luhn_valid(IMEI2)
    assert not luhn_valid("490154203237519")
    assert luhn_valid("79927398713")  # the textbook example


# --- files that cannot be used: configuration errors -----------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    assert errors_of(path) == [f"identifiers file {path} does not exist"]


def test_a_directory_is_unreadable(tmp_path: Path) -> None:
    (error,) = errors_of(tmp_path)
    assert error.startswith(f"identifiers file {tmp_path} cannot be read: ")


def test_header_not_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "imei,modèle\n".encode("latin-1") + IMEI.encode() + b",x\n")
    assert errors_of(path) == [
        f"{path}:1: the header row is not UTF-8 text (byte 0xe8 at column 9); save the file as "
        "UTF-8"
    ]


@pytest.mark.parametrize(
    "text", ["foo,bar\n1,2\n", f"{IMEI}\n", "order_number,expected_company_id\nA,1\n"]
)
def test_header_naming_no_identifier_column(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    assert errors_of(path) == [
        f"{path}:1: the header row names none of imei, meid, serial_number, manufacturer, "
        "model, device_type, chrome_os_attested_device_id; the first row must name the columns"
    ]


def test_unknown_columns(tmp_path: Path) -> None:
    path = write(tmp_path, f"imei,colour,Owner\n{IMEI},red,me\n")
    assert errors_of(path) == [
        f"{path}:1: unknown column(s) 'colour', 'owner'; expected any of imei, meid, "
        "serial_number, manufacturer, model, device_type, chrome_os_attested_device_id, "
        "expected_company_id, order_number"
    ]


def test_trailing_comma_in_header_is_an_unknown_empty_column(tmp_path: Path) -> None:
    path = write(tmp_path, f"imei,\n{IMEI},\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:1: unknown column(s) ''; ")


def test_duplicate_header_column_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, f"imei,model,imei\n{IMEI},Pixel,{IMEI2}\n")
    assert errors_of(path) == [f"{path}:1: column(s) 'imei' appear twice"]


# --- bad rows: each comes back with its error; the others are read -----------------------


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (f"{IMEI},A,", "has 3 cells, the header has 2"),
        (f"{IMEI}", "has 1 cells, the header has 2"),
        ("12345,A", "imei '12345' is not 14 to 16 digits"),
        ("12345678901234567,A", "imei '12345678901234567' is not 14 to 16 digits"),
        ("35988123456789X,A", "imei '35988123456789X' is not 14 to 16 digits"),
        (
            "490154203237519,A",
            "imei '490154203237519' fails its check digit (Luhn); is a digit mistyped?",
        ),
        (",Pixel", "needs one of imei, meid, serial_number or chrome_os_attested_device_id"),
    ],
)
def test_bad_row_has_its_line_and_error(tmp_path: Path, row: str, problem: str) -> None:
    path = write(tmp_path, f"imei,model\n{IMEI2},ok\n{row}\n{IMEI},also ok\n")
    rows = read_identifiers(path)
    assert [(r.line, r.error) for r in rows] == [(2, None), (3, problem), (4, None)]


def test_a_bad_row_keeps_the_cells_it_has(tmp_path: Path) -> None:
    path = write(tmp_path, "imei,model,order_number\n12345,Pixel,SO-9\n")
    assert read_identifiers(path) == [
        IdentifierRow(
            2,
            {"imei": "12345", "model": "Pixel"},
            order_number="SO-9",
            error="imei '12345' is not 14 to 16 digits",
        )
    ]


@pytest.mark.parametrize(
    ("meid", "problem"),
    [
        ("A000001234567", "meid 'A000001234567' is not 14 hexadecimal digits"),
        ("A00000123456789", "meid 'A00000123456789' is not 14 hexadecimal digits"),
        ("G0000012345678", "meid 'G0000012345678' is not 14 hexadecimal digits"),
    ],
)
def test_bad_meid(tmp_path: Path, meid: str, problem: str) -> None:
    assert bad(write(tmp_path, f"meid\n{meid}\n")) == [(2, problem)]


@pytest.mark.parametrize("kind", ["ANDROID", "device_type_android", "DEVICE_TYPE_UNSPECIFIED"])
def test_bad_device_type(tmp_path: Path, kind: str) -> None:
    assert bad(write(tmp_path, f"imei,device_type\n{IMEI},{kind}\n")) == [
        (2, f"device_type {kind!r} is not one of DEVICE_TYPE_ANDROID, DEVICE_TYPE_CHROME_OS")
    ]


@pytest.mark.parametrize("kind", ["", "DEVICE_TYPE_ANDROID"])
def test_serial_without_manufacturer(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path, f"serial_number,model,device_type\nSN1,Pixel,{kind}\n")
    assert bad(path) == [
        (2, "serial_number needs manufacturer (serial numbers repeat across makers)")
    ]


@pytest.mark.parametrize("company", ["abc", "-5", "0", "1.5", "99999999999999999999"])
def test_bad_expected_company_id(tmp_path: Path, company: str) -> None:
    path = write(tmp_path, f"imei,expected_company_id\n{IMEI},{company}\n")
    assert bad(path) == [(2, f"expected_company_id {company!r} is not a company id (digits)")]


def test_undecodable_line_spoils_only_its_row(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"imei,model\n{IMEI},ok\n".encode() + IMEI2.encode() + b",T\xe9l\xe9\n" + b"1,x\n",
    )
    assert [(r.line, r.error) for r in read_identifiers(path)] == [
        (2, None),
        (3, "is not UTF-8 text (byte 0xe9 at column 18); save the file as UTF-8"),
        (4, "imei '1' is not 14 to 16 digits"),
    ]


def test_unreadable_csv_is_a_bad_row(tmp_path: Path) -> None:
    """A cell over the csv module's size limit (128 KiB)."""
    path = write(tmp_path, f"imei,model\n{IMEI},{'x' * 200_000}\n{IMEI2},ok\n")
    rows = read_identifiers(path)
    assert [(r.line, r.error) for r in rows] == [
        (2, "is not readable CSV: field larger than field limit (131072)"),
        (3, None),
    ]


def test_nul_byte_is_a_bad_row(tmp_path: Path) -> None:
    path = write(tmp_path, f"imei\n{IMEI}\n1\x002\n{IMEI2}\n")
    assert [(r.line, r.error is None) for r in read_identifiers(path)] == [
        (2, True),
        (3, False),
        (4, True),
    ]


def test_every_kind_of_bad_row_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "imei,meid,serial_number,device_type\n"
        f"{IMEI},,,\n"  # 2 ok
        "1,,,\n"  # 3 bad imei
        "\n"  # 4 blank
        ",XYZ,,\n"  # 5 bad meid
        f"{IMEI2},,,PHONE\n"  # 6 bad type
        ",,SN,\n"  # 7 serial without manufacturer
        ",,,\n"  # 8 blank (all cells empty)
        f"{IMEI},,\n"  # 9 wrong cell count
        ",,,DEVICE_TYPE_ANDROID\n",  # 10 nothing identifying
    )
    rows = read_identifiers(path)
    assert [(r.line, r.error is None) for r in rows] == [
        (2, True),
        (3, False),
        (5, False),
        (6, False),
        (7, False),
        (9, False),
        (10, False),
    ]
    assert describe(path, rows) == f"{path}: 7 identifiers (6 bad rows, skipped)"


def test_problems_are_one_line_each_and_capped(tmp_path: Path) -> None:
    count = MAX_REPORTED + 5
    path = write(tmp_path, "imei\n" + "".join(f"{n}\n" for n in range(count)) + f"{IMEI}\n")
    rows = read_identifiers(path)
    problems = row_problems(path, rows)
    assert MAX_REPORTED == 20
    assert problems[:MAX_REPORTED] == [
        f"{path}:{n + 2}: imei '{n}' is not 14 to 16 digits; row skipped"
        for n in range(MAX_REPORTED)
    ]
    assert problems[MAX_REPORTED:] == [f"{path}: ... and 5 more bad rows, skipped"]
    assert rows[-1] == IdentifierRow(count + 2, {"imei": IMEI})


def test_exactly_max_reported_is_not_capped(tmp_path: Path) -> None:
    path = write(tmp_path, "imei\n" + "".join(f"{n}\n" for n in range(MAX_REPORTED)))
    problems = row_problems(path, read_identifiers(path))
    assert len(problems) == MAX_REPORTED
    assert not any("more bad rows" in p for p in problems)

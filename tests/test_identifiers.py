"""Tests of the identifiers CSV reader: every bad row is named ``path:line``."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory.errors import ConfigError
from inventory.identifiers import COLUMNS, MAX_ERRORS, read_identifiers

IMEI = "359881234567890"
IMEI2 = "359881234567891"
MEID = "A0000012345678"


def write(tmp_path: Path, text: str, name: str = "ids.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        read_identifiers(path)
    return info.value.errors


# --- good files ------------------------------------------------------------------------------


def test_every_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        ",".join(COLUMNS)
        + "\n"
        + f"{IMEI},{MEID},SN1,Google,Pixel 8,DEVICE_TYPE_ANDROID,\n"
        + ",,5CD1,HP,Chromebook,DEVICE_TYPE_CHROME_OS,ATT-9\n",
    )
    assert read_identifiers(path) == [
        (
            2,
            {
                "imei": IMEI,
                "meid": MEID,
                "serialNumber": "SN1",
                "manufacturer": "Google",
                "model": "Pixel 8",
                "deviceType": "DEVICE_TYPE_ANDROID",
            },
        ),
        (
            3,
            {
                "serialNumber": "5CD1",
                "manufacturer": "HP",
                "model": "Chromebook",
                "deviceType": "DEVICE_TYPE_CHROME_OS",
                "chromeOsAttestedDeviceId": "ATT-9",
            },
        ),
    ]


def test_header_any_subset_any_order(tmp_path: Path) -> None:
    path = write(tmp_path, f"manufacturer,imei\nSamsung,{IMEI}\n,{IMEI2}\n")
    assert read_identifiers(path) == [
        (2, {"manufacturer": "Samsung", "imei": IMEI}),
        (3, {"imei": IMEI2}),
    ]


def test_single_column(tmp_path: Path) -> None:
    path = write(tmp_path, f"meid\n{MEID}\na0000012345679\n")
    assert read_identifiers(path) == [(2, {"meid": MEID}), (3, {"meid": "a0000012345679"})]


def test_header_case_and_spaces_and_cells_trimmed(tmp_path: Path) -> None:
    path = write(tmp_path, f" IMEI , Serial_Number ,Manufacturer\n {IMEI} , SN 1 , Google \n")
    assert read_identifiers(path) == [
        (2, {"imei": IMEI, "serialNumber": "SN 1", "manufacturer": "Google"})
    ]


def test_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfimei,model\r\n" + IMEI.encode() + b",Pixel\r\n")
    assert read_identifiers(path) == [(2, {"imei": IMEI, "model": "Pixel"})]


def test_blank_lines_skipped_and_line_numbers_kept(tmp_path: Path) -> None:
    path = write(tmp_path, f"imei,model\n\n{IMEI},A\n , \n\n{IMEI2},B\n\n")
    assert read_identifiers(path) == [
        (3, {"imei": IMEI, "model": "A"}),
        (6, {"imei": IMEI2, "model": "B"}),
    ]


def test_crlf_and_quoted_cells(tmp_path: Path) -> None:
    path = write(tmp_path, f'imei,model\r\n"{IMEI}","Pixel 8, Pro"\r\n')
    assert read_identifiers(path) == [(2, {"imei": IMEI, "model": "Pixel 8, Pro"})]


def test_header_only_is_empty(tmp_path: Path) -> None:
    assert read_identifiers(write(tmp_path, "imei,meid\n")) == []


@pytest.mark.parametrize("imei", ["12345678901234", "123456789012345", "1234567890123456"])
def test_imei_lengths_14_to_16(tmp_path: Path, imei: str) -> None:
    assert read_identifiers(write(tmp_path, f"imei\n{imei}\n")) == [(2, {"imei": imei})]


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
    ((line, identifier),) = read_identifiers(path)
    assert line == 2
    assert identifier["serialNumber"] == "SN1"


def test_attested_id_alone_is_enough(tmp_path: Path) -> None:
    path = write(tmp_path, "chrome_os_attested_device_id\nATT-1\n")
    assert read_identifiers(path) == [(2, {"chromeOsAttestedDeviceId": "ATT-1"})]


def test_accepts_string_path(tmp_path: Path) -> None:
    path = write(tmp_path, f"imei\n{IMEI}\n")
    assert read_identifiers(str(path)) == [(2, {"imei": IMEI})]


# --- bad files -------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    assert errors_of(path) == [f"identifiers file {path} does not exist"]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("imei,model\n359881234567890,Télé\n".encode("latin-1"))
    (error,) = errors_of(path)
    assert error.startswith(f"identifiers file {path} cannot be read as UTF-8 text: ")


@pytest.mark.parametrize("text", ["", "\n", "foo,bar\n1,2\n", f"{IMEI}\n"])
def test_header_naming_no_known_column(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    assert errors_of(path) == [
        f"{path}:1: the header row names none of imei, meid, serial_number, manufacturer, "
        "model, device_type, chrome_os_attested_device_id; the first row must name the columns"
    ]


def test_unknown_columns(tmp_path: Path) -> None:
    path = write(tmp_path, f"imei,colour,Owner\n{IMEI},red,me\n")
    assert errors_of(path) == [
        f"{path}:1: unknown column(s) 'colour', 'owner'; expected any of imei, meid, "
        "serial_number, manufacturer, model, device_type, chrome_os_attested_device_id"
    ]


def test_trailing_comma_in_header_is_an_unknown_empty_column(tmp_path: Path) -> None:
    path = write(tmp_path, f"imei,\n{IMEI},\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:1: unknown column(s) ''; ")


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (f"{IMEI},A,", "has 3 cells, the header has 2"),
        (f"{IMEI}", "has 1 cells, the header has 2"),
        ("12345,A", "imei '12345' is not 14 to 16 digits"),
        ("12345678901234567,A", "imei '12345678901234567' is not 14 to 16 digits"),
        ("35988123456789X,A", "imei '35988123456789X' is not 14 to 16 digits"),
        (",Pixel", "needs one of imei, meid, serial_number or chrome_os_attested_device_id"),
    ],
)
def test_bad_row_named_by_path_and_line(tmp_path: Path, row: str, problem: str) -> None:
    path = write(tmp_path, f"imei,model\n{IMEI2},ok\n{row}\n")
    assert errors_of(path) == [f"{path}:3: {problem}"]


@pytest.mark.parametrize(
    ("meid", "problem"),
    [
        ("A000001234567", "meid 'A000001234567' is not 14 hexadecimal digits"),
        ("A00000123456789", "meid 'A00000123456789' is not 14 hexadecimal digits"),
        ("G0000012345678", "meid 'G0000012345678' is not 14 hexadecimal digits"),
    ],
)
def test_bad_meid(tmp_path: Path, meid: str, problem: str) -> None:
    path = write(tmp_path, f"meid\n{meid}\n")
    assert errors_of(path) == [f"{path}:2: {problem}"]


@pytest.mark.parametrize("kind", ["ANDROID", "device_type_android", "DEVICE_TYPE_UNSPECIFIED"])
def test_bad_device_type(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path, f"imei,device_type\n{IMEI},{kind}\n")
    assert errors_of(path) == [
        f"{path}:2: device_type {kind!r} is not one of DEVICE_TYPE_ANDROID, DEVICE_TYPE_CHROME_OS"
    ]


@pytest.mark.parametrize("kind", ["", "DEVICE_TYPE_ANDROID"])
def test_serial_without_manufacturer(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path, f"serial_number,model,device_type\nSN1,Pixel,{kind}\n")
    assert errors_of(path) == [
        f"{path}:2: serial_number needs manufacturer (serial numbers repeat across makers)"
    ]


def test_row_with_nothing_identifying(tmp_path: Path) -> None:
    path = write(tmp_path, "manufacturer,model,device_type\nGoogle,Pixel,DEVICE_TYPE_ANDROID\n")
    assert errors_of(path) == [
        f"{path}:2: needs one of imei, meid, serial_number or chrome_os_attested_device_id"
    ]


def test_all_bad_rows_reported_at_once_with_their_lines(tmp_path: Path) -> None:
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
    errors = errors_of(path)
    assert [e.split(": ", 1)[0] for e in errors] == [
        f"{path}:3",
        f"{path}:5",
        f"{path}:6",
        f"{path}:7",
        f"{path}:9",
        f"{path}:10",
    ]
    assert all(e.startswith(f"{path}:") for e in errors)


def test_config_error_message_joins_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "imei\n1\n2\n")
    with pytest.raises(ConfigError) as info:
        read_identifiers(path)
    assert str(info.value) == (
        f"{path}:2: imei '1' is not 14 to 16 digits; {path}:3: imei '2' is not 14 to 16 digits"
    )
    assert info.value.exit_code == 2


def test_many_bad_rows_are_capped(tmp_path: Path) -> None:
    bad = MAX_ERRORS + 5
    path = write(tmp_path, "imei\n" + "".join(f"{n}\n" for n in range(bad)))
    errors = errors_of(path)
    assert MAX_ERRORS == 20
    assert len(errors) == MAX_ERRORS + 1
    assert errors[:MAX_ERRORS] == [
        f"{path}:{n + 2}: imei '{n}' is not 14 to 16 digits" for n in range(MAX_ERRORS)
    ]
    assert errors[-1] == "... and 5 more bad rows"


def test_exactly_max_errors_is_not_capped(tmp_path: Path) -> None:
    path = write(tmp_path, "imei\n" + "".join(f"{n}\n" for n in range(MAX_ERRORS)))
    errors = errors_of(path)
    assert len(errors) == MAX_ERRORS
    assert all(e.startswith(f"{path}:") and "more bad rows" not in e for e in errors)


def test_duplicate_header_column_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, f"imei,model,imei\n{IMEI},Pixel,{IMEI2}\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:1: ")

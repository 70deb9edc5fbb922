"""``inventory.sqlout``: values in one form, and the text table that never cuts a value."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from inventory.cli import app, main
from inventory.sqlout import (
    SQLITE_CONVERTERS,
    DeclaredText,
    json_of,
    json_row,
    sqlite_value,
    table_lines,
    text_of,
)

LONG = "x" * 300


def test_sqlite_converters_give_what_postgresql_gives() -> None:
    assert SQLITE_CONVERTERS["DATETIME"](b"2024-11-14 11:37:20.088000") == datetime(
        2024, 11, 14, 11, 37, 20, 88000, tzinfo=UTC
    )
    assert SQLITE_CONVERTERS["JSON"](b'{"b":1,"a":[null]}') == {"b": 1, "a": [None]}
    assert SQLITE_CONVERTERS["JSON"](b"not json") == "not json"
    assert SQLITE_CONVERTERS["BOOLEAN"](b"1") is True
    assert SQLITE_CONVERTERS["BOOLEAN"](b"0") is False
    text = SQLITE_CONVERTERS["TEXT"]("{São}".encode())
    assert isinstance(text, DeclaredText)
    assert text == "{São}"


def test_computed_sqlite_text_is_read_as_a_timestamp_or_json_only_in_full_form() -> None:
    assert sqlite_value("2024-11-14 11:37:20.088000") == datetime(
        2024, 11, 14, 11, 37, 20, 88000, tzinfo=UTC
    )
    assert sqlite_value("2024-11-14 11:37:20") == "2024-11-14 11:37:20"  # not our stored form
    assert sqlite_value('{"a":1}') == {"a": 1}
    assert sqlite_value("[1, 2]") == [1, 2]
    assert sqlite_value("[draft] phone") == "[draft] phone"
    assert sqlite_value("") == ""
    # text SQLite read from a text column is never reinterpreted
    declared = DeclaredText('{"a":1}')
    assert sqlite_value(declared) is declared
    assert sqlite_value(5) == 5


def test_text_of_prints_one_form() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert text_of(datetime(2024, 11, 14, 13, 37, 20, tzinfo=plus_two)) == (
        "2024-11-14T11:37:20.000000+00:00"
    )
    assert text_of(date(2024, 1, 2)) == "2024-01-02"
    assert text_of({"b": "São", "a": [1, None]}) == '{"a":[1,null],"b":"São"}'
    assert text_of(True) == "true"
    assert text_of(None) == ""
    assert text_of(2**63 - 1) == "9223372036854775807"
    assert text_of(Decimal("1.50")) == "1.50"
    assert text_of(b"\x01\xff") == "01ff"


def test_json_of_keeps_unsafe_integers_exact() -> None:
    safe, unsafe = 2**53 - 1, 2**53 + 1
    assert json_of(safe) == safe
    assert json_of(-unsafe) == str(-unsafe)
    assert json_of({"deep": [unsafe, {"x": safe}]}) == {"deep": [str(unsafe), {"x": safe}]}
    assert json_of(Decimal(unsafe)) == str(unsafe)
    assert json_of(Decimal("2.5")) == 2.5
    assert json_of(datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T00:00:00.000000+00:00"
    assert json.loads(json_row(["a", "b"], (unsafe, "São"))) == {"a": str(unsafe), "b": "São"}


def test_the_table_is_as_wide_as_its_values() -> None:
    lines = list(table_lines(["id", "name"], [(1, LONG), (22, "a\nb")], width=None, limit=None))
    assert lines[0] == " id | name"
    assert lines[1] == "----+-" + "-" * 300 + "-"
    assert lines[2] == "  1 | " + LONG
    assert lines[3] == " 22 | a\\nb"
    assert lines[4] == "(2 rows)"


def test_rows_wider_than_the_terminal_become_blocks() -> None:
    lines = list(table_lines(["id", "value"], [(1, LONG), (2, "b")], width=80, limit=50))
    assert lines == [
        "-[ RECORD 1 ]",
        "id    | 1",
        f"value | {LONG}",
        "-[ RECORD 2 ]",
        "id    | 2",
        "value | b",
        "(2 rows)",
    ]


def test_a_terminal_shows_the_first_rows_and_says_how_to_get_the_rest() -> None:
    rows = ((n, f"v{n}") for n in range(1234))
    lines = list(table_lines(["n", "v"], rows, width=200, limit=50))
    assert len(lines) == 2 + 50 + 1
    assert lines[-1] == "(1,234 rows: the first 50 shown, 1,184 more with --format csv)"
    assert list(table_lines(["n"], [], width=80, limit=50))[-1] == "(0 rows)"
    assert list(table_lines(["n"], [(1,)], width=80, limit=50))[-1] == "(1 row)"


def test_sql_on_a_terminal_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--database-url", url]).exit_code == 0
    query = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 120) "
        "SELECT i, 9007199261810833 + i AS company_id FROM n"
    )
    monkeypatch.setattr(app, "is_terminal", lambda _stream: True)
    monkeypatch.setenv("COLUMNS", "100")
    shown = runner.invoke(main, ["sql", "--database-url", url, query])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[2].split() == ["1", "|", "9007199261810834"]  # never cut
    assert lines[-1] == "(120 rows: the first 50 shown, 70 more with --format csv)"
    monkeypatch.setattr(app, "is_terminal", lambda _stream: False)
    everything = runner.invoke(main, ["sql", "--database-url", url, query])
    assert everything.stdout.splitlines()[-1] == "(120 rows)"
    assert len(everything.stdout.splitlines()) == 123

"""Configuration through the command line: every problem is one ``Error:`` line, exit 2.

Each bad value names its key and the form expected; unknown keys get a did-you-mean;
``ZT_INVENTORY_<SECTION>_<KEY>`` overrides the file and ``--database-url`` overrides both.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from inventory.cli import main
from inventory.config import load_settings

GOOD = """
[partner]
id = "1234567"

[auth]
credentials = "anonymous"

[api]
endpoint = "http://127.0.0.1:9"

[database]
url = "sqlite:///inventory.db"
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def error_lines(result: Result) -> list[str]:
    lines = result.stderr.splitlines()
    assert lines, "expected Error: lines on stderr"
    assert all(line.startswith("Error: ") for line in lines), result.stderr
    assert "Traceback" not in result.output
    return lines


def with_config(workdir: Path, text: str, name: str = "zt-inventory.toml") -> Path:
    path = workdir / name
    path.write_text(text, encoding="utf-8")
    return path


# (TOML that replaces or adds to GOOD, the key the message must name, the expected form)
BAD_VALUES = [
    ('[partner]\nid = "abc"', "partner.id = 'abc'", "positive int64 id"),
    ("[partner]\nid = -5", "partner.id = -5", "positive int64 id"),
    ('[partner]\nid = "99999999999999999999"', "partner.id", "positive int64 id"),
    ("[api]\npage_size = 0", "api.page_size = 0", "an integer from 1 to 100"),
    ("[api]\npage_size = 101", "api.page_size = 101", "an integer from 1 to 100"),
    ('[api]\nconcurrency = "four"', "api.concurrency = 'four'", "an integer from 1 to 64"),
    ('[api]\nconcurrency = "4"', "api.concurrency = '4' is a string", "write concurrency = 4"),
    ("[api]\nmax_ids_per_request = 0", "api.max_ids_per_request = 0", "from 1 to 1000"),
    ("[api]\nquota_per_100s = -1", "api.quota_per_100s = -1", "an integer from 0"),
    ("[api]\ntimeout_s = 0", "api.timeout_s = 0", "a number greater than 0"),
    ("[api]\nmax_retries = true", "api.max_retries = True", "an integer from 0 to 50"),
    ("[api]\nquota_window_s = -3", "api.quota_window_s = -3", "a number greater than 0"),
    ('[api]\nendpoint = "ftp://example.com"', "api.endpoint = 'ftp", "an http(s) URL"),
    ('[database]\nurl = "mysql://u@h/db"', "database.url", "a SQLite or PostgreSQL URL"),
    ('[sync]\nsection_types = ["SECTION_TYPE_FOO"]', "sync.section_types", "SECTION_TYPE_ZERO"),
    ("[sync]\nsection_types = []", "sync.section_types", "a non-empty list"),
    ('[sync]\ncustomers = ["abc"]', "sync.customers", "a list of customer ids"),
    ("[sync]\nmax_removed_fraction = 1.5", "sync.max_removed_fraction", "a number from 0"),
    ("[sync]\nidentifiers_file = 3", "sync.identifiers_file = 3", "a string"),
    ('[schedule]\ncron = "every hour"', "schedule.cron = 'every hour'", "five-field crontab"),
    ("[schedule]\ninterval_minutes = 0", "schedule.interval_minutes = 0", "greater than 0"),
    ('[auth]\ncredentials = ""', "auth.credentials", "a path to a service-account key file"),
]


def _merge(extra: str) -> str:
    """GOOD with the sections of ``extra`` replacing its own keys."""
    section = extra.split("]")[0] + "]"
    key = extra.split("\n")[1].split("=")[0].strip()
    lines = GOOD.splitlines()
    out, current = [], ""
    for line in lines:
        if line.startswith("["):
            current = line
        if current == section and line.split("=")[0].strip() == key:
            continue
        out.append(line)
    text = "\n".join(out)
    body = extra.split("\n", 1)[1]
    if section in text:
        return text.replace(section, f"{section}\n{body}", 1)
    return f"{text}\n{extra}\n"


@pytest.mark.parametrize(("toml", "key", "expected"), BAD_VALUES, ids=[b[1] for b in BAD_VALUES])
def test_a_bad_value_is_one_line_naming_key_and_form(
    workdir: Path, toml: str, key: str, expected: str
) -> None:
    with_config(workdir, _merge(toml))
    result = run("sync")
    assert result.exit_code == 2, result.output
    [line] = [line for line in error_lines(result) if key in line]
    assert expected in line


def test_every_problem_is_reported_at_once(workdir: Path) -> None:
    with_config(
        workdir,
        GOOD.replace('id = "1234567"', 'id = "x"') + "\n[sync]\nmax_removed_fraction = 2\n"
        '[schedule]\ncron = "nope"\n',
    )
    result = run("status")
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 3
    assert any("partner.id" in line for line in lines)
    assert any("sync.max_removed_fraction" in line for line in lines)
    assert any("schedule.cron" in line for line in lines)


def test_unknown_key_suggests_the_right_one(workdir: Path) -> None:
    with_config(workdir, GOOD.replace("[api]\n", "[api]\npage_sise = 50\n"))
    result = run("sync")
    assert result.exit_code == 2
    assert error_lines(result) == [
        "Error: api.page_sise is not a setting; did you mean 'page_size'?"
    ]


def test_unknown_section_suggests_the_right_one(workdir: Path) -> None:
    with_config(workdir, GOOD + '\n[databse]\nurl = "sqlite:///x.db"\n')
    result = run("init")
    assert result.exit_code == 2
    assert error_lines(result) == [
        "Error: [databse] is not a config section; did you mean 'database'?"
    ]


def test_section_that_is_not_a_table(workdir: Path) -> None:
    with_config(workdir, "api = 5\n")
    result = run("init")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "api must be a [api] table" in line


def test_unknown_environment_variable_suggests_the_right_one(workdir: Path) -> None:
    result = run("init", env={"ZT_INVENTORY_API_PAGESIZE": "50"})
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "ZT_INVENTORY_API_PAGESIZE is not a setting" in line
    assert "ZT_INVENTORY_API_PAGE_SIZE" in line


def test_bad_environment_value_names_the_variable(workdir: Path) -> None:
    with_config(workdir, GOOD)
    result = run("sync", env={"ZT_INVENTORY_API_PAGE_SIZE": "500"})
    assert result.exit_code == 2
    assert error_lines(result) == [
        "Error: ZT_INVENTORY_API_PAGE_SIZE = '500' (api.page_size) is invalid; "
        "expected an integer from 1 to 100"
    ]


def test_invalid_toml(workdir: Path) -> None:
    with_config(workdir, "[partner\nid = 1\n")
    result = run("status")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "is not valid TOML" in line


def test_missing_explicit_config_file(workdir: Path) -> None:
    result = run("status", "--config", "nowhere.toml")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "config file nowhere.toml does not exist" in line


def test_anonymous_credentials_are_refused_for_google(workdir: Path) -> None:
    with_config(
        workdir,
        GOOD.replace("http://127.0.0.1:9", "https://androiddeviceprovisioning.googleapis.com"),
    )
    result = run("sync")
    assert result.exit_code == 2
    assert error_lines(result) == [
        "Error: auth.credentials = 'anonymous' is allowed only when api.endpoint is not a "
        'googleapis.com host (emulator, tests); use a service-account key file or "adc"'
    ]


def test_cron_and_interval_together(workdir: Path) -> None:
    with_config(workdir, GOOD + '\n[schedule]\ncron = "0 * * * *"\ninterval_minutes = 5\n')
    result = run("schedule")
    assert result.exit_code == 2
    assert error_lines(result) == ["Error: schedule: set either cron or interval_minutes, not both"]


def test_sync_needs_a_partner_id_and_credentials(workdir: Path) -> None:
    with_config(workdir, '[auth]\ncredentials = "missing-key.json"\n')
    result = run("sync")
    assert result.exit_code == 2
    assert error_lines(result) == [
        'Error: partner.id is not set; expected your reseller partner id, e.g. id = "1234567" '
        "under [partner] (or ZT_INVENTORY_PARTNER_ID), or a [[partners]] table for each "
        "reseller account",
        "Error: auth.credentials: key file missing-key.json does not exist; expected a "
        'service-account key file path, "adc" or "anonymous"',
    ]


def test_missing_identifiers_file(workdir: Path) -> None:
    with_config(workdir, GOOD + '\n[sync]\nidentifiers_file = "shipped.csv"\n')
    result = run("sync")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "sync.identifiers_file" in line
    assert "shipped.csv does not exist" in line


def test_bad_database_url_option_hides_the_password(workdir: Path) -> None:
    result = run("status", "--database-url", "mysql://user:s3cret@host/db")
    assert result.exit_code == 2
    assert error_lines(result) == [
        "Error: --database-url 'mysql://user:***@host/db' (database.url) is invalid; expected a "
        "SQLite or PostgreSQL URL, e.g. sqlite:///zt-inventory.db or "
        "postgresql+psycopg://user@host/db; mysql is not supported"
    ]
    assert "s3cret" not in result.output


def test_bad_usage_is_exit_2(workdir: Path) -> None:
    result = run("sync", "--customer", "abc")
    assert result.exit_code == 2
    assert "Invalid value for '--customer'" in result.stderr
    result = run("sql", "SELECT 1", "--format", "xml")
    assert result.exit_code == 2
    result = run("nonsense")
    assert result.exit_code == 2


# --- where settings come from -------------------------------------------------------------


def test_default_config_file_is_read_when_present(workdir: Path) -> None:
    with_config(workdir, GOOD.replace("inventory.db", "from-default.db"))
    assert run("init").exit_code == 0
    assert (workdir / "from-default.db").exists()


def test_environment_overrides_the_file(workdir: Path) -> None:
    with_config(workdir, GOOD)
    result = run("init", env={"ZT_INVENTORY_DATABASE_URL": "sqlite:///from-env.db"})
    assert result.exit_code == 0, result.output
    assert (workdir / "from-env.db").exists()
    assert not (workdir / "inventory.db").exists()


@pytest.mark.parametrize("where", ["group", "command"])
def test_database_url_option_overrides_environment_and_file(workdir: Path, where: str) -> None:
    with_config(workdir, GOOD, name="custom.toml")
    option = ["--config", "custom.toml", "--database-url", "sqlite:///from-option.db"]
    args = [*option, "init"] if where == "group" else ["init", *option]
    result = run(*args, env={"ZT_INVENTORY_DATABASE_URL": "sqlite:///from-env.db"})
    assert result.exit_code == 0, result.output
    assert (workdir / "from-option.db").exists()
    assert not (workdir / "from-env.db").exists()


def test_relative_paths_are_relative_to_the_config_file(workdir: Path) -> None:
    conf = workdir / "etc"
    conf.mkdir()
    path = with_config(conf, GOOD.replace('"anonymous"', '"key.json"'), name="zt.toml")
    settings = load_settings(path, environ={})
    assert settings.auth.credentials == str(conf / "key.json")


def test_example_config_is_valid_and_documents_every_key() -> None:
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    settings = load_settings(example, environ={})
    assert settings.partner.id == 1234567
    assert settings.api.quota_window_s == 100
    text = example.read_text(encoding="utf-8")
    for key in (
        "id", "credentials", "endpoint", "page_size", "concurrency", "quota_per_100s",
        "quota_window_s", "timeout_s", "max_retries", "url", "section_types", "customers",
        "identifiers_file", "max_removed_fraction", "cron", "interval_minutes",
    ):  # fmt: skip
        assert key in text, key

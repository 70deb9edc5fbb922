"""Configuration through the command line: every problem is one ``Error:`` line, exit 2.

Each bad value names its key and the form expected; unknown keys get a did-you-mean;
``ZT_INVENTORY_<SECTION>_<KEY>`` overrides the file and ``--database-url`` overrides both.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from inventory.cli import main
from inventory.config import SETTINGS, Settings, env_var, load_settings, settings_from
from inventory.config.parsers import shown
from inventory.errors import ConfigError

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


# --- the library: every value through the file and the environment ----------------------

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"


def load(
    workdir: Path, toml: str = "", env: dict[str, str] | None = None, **kwargs: Any
) -> Settings:
    """Settings from ``toml`` written to ``workdir/etc/zt.toml`` and ``env``."""
    path = workdir / "etc" / "zt.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(toml, encoding="utf-8")
    return load_settings(path, environ=env or {}, **kwargs)


def problems(
    workdir: Path, toml: str = "", env: dict[str, str] | None = None, **kwargs: Any
) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(workdir, toml, env, **kwargs)
    return info.value.errors


# (section, key, lowest, highest, expected form): integers have ints as bounds; a number whose
# form says "greater than" excludes its lowest bound
BOUNDS = [
    ("api", "page_size", 1, 100, "an integer from 1 to 100"),
    ("api", "concurrency", 1, 64, "an integer from 1 to 64"),
    ("api", "quota_per_100s", 0, 1_000_000, "an integer from 0 to 1000000"),
    ("api", "max_retries", 0, 50, "an integer from 0 to 50"),
    ("api", "max_ids_per_request", 1, 1000, "an integer from 1 to 1000"),
    ("api", "quota_window_s", 0.0, 86_400.0, "a number greater than 0 and at most 86400"),
    ("api", "timeout_s", 0.0, 3_600.0, "a number greater than 0 and at most 3600"),
    ("sync", "max_removed_fraction", 0.0, 1.0, "a number from 0 to 1"),
    ("sync", "removal_checks", 0, 1_000_000, "an integer from 0 to 1000000"),
    ("schedule", "interval_minutes", 0.0, 525_600.0, "a number greater than 0 and at most 525600"),
]


def _out_of_bounds(lo: float, hi: float, expected: str) -> list[float]:
    if isinstance(lo, int):
        return [lo - 1, hi + 1]
    return [lo if "greater than" in expected else lo - 0.5, hi + 0.5]


def _in_bounds(lo: float, hi: float, expected: str) -> list[float]:
    return [lo + (0.5 if "greater than" in expected else 0), hi]


def test_the_bounds_table_covers_every_number_setting() -> None:
    numbers = {
        (section, key)
        for section, keys in SETTINGS.items()
        for key in keys
        if typing.get_type_hints(type(getattr(Settings(), section)))[key]
        in (int, float, float | None)
    }
    assert numbers - {("partner", "id")} == {(s, k) for s, k, *_ in BOUNDS}


@pytest.mark.parametrize(
    ("section", "key", "lo", "hi", "expected"), BOUNDS, ids=[b[1] for b in BOUNDS]
)
def test_bounds_through_the_file_and_the_environment(
    workdir: Path, section: str, key: str, lo: float, hi: float, expected: str
) -> None:
    var = env_var(section, key)
    for value in _in_bounds(lo, hi, expected):
        from_file = load(workdir, f"[{section}]\n{key} = {value}\n")
        from_env = load(workdir, env={var: str(value)})
        assert getattr(getattr(from_file, section), key) == value
        assert getattr(getattr(from_env, section), key) == value
    for value in _out_of_bounds(lo, hi, expected):
        assert problems(workdir, f"[{section}]\n{key} = {value}\n") == [
            f"{section}.{key} = {value!r} is invalid; expected {expected}"
        ]
        assert problems(workdir, env={var: str(value)}) == [
            f"{var} = {str(value)!r} ({section}.{key}) is invalid; expected {expected}"
        ]
    assert problems(workdir, env={var: "abc"}) == [
        f"{var} = 'abc' ({section}.{key}) is invalid; expected {expected}"
    ]
    assert problems(workdir, f"[{section}]\n{key} = true\n") == [
        f"{section}.{key} = True is invalid; expected {expected}"
    ]


def test_environment_variable_names_are_built_from_the_declarations() -> None:
    assert env_var("api", "page_size") == "ZT_INVENTORY_API_PAGE_SIZE"
    assert env_var("sync", "google_workspace_customer_ids") == (
        "ZT_INVENTORY_SYNC_GOOGLE_WORKSPACE_CUSTOMER_IDS"
    )
    assert {s.env for keys in SETTINGS.values() for s in keys.values()} >= {
        "ZT_INVENTORY_PARTNER_ID",
        "ZT_INVENTORY_DATABASE_URL",
        "ZT_INVENTORY_API_MAX_IDS_PER_REQUEST",
    }


def test_the_environment_sets_every_key_as_the_file_does(workdir: Path) -> None:
    """Each key of the example, given as text in its environment variable, reads the same."""
    example = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    env = {
        env_var(section, key): value if isinstance(value, str) else json.dumps(value)
        for section, body in example.items()
        for key, value in body.items()
    }
    from_file = load_settings(EXAMPLE, environ={})
    from_env = load_settings(None, environ=env)
    for section in ("partner", "api", "sync", "schedule"):
        assert getattr(from_env, section) == getattr(from_file, section), section
    assert from_env.partners == (
        dataclasses.replace(from_file.partners[0], credentials="service-account.json"),
    )
    # the file's relative paths are relative to its folder; the environment's stay as they are
    assert from_file.auth.credentials == str(ROOT / "service-account.json")
    assert from_env.auth.credentials == "service-account.json"
    assert from_file.database.url == f"sqlite:///{ROOT}/zt-inventory.db"
    assert from_env.database.url == "sqlite:///zt-inventory.db"
    assert from_env.origins["api.page_size"] == "ZT_INVENTORY_API_PAGE_SIZE"
    assert "api.page_size" not in from_file.origins


@pytest.mark.parametrize(
    ("toml", "line"),
    [
        (
            '[api]\npage_size = "100"',
            "api.page_size = '100' is a string; write page_size = 100 "
            "(expected an integer from 1 to 100)",
        ),
        (
            '[api]\ntimeout_s = "2.5"',
            "api.timeout_s = '2.5' is a string; write timeout_s = 2.5 "
            "(expected a number greater than 0 and at most 3600)",
        ),
        (
            '[sync]\nsection_types = "SECTION_TYPE_SIM_LOCK"',
            "sync.section_types = 'SECTION_TYPE_SIM_LOCK' is a string; write section_types = "
            '["SECTION_TYPE_SIM_LOCK"] (expected a non-empty list of SECTION_TYPE_SIM_LOCK or '
            "SECTION_TYPE_ZERO_TOUCH)",
        ),
        (
            '[sync]\ncustomers = "12, 34"',
            'sync.customers = \'12, 34\' is a string; write customers = ["12", "34"] '
            '(expected a list of customer ids (int64, as strings), e.g. ["1234", "5678"])',
        ),
        (  # a string that would not be a valid value either: only the expected form
            '[api]\npage_size = "1000"',
            "api.page_size = '1000' is invalid; expected an integer from 1 to 100",
        ),
    ],
)
def test_a_string_in_the_file_is_not_taken_for_a_number_or_a_list(
    workdir: Path, toml: str, line: str
) -> None:
    assert problems(workdir, toml) == [line]


def test_the_environment_is_text_read_into_numbers_and_lists(workdir: Path) -> None:
    settings = load(
        workdir,
        env={
            "ZT_INVENTORY_API_PAGE_SIZE": " 100 ",
            "ZT_INVENTORY_API_TIMEOUT_S": "2.5",
            "ZT_INVENTORY_SYNC_SECTION_TYPES": "SECTION_TYPE_SIM_LOCK, SECTION_TYPE_ZERO_TOUCH",
            "ZT_INVENTORY_SYNC_CUSTOMERS": '["12", "34"]',
            "ZT_INVENTORY_PARTNER_ID": "1234567",
        },
    )
    assert settings.api.page_size == 100
    assert settings.api.timeout_s == 2.5
    assert settings.sync.section_types == ("SECTION_TYPE_SIM_LOCK", "SECTION_TYPE_ZERO_TOUCH")
    assert settings.sync.customers == (12, 34)
    assert settings.partner.id == 1234567


def test_ids_may_be_strings_or_integers_in_the_file(workdir: Path) -> None:
    settings = load(workdir, '[partner]\nid = 1234567\n[sync]\ncustomers = ["12", 34]\n')
    assert settings.partner.id == 1234567
    assert settings.sync.customers == (12, 34)
    assert load(workdir, '[partner]\nid = "1234567"\n').partner.id == 1234567


def test_max_ids_per_request(workdir: Path) -> None:
    assert Settings().api.max_ids_per_request == 100
    assert load(workdir, "[api]\nmax_ids_per_request = 1000\n").api.max_ids_per_request == 1000
    env = {"ZT_INVENTORY_API_MAX_IDS_PER_REQUEST": "250"}
    assert load(workdir, env=env).api.max_ids_per_request == 250
    assert problems(workdir, "[api]\nmax_ids_per_request = 1001\n") == [
        "api.max_ids_per_request = 1001 is invalid; expected an integer from 1 to 1000"
    ]


# --- schedule: interval_minutes and cron replace each other ---------------------------------


def test_an_interval_from_the_environment_replaces_the_files_cron(workdir: Path) -> None:
    settings = load(
        workdir,
        '[schedule]\ncron = "5 * * * *"\n',
        env={"ZT_INVENTORY_SCHEDULE_INTERVAL_MINUTES": "15"},
    )
    assert (settings.schedule.cron, settings.schedule.interval_minutes) == (None, 15.0)


def test_a_cron_from_the_environment_replaces_the_files_interval(workdir: Path) -> None:
    settings = load(
        workdir,
        "[schedule]\ninterval_minutes = 15\n",
        env={"ZT_INVENTORY_SCHEDULE_CRON": "5 * * * *"},
    )
    assert (settings.schedule.cron, settings.schedule.interval_minutes) == ("5 * * * *", None)


def test_schedule_defaults_and_each_alone(workdir: Path) -> None:
    assert Settings().schedule.cron == "0 * * * *"
    assert load(workdir).schedule.cron == "0 * * * *"
    alone = load(workdir, "[schedule]\ninterval_minutes = 15\n").schedule
    assert (alone.cron, alone.interval_minutes) == (None, 15.0)


def test_cron_and_interval_both_from_the_environment(workdir: Path) -> None:
    env = {"ZT_INVENTORY_SCHEDULE_CRON": "5 * * * *", "ZT_INVENTORY_SCHEDULE_INTERVAL_MINUTES": "1"}
    assert problems(workdir, env=env) == [
        "schedule: set either ZT_INVENTORY_SCHEDULE_CRON or "
        "ZT_INVENTORY_SCHEDULE_INTERVAL_MINUTES, not both"
    ]


# --- database URLs ----------------------------------------------------------------------------

SUPPORTED = (
    "expected a SQLite or PostgreSQL URL, e.g. sqlite:///zt-inventory.db or "
    "postgresql+psycopg://user@host/db"
)


@pytest.mark.parametrize(
    ("url", "line"),
    [
        (
            "mysql://u@h/db",
            f"database.url = 'mysql://u@h/db' is invalid; {SUPPORTED}; mysql is not supported",
        ),
        (
            "oracle+cx_oracle://u:secret@h/db",
            f"database.url = 'oracle+cx_oracle://u:***@h/db' is invalid; {SUPPORTED}; "
            "oracle is not supported",
        ),
        (
            "postgres://u@h/db",
            f"database.url = 'postgres://u@h/db' is invalid; {SUPPORTED}; the scheme is "
            "postgresql://, not postgres://",
        ),
        ("inventory.db", f"database.url = 'inventory.db' is invalid; {SUPPORTED}"),
    ],
)
def test_an_unsupported_database_says_which_are_supported(
    workdir: Path, url: str, line: str
) -> None:
    assert problems(workdir, f'[database]\nurl = "{url}"\n') == [line]


def test_a_database_password_is_never_shown(workdir: Path) -> None:
    url = "mysql://zt:hunter2@db/inv?password=hunter2"
    shown_url = "'mysql://zt:***@db/inv?password=***'"
    assert problems(workdir, env={"ZT_INVENTORY_DATABASE_URL": url}) == [
        f"ZT_INVENTORY_DATABASE_URL = {shown_url} (database.url) is invalid; "
        f"{SUPPORTED}; mysql is not supported"
    ]
    assert problems(workdir, database_url=url) == [
        f"--database-url {shown_url} (database.url) is invalid; {SUPPORTED}; mysql is not supported"
    ]
    assert shown("the key", secret=True) == "'***'"


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("sqlite:///bad.db", "sqlite:///{etc}/bad.db"),
        ("sqlite:///data/x.db", "sqlite:///{etc}/data/x.db"),
        ("sqlite+pysqlite:///x.db?timeout=5", "sqlite+pysqlite:///{etc}/x.db?timeout=5"),
        ("sqlite:////abs/x.db", "sqlite:////abs/x.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite://", "sqlite://"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_a_relative_sqlite_path_in_the_file_is_relative_to_its_folder(
    workdir: Path, url: str, resolved: str
) -> None:
    settings = load(workdir, f'[database]\nurl = "{url}"\n')
    assert settings.database.url == resolved.format(etc=workdir / "etc")


def test_a_sqlite_path_from_the_environment_or_the_option_is_left_as_given(workdir: Path) -> None:
    toml = '[database]\nurl = "sqlite:///from-file.db"\n'
    env = {"ZT_INVENTORY_DATABASE_URL": "sqlite:///from-env.db"}
    assert load(workdir, toml, env).database.url == "sqlite:///from-env.db"
    option = load(workdir, toml, env, database_url="sqlite:///opt.db")
    assert option.database.url == "sqlite:///opt.db"
    assert option.origins["database.url"] == "--database-url"
    assert settings_from({"database": {"url": "sqlite:///x.db"}}).database.url == "sqlite:///x.db"
    assert load_settings(None, environ={}).database.url == "sqlite:///zt-inventory.db"


def test_a_path_from_the_environment_is_relative_to_the_working_directory(workdir: Path) -> None:
    env = {
        "ZT_INVENTORY_AUTH_CREDENTIALS": "key.json",
        "ZT_INVENTORY_SYNC_IDENTIFIERS_FILE": "a.csv",
    }
    settings = load(workdir, '[auth]\ncredentials = "file-key.json"\n', env)
    assert (settings.auth.credentials, settings.sync.identifiers_file) == ("key.json", "a.csv")


def test_init_creates_the_database_beside_the_config_file(workdir: Path) -> None:
    conf = workdir / "etc"
    conf.mkdir()
    with_config(conf, GOOD, name="zt.toml")
    assert run("init", "--config", "etc/zt.toml").exit_code == 0
    assert (conf / "inventory.db").exists()
    assert not (workdir / "inventory.db").exists()
    assert (
        run("init", "--config", "etc/zt.toml", "--database-url", "sqlite:///here.db").exit_code == 0
    )
    assert (workdir / "here.db").exists()


# --- settings_from ------------------------------------------------------------------------------


def test_settings_from_validates_a_mapping_as_the_file(tmp_path: Path) -> None:
    settings = settings_from(
        {"partner": {"id": 7}, "auth": {"credentials": "k.json"}, "api": {"page_size": 5}},
        base=tmp_path,
    )
    assert (settings.partner.id, settings.api.page_size) == (7, 5)
    assert settings.auth.credentials == str(tmp_path / "k.json")
    assert settings.source is None
    with pytest.raises(ConfigError) as info:
        settings_from({"api": {"page_size": "5", "page_sise": 5}})
    assert info.value.errors == [
        "api.page_sise is not a setting; did you mean 'page_size'?",
        "api.page_size = '5' is a string; write page_size = 5 (expected an integer from 1 to 100)",
    ]


# --- config.example.toml: the documented reference ---------------------------------------------


def _documented(text: str) -> set[tuple[str, str]]:
    """(section, key) of every key the example writes, commented out or not."""
    found, section = set(), ""
    for line in text.splitlines():
        if header := re.match(r"^#?\s*\[\[?(\w+)\]\]?\s*$", line):
            section = header[1]
        elif key := re.match(r"^#?\s*(\w+)\s*=", line):
            found.add((section, key[1]))
    return found


def test_the_example_documents_every_declared_setting() -> None:
    from inventory.config.settings import PARTNER_KEYS

    declared = {(section, key) for section, keys in SETTINGS.items() for key in keys}
    declared |= {("partners", key) for key in PARTNER_KEYS}
    assert declared <= _documented(EXAMPLE.read_text(encoding="utf-8"))


def test_the_example_parses() -> None:
    settings = load_settings(EXAMPLE, environ={})
    assert settings.partner.id == 1234567
    assert settings.api.quota_window_s == 100
    assert settings.api.max_ids_per_request == 100


def test_the_examples_commented_keys_parse(tmp_path: Path) -> None:
    """With every commented-out key written in, only the two either-or choices are problems."""
    text = EXAMPLE.read_text(encoding="utf-8")
    every = re.sub(r"(?m)^# (\[\[\w+\]\]$|\w+ = )", r"\1", text)
    path = tmp_path / "every.toml"
    path.write_text(every, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert info.value.errors == [
        "schedule: set either cron or interval_minutes, not both",
        "partners: set either [partner] id or [[partners]] tables, not both",
    ]

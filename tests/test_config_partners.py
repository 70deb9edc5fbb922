"""Several reseller accounts: ``[[partners]]`` tables, or the ``[partner] id`` shorthand."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory.config import PartnerSettings, require_for_sync, settings_from
from inventory.errors import ConfigError
from tests.test_config import load, problems

ZT, SIM = "SECTION_TYPE_ZERO_TOUCH", "SECTION_TYPE_SIM_LOCK"
SHARED = """
[auth]
credentials = "main.json"

[sync]
section_types = ["SECTION_TYPE_ZERO_TOUCH"]
customers = ["11", "12"]
"""
KEY_FILE = 'expected a service-account key file path, "adc" or "anonymous"'


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def etc(workdir: Path) -> Path:
    """The folder of the config file that ``load`` writes."""
    return workdir / "etc"


def test_the_shorthand_is_one_partner_with_the_shared_settings(workdir: Path, etc: Path) -> None:
    settings = load(workdir, '[partner]\nid = "555"\n' + SHARED)
    assert settings.partner.id == 555
    assert settings.partners == (
        PartnerSettings(
            id=555, credentials=str(etc / "main.json"), section_types=(ZT,), customers=(11, 12)
        ),
    )


def test_the_environment_sets_the_shorthand(workdir: Path) -> None:
    settings = load(workdir, SHARED, env={"ZT_INVENTORY_PARTNER_ID": "555"})
    assert [p.id for p in settings.partners] == [555]


def test_no_partner_at_all(workdir: Path) -> None:
    settings = load(workdir, SHARED)
    assert (settings.partner.id, settings.partners) == (None, ())


def test_partners_tables_inherit_what_they_leave_out(workdir: Path, etc: Path) -> None:
    settings = load(
        workdir,
        SHARED
        + '[[partners]]\nid = "555"\n\n'
        + '[[partners]]\nid = 556\ncredentials = "keys/556.json"\n'
        + 'section_types = ["SECTION_TYPE_SIM_LOCK"]\ncustomers = ["21"]\n\n'
        + '[[partners]]\nid = "557"\ncredentials = "adc"\ncustomers = []\n',
    )
    assert settings.partners == (
        PartnerSettings(
            id=555, credentials=str(etc / "main.json"), section_types=(ZT,), customers=(11, 12)
        ),
        PartnerSettings(
            id=556,
            credentials=str(etc / "keys" / "556.json"),
            section_types=(SIM,),
            customers=(21,),
        ),
        PartnerSettings(id=557, credentials="adc", section_types=(ZT,), customers=()),
    )
    assert settings.partner.id == 555  # the first, for code that knows one partner


def test_partners_inherit_shared_settings_from_the_environment(workdir: Path) -> None:
    settings = load(
        workdir,
        '[[partners]]\nid = "555"\n',
        env={"ZT_INVENTORY_AUTH_CREDENTIALS": "/k.json", "ZT_INVENTORY_SYNC_CUSTOMERS": "7"},
    )
    assert (settings.partners[0].credentials, settings.partners[0].customers) == ("/k.json", (7,))


def test_errors_in_a_partners_table_name_it(workdir: Path) -> None:
    toml = (
        '[api]\nendpoint = "https://androiddeviceprovisioning.googleapis.com"\n'
        '[[partners]]\nid = "555"\ncredntials = "k.json"\n\n'
        '[[partners]]\nid = "abc"\nsection_types = ["SECTION_TYPE_FOO"]\n\n'
        '[[partners]]\ncustomers = "12"\n\n'
        '[[partners]]\nid = "556"\ncredentials = "anonymous"\n'
    )
    assert problems(workdir, toml) == [
        "partners[1] (id 555): credntials is not a setting; did you mean 'credentials'?",
        "partners[2]: id = 'abc' is invalid; expected a positive int64 id, written as a string, "
        'e.g. "1234567"',
        "partners[2]: section_types = ['SECTION_TYPE_FOO'] is invalid; expected a non-empty list "
        "of SECTION_TYPE_SIM_LOCK or SECTION_TYPE_ZERO_TOUCH",
        "partners[3]: customers = '12' is a string; write customers = [\"12\"] (expected a list "
        'of customer ids (int64, as strings), e.g. ["1234", "5678"])',
        "partners[3]: id is not set; each [[partners]] table needs its own id",
        "partners[4] (id 556): credentials = 'anonymous' is allowed only when api.endpoint is "
        'not a googleapis.com host (emulator, tests); use a service-account key file or "adc"',
    ]


def test_a_partner_id_is_listed_once(workdir: Path) -> None:
    toml = '[[partners]]\nid = "555"\n[[partners]]\nid = "556"\n[[partners]]\nid = 555\n'
    assert problems(workdir, toml) == [
        "partners[3] (id 555): partners[1] has the same id; list each reseller account once"
    ]


def test_the_shorthand_and_tables_are_not_both_set(workdir: Path) -> None:
    tables = '[[partners]]\nid = "556"\n'
    assert problems(workdir, '[partner]\nid = "555"\n' + tables) == [
        "partners: set either [partner] id or [[partners]] tables, not both"
    ]
    assert problems(workdir, tables, env={"ZT_INVENTORY_PARTNER_ID": "555"}) == [
        "partners: set either ZT_INVENTORY_PARTNER_ID ([partner] id) or [[partners]] tables, "
        "not both"
    ]


@pytest.mark.parametrize("toml", ['[partners]\nid = "555"\n', "partners = []\n"])
def test_partners_must_be_tables(workdir: Path, toml: str) -> None:
    assert problems(workdir, toml) == [
        "partners must be [[partners]] tables, one per reseller account"
    ]


def test_partners_have_no_environment_variables(workdir: Path) -> None:
    assert problems(workdir, env={"ZT_INVENTORY_PARTNERS_ID": "555"}) == [
        "environment variable ZT_INVENTORY_PARTNERS_ID is not a setting; [[partners]] tables "
        "are set in the config file only"
    ]


def test_settings_from_takes_partners_tables(tmp_path: Path) -> None:
    settings = settings_from(
        {"partners": [{"id": 1}, {"id": "2", "credentials": "k.json"}]}, base=tmp_path
    )
    assert [(p.id, p.credentials) for p in settings.partners] == [
        (1, "service-account.json"),
        (2, str(tmp_path / "k.json")),
    ]


def test_a_sync_checks_every_partners_key_file(workdir: Path, etc: Path) -> None:
    etc.mkdir()
    (etc / "556.json").write_text("{}", encoding="utf-8")
    settings = load(
        workdir,
        '[auth]\ncredentials = "main.json"\n'
        '[[partners]]\nid = "555"\n[[partners]]\nid = "556"\ncredentials = "556.json"\n'
        '[[partners]]\nid = "557"\n[[partners]]\nid = "558"\ncredentials = "558.json"\n',
    )
    with pytest.raises(ConfigError) as info:
        require_for_sync(settings)
    assert info.value.errors == [
        f"partners 555, 557: auth.credentials: key file {etc / 'main.json'} does not exist; "
        + KEY_FILE,
        f"partner 558: credentials: key file {etc / '558.json'} does not exist; " + KEY_FILE,
    ]


def test_a_sync_names_the_variable_that_gave_a_missing_file(workdir: Path) -> None:
    settings = load(
        workdir,
        '[partner]\nid = "555"\n',
        env={
            "ZT_INVENTORY_AUTH_CREDENTIALS": "gone.json",
            "ZT_INVENTORY_SYNC_IDENTIFIERS_FILE": "gone.csv",
        },
    )
    with pytest.raises(ConfigError) as info:
        require_for_sync(settings)
    assert info.value.errors == [
        "partner 555: ZT_INVENTORY_AUTH_CREDENTIALS (auth.credentials): key file gone.json "
        "does not exist; " + KEY_FILE,
        "ZT_INVENTORY_SYNC_IDENTIFIERS_FILE (sync.identifiers_file): gone.csv does not exist; "
        "expected a CSV file path",
    ]

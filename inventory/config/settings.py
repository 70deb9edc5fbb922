"""Every setting, declared once: a field of a section's dataclass made by :func:`setting`.

The field gives the setting's name, type and default; its metadata the parser (bounds included),
whether it is secret, and how a relative path in it is resolved. Everything else is derived from
these declarations: :data:`SETTINGS` (the table of valid keys, which the loader and the
"did you mean" suggestions read), :func:`env_var` (the environment variable of each), and the
keys of a ``[[partners]]`` table (:data:`PARTNER_KEYS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from inventory.config import parsers
from inventory.config.parsers import GOOGLE_ENDPOINT, Parse, Resolve

T = TypeVar("T")
ENV_PREFIX = "ZT_INVENTORY_"


def setting(
    default: T, parse: Parse[T], *, secret: bool = False, resolve: Resolve | None = None
) -> T:
    """Declare a setting.

    Args:
        default: its value when no source sets it.
        parse: reads a value (see :mod:`inventory.config.parsers`).
        secret: errors show the value as ``***``.
        resolve: for a path (or a URL holding one), makes a relative path that a config file
            gave relative to that file's folder.
    """
    return field(default=default, metadata={"parse": parse, "secret": secret, "resolve": resolve})


def _section(cls: type[T]) -> T:
    return field(default_factory=cls, metadata={"section": cls})


@dataclass(frozen=True)
class PartnerSection:
    """``[partner]``: the one-partner shorthand. Read :attr:`Settings.partners` instead."""

    id: int | None = setting(None, parse=parsers.int64_id)


@dataclass(frozen=True)
class AuthSettings:
    """``[auth]``: the credentials requests are made with."""

    credentials: str = setting(
        "service-account.json", parse=parsers.credentials, resolve=parsers.credentials_path
    )


@dataclass(frozen=True)
class ApiSettings:
    """``[api]``: where requests go, how many at once, how they are paced and retried."""

    endpoint: str = setting(GOOGLE_ENDPOINT, parse=parsers.endpoint)
    page_size: int = setting(100, parse=parsers.integer(1, 100))
    concurrency: int = setting(4, parse=parsers.integer(1, 64))
    quota_per_100s: int = setting(1000, parse=parsers.integer(0, 1_000_000))
    quota_window_s: float = setting(100.0, parse=parsers.number(0, 86_400, above=True))
    timeout_s: float = setting(30.0, parse=parsers.number(0, 3_600, above=True))
    max_retries: int = setting(8, parse=parsers.integer(0, 50))
    max_ids_per_request: int = setting(100, parse=parsers.integer(1, 1000))


@dataclass(frozen=True)
class DatabaseSettings:
    """``[database]``: where the snapshot is kept."""

    url: str = setting(
        "sqlite:///zt-inventory.db", parse=parsers.database_url, resolve=parsers.sqlite_path
    )


@dataclass(frozen=True)
class SyncSettings:
    """``[sync]``: what a run lists, and its safety stop."""

    section_types: tuple[str, ...] = setting(
        ("SECTION_TYPE_ZERO_TOUCH",), parse=parsers.section_types
    )
    customers: tuple[int, ...] = setting((), parse=parsers.customers)
    google_workspace_customer_ids: tuple[str, ...] = setting((), parse=parsers.workspace_ids)
    identifiers_file: str = setting("", parse=parsers.string, resolve=parsers.file_path)
    max_removed_fraction: float = setting(0.2, parse=parsers.number(0, 1))
    removal_checks: int = setting(2000, parse=parsers.integer(0, 1_000_000))


@dataclass(frozen=True)
class ScheduleSettings:
    """``[schedule]``: when ``zt-inventory schedule`` runs a sync."""

    # One source sets one of these; a later source's choice replaces an earlier one's.
    ONE_OF: ClassVar[tuple[str, ...]] = ("cron", "interval_minutes")

    cron: str | None = setting("0 * * * *", parse=parsers.cron)
    interval_minutes: float | None = setting(None, parse=parsers.number(0, 525_600, above=True))


@dataclass(frozen=True)
class PartnerSettings:
    """One reseller account to sync: a ``[[partners]]`` table, or the ``[partner] id`` shorthand.

    Each key parses as the setting named by ``like``; a table that leaves out a key that is not
    ``required`` takes that setting's value (``credentials`` falls back to ``auth.credentials``).
    """

    id: int = field(metadata={"like": "partner.id", "required": True})
    credentials: str = field(metadata={"like": "auth.credentials"})
    section_types: tuple[str, ...] = field(metadata={"like": "sync.section_types"})
    customers: tuple[int, ...] = field(metadata={"like": "sync.customers"})


@dataclass(frozen=True)
class Settings:
    """Every setting of zt-inventory, validated.

    ``partners`` is the list of reseller accounts to sync; ``partner`` is the ``[partner]``
    shorthand, kept so that ``settings.partner.id`` names the first (or only) partner.
    ``origins`` maps a dotted key to the environment variable or option that set it.
    """

    partner: PartnerSection = _section(PartnerSection)
    auth: AuthSettings = _section(AuthSettings)
    api: ApiSettings = _section(ApiSettings)
    database: DatabaseSettings = _section(DatabaseSettings)
    sync: SyncSettings = _section(SyncSettings)
    schedule: ScheduleSettings = _section(ScheduleSettings)
    partners: tuple[PartnerSettings, ...] = ()
    source: Path | None = None
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def label(self, name: str) -> str:
        """A setting as an error names it: ``auth.credentials``, or the environment variable
        or option that set it first, ``ZT_INVENTORY_AUTH_CREDENTIALS (auth.credentials)``."""
        return label_of(name, self.origins.get(name))

    def credentials_label(self, partner: PartnerSettings) -> str:
        """A partner's key file setting as an error names it: its own ``credentials`` (naming
        the partner), or ``auth.credentials`` that it shares."""
        if partner.credentials != self.auth.credentials:
            return f"partner {partner.id}: credentials"
        return self.label("auth.credentials")

    @property
    def is_google_endpoint(self) -> bool:
        """True when the endpoint is a googleapis.com host (anonymous auth is refused there)."""
        return parsers.is_google_host(self.api.endpoint)


def label_of(name: str, origin: str | None) -> str:
    """A setting as an error names it: its key, after the variable or option that set it."""
    return name if origin is None else f"{origin} ({name})"


def env_var(section: str, key: str) -> str:
    """The environment variable that sets ``section.key``: ``ZT_INVENTORY_<SECTION>_<KEY>``."""
    return f"{ENV_PREFIX}{section}_{key}".upper()


@dataclass(frozen=True)
class Setting:
    """One declared setting, as the loader reads it."""

    section: str
    key: str
    parse: Parse[Any]
    secret: bool
    resolve: Resolve | None

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def env(self) -> str:
        return env_var(self.section, self.key)


# Derived from the declarations above: section -> its dataclass; section -> key -> setting (the
# table of valid keys); a [[partners]] key -> the setting it parses as (and, unless required,
# defaults to); section -> the keys of which one source sets one.
SECTIONS: dict[str, type[Any]] = {
    f.name: f.metadata["section"] for f in fields(Settings) if "section" in f.metadata
}
SETTINGS: dict[str, dict[str, Setting]] = {
    section: {
        f.name: Setting(
            section, f.name, f.metadata["parse"], f.metadata["secret"], f.metadata["resolve"]
        )
        for f in fields(cls)
    }
    for section, cls in SECTIONS.items()
}


def _named(dotted: str) -> Setting:
    section, key = dotted.split(".")
    return SETTINGS[section][key]


PARTNER_KEYS: dict[str, Setting] = {
    f.name: _named(f.metadata["like"]) for f in fields(PartnerSettings)
}
ONE_OF: dict[str, tuple[str, ...]] = {
    name: getattr(cls, "ONE_OF", ()) for name, cls in SECTIONS.items()
}
PARTNER_REQUIRED = tuple(f.name for f in fields(PartnerSettings) if f.metadata.get("required"))

"""Configuration: ``zt-inventory.toml`` plus ``ZT_INVENTORY_<SECTION>_<KEY>`` overrides.

Each setting is declared once, in :mod:`inventory.config.settings`, with its default, its parser
and whether it is secret; the typed dataclasses code reads (``settings.api.page_size``), the
table of valid keys, the environment variables and the "did you mean" suggestions all come
from those declarations. ``config.example.toml`` is the documented reference of every key.

Sources, a later one winning: defaults < the config file < environment < ``--database-url``.
Every problem is collected, then raised once as a :class:`ConfigError` whose ``errors`` hold one
line each, naming the key (and the environment variable, when one set it) and the expected form.

Reseller accounts: ``settings.partners`` is the list to use. It holds one
:class:`PartnerSettings` per ``[[partners]]`` table, or one for the ``[partner] id`` shorthand
(empty when neither is set); each has its ``id``, ``credentials``, ``section_types`` and
``customers``, its own or else ``auth.credentials``, ``sync.section_types``, ``sync.customers``.
``settings.partner.id`` is kept for code that knows one partner: the first partner's id, or None.

Build settings in code (tests, the demo, benchmarks) with :func:`settings_from`, which validates
a mapping exactly as if it were the config file.
"""

from __future__ import annotations

from inventory.config.load import (
    DEFAULT_CONFIG_FILE,
    load_settings,
    require_for_sync,
    settings_from,
)
from inventory.config.parsers import GOOGLE_ENDPOINT, INT64_MAX, SECTION_TYPES, is_google_host
from inventory.config.settings import (
    ENV_PREFIX,
    SETTINGS,
    ApiSettings,
    AuthSettings,
    DatabaseSettings,
    PartnerSection,
    PartnerSettings,
    ScheduleSettings,
    Settings,
    SyncSettings,
    env_var,
)

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "GOOGLE_ENDPOINT",
    "INT64_MAX",
    "SECTION_TYPES",
    "SETTINGS",
    "ApiSettings",
    "AuthSettings",
    "DatabaseSettings",
    "PartnerSection",
    "PartnerSettings",
    "ScheduleSettings",
    "Settings",
    "SyncSettings",
    "env_var",
    "is_google_host",
    "load_settings",
    "require_for_sync",
    "settings_from",
]

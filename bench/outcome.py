"""What scenarios share: fleet sizes, a scenario's outcome, and the context of one database kind.

Every scenario returns an :class:`Outcome`: a table (column names and rows), the targets it
checked with their verdicts, and notes. Sizes come from a :class:`Sizes`, full or ``--quick``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.procs import EmulatorProcess
from bench.scratch import ScratchDatabase

ZERO_TOUCH = "SECTION_TYPE_ZERO_TOUCH"
SIM_LOCK = "SECTION_TYPE_SIM_LOCK"


@dataclass(frozen=True)
class Sizes:
    """Fleet sizes of every scenario: (devices, customers) unless said otherwise."""

    throughput: tuple[int, int] = (100_000, 1_000)
    requests: tuple[int, int] = (20_000, 5)  # customers, devices each
    latency: tuple[int, int] = (40_000, 400)
    quota: tuple[int, int] = (30_000, 300)
    quota_rule: tuple[int, float] = (100, 10.0)  # calls per window, window seconds
    memory: tuple[int, int] = (100_000, 1_000_000)
    memory_customers: int = 1_000
    matrix: tuple[int, int] = (100_000, 1_000)
    matrix_large: int = 1_000_000  # devices of the matrix's memory rows (--matrix-large)
    wire: tuple[int, int] = (20_000, 200)
    partners: tuple[int, int, int] = (100_000, 1_000, 2)  # devices and customers each, partners
    repeat: int = 2

    def with_repeat(self, repeat: int) -> Sizes:
        """The same sizes with scenario 1 run ``repeat`` times of each kind."""
        return replace(self, repeat=repeat)


QUICK = Sizes(
    throughput=(5_000, 50),
    requests=(1_000, 5),
    latency=(2_000, 20),
    quota=(1_500, 15),
    quota_rule=(10, 1.0),
    memory=(3_000, 10_000),
    memory_customers=50,
    matrix=(1_000, 20),
    matrix_large=3_000,
    wire=(1_000, 20),
    partners=(1_000, 20, 2),
    repeat=1,
)


@dataclass
class Check:
    """One target: what it asks, the measured value, and whether it held."""

    target: str
    measured: str
    met: bool | None  # None: not judged (informational)


@dataclass
class Outcome:
    """What one scenario found on one database."""

    scenario: str
    database: str
    columns: list[str]
    rows: list[list[Any]]
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Context:
    """What scenarios share within one database kind: settings and scenario 1's database.

    Attributes:
        matrix_configs: the configuration matrix's rows to run (empty: all).
        matrix_large: also run each configuration at ``sizes.matrix_large`` devices.
    """

    kind: str
    pg_url: str
    workdir: Path
    sizes: Sizes
    matrix_configs: tuple[str, ...] = ()
    matrix_large: bool = False
    # scenario 1 leaves its last synced database and emulator for scenario 6
    first_sync: dict[str, Any] | None = None
    kept_db: ScratchDatabase | None = None
    kept_emulator: EmulatorProcess | None = None
    log: Callable[[str], None] = print

    def database(self) -> ScratchDatabase:
        """A fresh scratch database of this kind."""
        return ScratchDatabase(self.kind, self.pg_url, self.workdir)

    def close(self) -> None:
        """Drop what scenario 1 kept."""
        if self.kept_db is not None:
            self.kept_db.drop()
            self.kept_db = None
        if self.kept_emulator is not None:
            self.kept_emulator.close()
            self.kept_emulator = None


def job(
    kind: str,
    emu: EmulatorProcess,
    db: ScratchDatabase | None,
    *,
    init: bool = True,
    profile: str | None = None,
    **settings: dict[str, Any],
) -> dict[str, Any]:
    """A ``bench.child`` job against ``emu`` into ``db``.

    Args:
        kind: ``sync``, ``baseline`` or ``fetch`` (no database).
        emu: the emulator.
        db: the scratch database (None for ``fetch``).
        init: create the schema first (a sync into an empty database).
        profile: where a sync writes its pyinstrument profile.
        **settings: config sections, e.g. ``api={"concurrency": 8}``.
    """
    return {
        "kind": kind,
        "endpoint": emu.url,
        "partner_id": emu.partner_id,
        "db_url": db.url if db is not None else None,
        "init": init,
        "profile": profile,
        "settings": settings,
    }


def require_success(result: dict[str, Any], what: str) -> dict[str, Any]:
    """Return a child's figures; raise when it was a sync that did not succeed."""
    if result.get("kind") == "sync" and result.get("status") != "succeeded":
        raise RuntimeError(f"{what}: the sync ended {result.get('status')}: {result.get('error')}")
    return result


def seconds(value: float | None, digits: int = 1) -> str:
    """A duration for a table cell ("-" when unknown)."""
    return "-" if value is None else f"{value:.{digits}f}"

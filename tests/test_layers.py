"""STYLE.md's import rules, enforced by walking each module's AST."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "inventory"

# module -> internal modules it may import (STYLE.md "Layout"), as dotted names under
# ``inventory``: an entry names a module or a whole package ("api" is every module under it).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "redact": set(),
    "signals": set(),
    "transform": set(),
    "models": set(),
    "config": {"config", "errors", "redact"},
    "auth": {"errors"},
    "identifiers": {"errors", "transform"},
    # the API client stack, bottom up
    "api.limiter": set(),
    "api.pagination": {"errors"},
    "api.retry": {"api.limiter", "auth", "errors"},  # auth: the OAuth scope the hint names
    "api.client": {"api.limiter", "api.pagination", "api.retry", "auth", "errors"},
    "api": {"api"},
    # the database: engines, the writer lock, the record of runs, reads of the snapshot
    "store.engine": {"errors", "redact"},
    "store.lock": {"store.engine", "errors", "redact"},
    "store.runs": {"models", "errors"},
    "store.snapshot": {"models"},
    "store.reconciliation": {"models", "transform"},
    "store": {"store"},
    "db": {"models", "store", "errors", "redact"},
    # one sync run
    "sync.progress": set(),
    "sync.plan": set(),
    "sync.fetch": {"api", "errors"},
    "sync.staging": {"models", "store.runs", "transform"},
    "sync.merge": {"models", "sync.staging", "transform"},
    "sync.collect": {
        "api",
        "errors",
        "models",
        "store.runs",
        "sync.fetch",
        "sync.progress",
        "sync.staging",
        "transform",
    },
    "sync.run": {
        "api",
        "auth",
        "config",
        "db",
        "errors",
        "identifiers",
        "store",
        "sync",
        "transform",
    },
    # the partners of a run: their lists, their listings' owners, the scope, their outcomes
    "sync.partners": {
        "api",
        "config",
        "errors",
        "store",
        "sync.collect",
        "sync.plan",
        "sync.staging",
        "transform",
    },
    # a reconcile run: identifier lookups only, on the sync's client stack and fetching
    "sync.reconcile": {
        "api",
        "auth",
        "config",
        "db",
        "errors",
        "identifiers",
        "store",
        "sync.collect",
        "sync.fetch",
        "sync.merge",
        "transform",
    },
    "sync": {"sync", "store.runs"},
    # what reads runs and the snapshot
    "status": {"store"},
    "check": {"api", "auth", "config", "errors"},
    "scheduler": {"sync", "store", "config", "errors", "redact", "signals"},
    "readonly": {"errors", "store", "db", "redact", "sqlout"},
    "sqlout": set(),
    "datasette_metadata": set(),
    "display": {"status", "errors"},  # and sync, for types only (under TYPE_CHECKING)
}
# third-party packages and the only modules that may import them (a package names its modules)
OWNERS = {
    "click": {"cli"},
    "apscheduler": {"scheduler"},
    "sqlalchemy": {
        "models",
        "store",
        "db",
        "sync.staging",
        "sync.merge",
        "sync.run",
        "readonly",
        "cli",
        "demo",
    },
    "httpx": {"api", "auth", "emulator", "cli", "demo"},
    "rich": {"display", "sqlout", "cli", "demo"},
}


def _covers(entries: set[str], name: str) -> bool:
    """True when ``name`` is one of ``entries`` or a module of a package among them."""
    return any(name == e or name.startswith(e + ".") for e in entries)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # Type-only imports (under ``if TYPE_CHECKING:``) are not dependencies at run time.
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from inventory.sync import staging`` imports the module inventory.sync.staging;
            # ``from inventory.sync import run_sync`` imports (a name of) inventory.sync
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                names.add(name if _is_module(name) else node.module)
    return names


def _is_module(dotted: str) -> bool:
    if not dotted.startswith("inventory."):
        return False
    path = PACKAGE.joinpath(*dotted.split(".")[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _modules() -> list[tuple[str, Path]]:
    """(dotted name under ``inventory``, path) of every module; a package is its ``__init__``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts) or "__init__", path))
    return found


def _internal(path: Path) -> set[str]:
    return {
        imp.removeprefix("inventory.") for imp in _imports(path) if imp.startswith("inventory.")
    }


def _rule(name: str) -> str | None:
    """The ``ALLOWED`` entry that governs module ``name``: its own, else its package's."""
    while name:
        if name in ALLOWED:
            return name
        name = name.rpartition(".")[0]
    return None


@pytest.mark.parametrize(("name", "path"), _modules(), ids=lambda v: str(v))
def test_imports_go_down_the_table(name: str, path: Path) -> None:
    internal = _internal(path)
    if name.split(".")[0] == "emulator":
        assert all(_covers({"errors", "emulator"}, i) for i in internal), (
            f"the emulator imports {internal}"
        )
        return
    assert not any(_covers({"emulator"}, i) for i in internal) or _covers({"cli", "demo"}, name), (
        f"{path.name}: library code must not import the emulator"
    )
    rule = _rule(name)
    if rule is not None:
        extra = {i for i in internal if not _covers(ALLOWED[rule] | {name}, i)}
        assert not extra, f"{name} imports {sorted(extra)}, which sit above it"
    if name.split(".")[0] not in ("cli", "__main__"):
        assert not any(_covers({"cli"}, i) for i in internal), f"{name} imports cli"


@pytest.mark.parametrize(("name", "path"), _modules(), ids=lambda v: str(v))
def test_third_party_libraries_stay_in_their_modules(name: str, path: Path) -> None:
    for imp in _imports(path):
        top = imp.split(".")[0]
        if top in OWNERS:
            assert _covers(OWNERS[top], name), f"{name} imports {top}, owned by {OWNERS[top]}"


def test_every_module_has_a_rule() -> None:
    """A new module states where it sits: in ALLOWED, or under a package that is."""
    free = {"__init__", "__main__", "cli", "demo"}
    missing = [
        n for n, _ in _modules() if n.split(".")[0] not in free | {"emulator"} and not _rule(n)
    ]
    assert not missing, f"add these modules to ALLOWED: {missing}"


def test_every_module_uses_future_annotations() -> None:
    for _name, path in _modules():
        text = path.read_text(encoding="utf-8")
        if text.strip():
            assert "from __future__ import annotations" in text, path.name

"""STYLE.md's import rules, enforced by walking each module's AST."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "inventory"

# module -> internal modules it may import (STYLE.md "Layout"), plus this project's additions.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "config": {"errors"},
    "auth": {"errors"},
    "http": {"errors"},
    "pagination": {"errors"},
    "api": {"http", "auth", "pagination", "errors"},
    "transform": set(),
    "plan": set(),
    "identifiers": {"errors", "transform"},
    "models": set(),
    "store": {"models", "errors"},
    "db": {"models", "store", "errors"},
    "staging": {"models", "store", "transform", "errors"},
    "merge": {"models", "store", "staging", "errors"},
    "sync": {
        "api",
        "auth",
        "http",
        "pagination",
        "transform",
        "identifiers",
        "store",
        "db",
        "models",
        "staging",
        "merge",
        "plan",
        "config",
        "errors",
    },
    "scheduler": {"sync", "config", "errors", "store", "db", "models"},
    "readonly": {"errors", "store", "db"},
    "status": {"models"},
    "display": {"status", "errors"},  # and sync, for types only (under TYPE_CHECKING)
}
# third-party packages and the only modules that may import them
OWNERS = {
    "click": {"cli"},
    "apscheduler": {"scheduler"},
    "sqlalchemy": {
        "models",
        "store",
        "db",
        "sync",
        "staging",
        "merge",
        "readonly",
        "status",
        "cli",
        "scheduler",
        "demo",
    },
    "httpx": {"http", "auth", "api", "emulator", "cli", "demo"},
    "rich": {"display", "cli", "demo"},
}


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
            names.add(node.module)
            if node.module == "inventory":
                names.update(f"inventory.{alias.name}" for alias in node.names)
    return names


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = rel.parts
        name = parts[0] if parts[0] != "__init__" else "__init__"
        found.append((name, path))
    return found


@pytest.mark.parametrize(("name", "path"), _modules(), ids=lambda v: str(v))
def test_imports_go_down_the_table(name: str, path: Path) -> None:
    internal = {imp.split(".")[1] for imp in _imports(path) if imp.startswith("inventory.")}
    if name == "emulator":
        assert internal <= {"errors", "emulator"}, f"the emulator imports {internal}"
        return
    assert "emulator" not in internal or name in ("cli", "demo"), (
        f"{path.name}: library code must not import the emulator"
    )
    if name in ALLOWED:
        extra = internal - ALLOWED[name] - {name}
        assert not extra, f"{path.name} imports {sorted(extra)}, which sit above it"
    if name not in ("cli", "__main__"):
        assert "cli" not in internal, f"{path.name} imports cli"


@pytest.mark.parametrize(("name", "path"), _modules(), ids=lambda v: str(v))
def test_third_party_libraries_stay_in_their_modules(name: str, path: Path) -> None:
    for imp in _imports(path):
        top = imp.split(".")[0]
        if top in OWNERS:
            assert name in OWNERS[top], f"{path.name} imports {top}, owned by {OWNERS[top]}"


def test_every_module_uses_future_annotations() -> None:
    for _name, path in _modules():
        text = path.read_text(encoding="utf-8")
        if text.strip():
            assert "from __future__ import annotations" in text, path.name

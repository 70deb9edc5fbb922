"""Facts about the machine a run measured on, and where its scratch files go."""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def workdir() -> Path:
    """A directory for SQLite scratch files (on the same disk as /tmp)."""
    path = Path(tempfile.gettempdir()) / f"zt-bench-{os.getpid()}"
    path.mkdir(exist_ok=True)
    return path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "-"


def machine_facts(pg_url: str | None) -> dict[str, str]:
    """The machine, OS, Python, library and database versions, and the date."""
    import sqlite3

    facts = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{_cpu_model()}, {os.cpu_count()} cores, {_mem_total_gb()} GB RAM",
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "httpx": _version("httpx"),
        "sqlalchemy": _version("sqlalchemy"),
        "psycopg": _version("psycopg"),
        "zt-inventory": _git_revision(),
    }
    if pg_url:
        try:
            from sqlalchemy import create_engine, text

            engine = create_engine(pg_url)
            with engine.connect() as conn:
                facts["postgresql"] = str(conn.execute(text("SHOW server_version")).scalar())
            engine.dispose()
        except Exception as exc:  # reported, not fatal: the PostgreSQL runs will say more
            facts["postgresql"] = f"unreachable ({type(exc).__name__})"
    return facts


def _mem_total_gb() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f}"
    except OSError:
        pass
    return "?"


def _git(*args: str) -> str:
    run = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return run.stdout.strip()


def _git_revision() -> str:
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"

"""What every scenario needs: the emulator process, measured child processes, scratch databases.

A scenario starts an :class:`EmulatorProcess`, creates a :class:`ScratchDatabase` per measured
run, and runs the sync or the baseline through :func:`run_child`, which returns the child's
figures (wall time, phase times, peak RSS, the sync's counts) as a dict.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "BENCH-RESULT "
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CHILD_TIMEOUT_S = 3600


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZT_INVENTORY_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class EmulatorProcess:
    """``bench.emuproc`` in a subprocess; a context manager that stops it on exit.

    Args:
        devices, customers: the fleet's size.
        **options: more ``bench.emuproc`` options (``skew``, ``even``, ``latency``, ``quota``,
            ``quota_window``, ``seed``, ``unclaimed_share``).

    Attributes:
        url: the base URL it serves on.
        partner_id: the fleet's partner id.
        zt_devices: distinct devices a full zero-touch sync must find.
    """

    def __init__(self, devices: int, customers: int, **options: Any) -> None:
        argv = [sys.executable, "-m", "bench.emuproc", "--devices", str(devices)]
        argv += ["--customers", str(customers)]
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif value not in (None, False):
                argv += [flag, str(value)]
        self.devices, self.customers, self.options = devices, customers, options
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=_env(),
        )
        line = self._readline()
        ready = json.loads(line)
        self.url: str = ready["url"]
        self.partner_id: int = ready["partner_id"]
        self.zt_devices: int = ready["zt_devices"]

    def _readline(self) -> str:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.wait()
            raise RuntimeError(f"the emulator process ended (exit {code}) before answering")
        return line

    def _command(self, command: str) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        result: dict[str, Any] = json.loads(self._readline())
        return result

    def stats(self) -> dict[str, Any]:
        """Requests answered since the last reset, by method and status, with arrival times."""
        return self._command("stats")

    def reset(self) -> None:
        """Zero the request counters."""
        self._command("reset")

    def close(self) -> None:
        """Stop the process (idempotent)."""
        if self._proc.poll() is not None:
            return
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write("quit\n")
            self._proc.stdin.close()
            self._proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job (``kind`` = ``sync`` or ``baseline``) in a fresh process; return its figures.

    Raises:
        RuntimeError: the child failed; the message carries its stderr's tail.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "bench.child", json.dumps(job)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    tail = "\n".join(proc.stderr.splitlines()[-25:])
    raise RuntimeError(f"bench child {job.get('kind')} failed (exit {proc.returncode}):\n{tail}")


class ScratchDatabase:
    """An empty database for one measured run: a SQLite file or a PostgreSQL database.

    Args:
        kind: ``sqlite`` or ``postgresql``.
        pg_url: the PostgreSQL server's admin URL (a database there is used to CREATE/DROP).
        workdir: where SQLite files go.
    """

    def __init__(self, kind: str, pg_url: str, workdir: Path) -> None:
        self.kind = kind
        self._admin_url = pg_url
        if kind == "sqlite":
            self.path: Path | None = workdir / f"zt_bench_{uuid.uuid4().hex[:8]}.db"
            self.url = f"sqlite:///{self.path}"
            self.name = self.path.name
        else:
            from sqlalchemy.engine import make_url

            self.path = None
            self.name = f"zt_bench_{uuid.uuid4().hex[:10]}"
            self._admin("CREATE DATABASE " + self.name)
            parsed = make_url(pg_url).set(database=self.name)
            self.url = parsed.render_as_string(hide_password=False)

    def _admin(self, sql: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    def drop(self) -> None:
        """Delete the database (idempotent)."""
        if self.kind == "sqlite":
            assert self.path is not None
            for suffix in ("", "-wal", "-shm", ".lock"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
        elif self.name:
            self._admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            self.name = ""

    def __enter__(self) -> ScratchDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()


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

"""The processes of a measurement: the emulator (``zt-inventory emulator``) and measured children.

A scenario starts an :class:`EmulatorProcess`, which runs the real ``zt-inventory emulator``
command on a free loopback port and reads the emulator's own request counts from its
``/_emulator/stats`` path; and it runs each measured sync or baseline through
:func:`run_child`, a fresh ``python -m bench.child`` process whose figures (wall time, phase
times, peak RSS, the sync's counts) come back as a dict. Neither process shares a GIL or a
resident set with the code being measured.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from inventory.emulator import RESET_PATH, STATS_PATH

ROOT = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "BENCH-RESULT "
CHILD_TIMEOUT_S = 3600
STOP_TIMEOUT_S = 30

# The banner of ``zt-inventory emulator`` (inventory/cli/serve.py): the export line names the
# partner and the URL; the partner line says how many devices a default sync lists.
_EXPORT = re.compile(r"ZT_INVENTORY_PARTNER_ID=(\d+) ZT_INVENTORY_API_ENDPOINT=(\S+)")
_LISTED = re.compile(r"^Partner (\d+): [\d,]+ devices; a default sync lists ([\d,]+),")


def child_env() -> dict[str, str]:
    """The environment of a bench subprocess: no ``ZT_INVENTORY_*`` overrides, this checkout
    first on the path, unbuffered output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZT_INVENTORY_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class EmulatorProcess:
    """``zt-inventory emulator`` in a subprocess; a context manager that stops it on exit.

    Args:
        devices, customers: the fleet's size.
        **options: more options of the command, by their Python names (``skew``, ``even``,
            ``unclaimed_share``, ``chrome_share``, ``workspace_alone_share``, ``latency``,
            ``quota``, ``quota_window``, ``seed``); True is a flag, None or False leaves it out.

    Attributes:
        url: the base URL it serves on.
        partner_id: the fleet's partner id.
        zt_devices: the devices a default (zero-touch) sync lists, as its banner says.
        listed: {partner id: the devices a default sync of it lists} (``partners`` > 1).
    """

    def __init__(self, devices: int, customers: int, **options: Any) -> None:
        argv = [sys.executable, "-m", "inventory", "emulator", "--port", "0"]
        argv += ["--devices", str(devices), "--customers", str(customers)]
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif value is not None and value is not False:  # 0 and 0.0 are values
                argv += [flag, str(value)]
        self.devices, self.customers, self.options = devices, customers, options
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed by close()
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=ROOT,
            env=child_env(),
        )
        self.listed: dict[int, int] = {}
        try:
            self.partner_id, self.url, self.zt_devices = self._read_banner()
        except BaseException:
            self.close()
            raise
        self._http = httpx.Client(base_url=self.url, timeout=60.0)

    def _read_banner(self) -> tuple[int, str, int]:
        assert self._proc.stdout is not None
        found: tuple[int, str] | None = None
        partners = int(self.options.get("partners") or 1)
        for line in self._proc.stdout:
            export = _EXPORT.search(line)
            if export:
                found = int(export.group(1)), export.group(2)
            listed = _LISTED.match(line)
            if listed and found:
                self.listed[int(listed.group(1))] = int(listed.group(2).replace(",", ""))
                if len(self.listed) == partners:
                    return found[0], found[1], self.listed[found[0]]
        code = self._proc.wait()
        self._stderr.seek(0)
        tail = "\n".join(self._stderr.read().splitlines()[-10:])
        raise RuntimeError(f"zt-inventory emulator ended (exit {code}) before serving:\n{tail}")

    def stats(self) -> dict[str, Any]:
        """The emulator's counts since the last reset: ``requests``, ``by_method``,
        ``by_status`` (statuses as strings), ``bytes_sent`` and arrival ``times``."""
        answer = self._http.get(STATS_PATH)
        answer.raise_for_status()
        stats: dict[str, Any] = answer.json()
        return stats

    def reset(self) -> None:
        """Zero the emulator's counts (and its request log)."""
        self._http.post(RESET_PATH).raise_for_status()

    def close(self) -> None:
        """Stop the process with SIGTERM, as a service manager would (idempotent)."""
        if getattr(self, "_http", None) is not None:
            self._http.close()
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChildTimeoutError(RuntimeError):
    """A measured child ran longer than it was given, and was killed."""

    def __init__(self, kind: str, timeout_s: float) -> None:
        super().__init__(f"bench child {kind} stopped after {timeout_s:.0f} s")
        self.timeout_s = timeout_s


def run_child(job: dict[str, Any], timeout_s: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    """Run one job (``kind``: ``sync``, ``baseline`` or ``fetch``) in a fresh process.

    Returns:
        The child's figures (see ``bench.child``).

    Raises:
        ChildTimeoutError: it ran longer than ``timeout_s`` (it was killed).
        RuntimeError: the child failed; the message carries its stderr's tail.
    """
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.child", json.dumps(job)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=child_env(),
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ChildTimeoutError(str(job.get("kind")), timeout_s) from None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    tail = "\n".join(proc.stderr.splitlines()[-25:])
    raise RuntimeError(f"bench child {job.get('kind')} failed (exit {proc.returncode}):\n{tail}")

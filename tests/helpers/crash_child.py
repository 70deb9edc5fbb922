"""Run one sync and SIGKILL this process at a chosen point (tests/test_reliability_crash.py).

Usage: python tests/helpers/crash_child.py DATABASE_URL POINT STAGE
       python tests/helpers/crash_child.py --serve   (one forked child per JSON line on stdin)

The fleet is ``crash_emulator(STAGE)``, the same one the test process builds. The sync runs
in-process against it; POINT names where the process kills itself with SIGKILL (no cleanup, no
``finally``, no atexit: as if the machine lost power for this process). When the point is never
reached the script exits 3, so the test knows the kill point is stale.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from inventory.store import runs  # noqa: E402
from inventory.sync import merge, run_sync, staging  # noqa: E402
from tests.helpers.reliability import crash_emulator  # noqa: E402
from tests.syncutil import FakeSleep, commit_now, settings_for  # noqa: E402

STAGING_BATCH = 40  # small batches: several staging transactions per run
PAGE_SIZE = 20
NOT_REACHED = 3
NON_ATOMIC = "ZT_CRASH_CHILD_NON_ATOMIC_MERGE"  # negative control: a merge without a transaction


def die(where: str) -> None:
    sys.stderr.write(f"killing at {where}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class KillAtRequest(httpx.BaseTransport):
    """Dies when the ``nth`` request of API method ``method`` arrives, before it is answered."""

    def __init__(self, inner: httpx.BaseTransport, method: str | None, nth: int) -> None:
        self.inner = inner
        self.method = method
        self.nth = nth
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()  # requests come from several worker threads

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        name = "customers.list" if path.endswith("/customers") else path.rsplit(":", 1)[-1]
        with self.lock:
            self.seen[name] += 1
            hit = name == self.method and self.seen[name] == self.nth
        if hit:
            die(f"{name} request {self.nth}")
        return self.inner.handle_request(request)


def after_statement(prefix: str, nth: int) -> None:
    """Die right after the ``nth`` statement starting with ``prefix`` ran (uncommitted)."""
    count = Counter[str]()

    def hook(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(prefix):
            count[prefix] += 1
            if count[prefix] == nth:
                die(f"after {prefix} #{nth}, inside its transaction")

    event.listen(Engine, "after_cursor_execute", hook)


def wrap(
    owner: Any, name: str, *, before: bool = False, after: bool = False, when: Any = None
) -> None:
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        go = when is None or when(*args, **kwargs)
        if before and go:
            die(f"entering {name}")
        value = original(*args, **kwargs)
        if after and go:
            die(f"leaving {name}")
        return value

    setattr(owner, name, wrapper)


def merge_statement(k: int, *, atomic: bool = True) -> None:
    """Die after merge.apply's ``k``-th statement, inside the merge transaction.

    ``atomic=False`` is the negative control: every statement commits on its own, as a merge
    that forgot its transaction would, so the test can show that it notices the mix.
    """
    original = merge.apply

    def apply(conn: Any, run_id: int, *args: Any) -> None:
        count = [0]

        def execute(*args: Any, **kwargs: Any) -> Any:
            result = conn.execute(*args, **kwargs)
            if not atomic:
                commit_now(conn)
            return result

        class Counting:
            def execute(self, *args: Any, **kwargs: Any) -> Any:
                result = execute(*args, **kwargs)
                count[0] += 1
                if count[0] == k:
                    die(f"merge statement {k}")
                return result

            def __getattr__(self, attr: str) -> Any:
                return getattr(conn, attr)

        original(Counting(), run_id, *args)  # type: ignore[arg-type]

    merge.apply = apply  # type: ignore[assignment]


def flushes(n: int) -> None:
    """Small staging batches; die after the ``n``-th staging transaction committed."""
    init = staging.Stager.__init__
    flush = staging.Stager.flush
    done = [0]

    def new_init(self: Any, conn: Any, batch_size: int = 0) -> None:
        init(self, conn, STAGING_BATCH)

    def new_flush(self: Any) -> None:
        wrote = bool(self._devices)
        flush(self)
        done[0] += wrote
        if wrote and done[0] == n:
            die(f"after staging flush {n}")

    staging.Stager.__init__ = new_init  # type: ignore[method-assign]
    staging.Stager.flush = new_flush  # type: ignore[method-assign]


def run_point(url: str, point: str, stage: int) -> int:
    """Sync ``crash_emulator(stage)`` into ``url`` and die at ``point`` (or return 3)."""
    emu = crash_emulator(stage)
    transport: httpx.BaseTransport = emu.transport()
    if point == "open-run":
        wrap(runs, "open_run", after=True)
    elif point == "customers-request":
        transport = KillAtRequest(transport, "customers.list", 1)
    elif point == "customers-staged":
        wrap(staging, "stage_customers", after=True)
    elif point == "listing-page":
        transport = KillAtRequest(transport, "findByOwner", 6)
    elif point == "staging-flush":
        flushes(3)
    elif point == "in-flush":
        flushes(10**6)
        # the second batch's devices are written (INSERT on SQLite, COPY on PostgreSQL) but
        # not committed
        writes = Counter[str]()

        def second_devices_write(_sql: Any, _conn: Any, table: Any, *_: Any) -> bool:
            writes[table.name] += 1
            return table.name == "sync_staging_devices" and writes[table.name] == 2

        wrap(staging._StagingSql, "write", after=True, when=second_devices_write)
    elif point == "before-removals":
        wrap(merge, "stage_removals", before=True)
    elif point == "after-removals":
        wrap(merge, "stage_removals", after=True)
    elif point in ("merge-end", "first-run-merge"):
        wrap(merge, "apply", after=True)
    elif point.startswith("merge-"):
        merge_statement(int(point.split("-")[1]), atomic=not os.environ.get(NON_ATOMIC))
    elif point == "before-commit":
        after_statement("INSERT INTO SYNC_LISTINGS", 1)
    elif point == "after-commit":
        # staging.drop(conn) after a merge: the merge transaction has committed.
        wrap(staging, "drop", before=True)
    elif point == "between-runs":
        pass
    else:
        sys.stderr.write(f"unknown kill point {point}\n")
        return 2
    settings = settings_for(
        emu, url, api={"page_size": PAGE_SIZE, "concurrency": 2}, sync={"max_removed_fraction": 1.0}
    )
    result = run_sync(settings, transport=transport, sleep=FakeSleep())
    if point == "between-runs" and result.ok:
        die("after the run returned")
    sys.stderr.write(f"kill point {point} not reached; run {result.status}: {result.error}\n")
    return NOT_REACHED


def serve() -> None:
    """Fork a child per request line, so the imports are paid once per test worker.

    Reads JSON lines ``{"url", "point", "stage", "non_atomic"}`` on stdin; for each, forks a
    process that runs ``run_point`` (its patches stay in that process), waits for it and
    answers ``{"signal": N, "code": N}`` on stdout.
    """
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 4
            try:
                if job.get("non_atomic"):
                    os.environ[NON_ATOMIC] = "1"
                code = run_point(job["url"], job["point"], int(job["stage"]))
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        answer = {
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
            "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        }
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def main() -> int:
    if sys.argv[1:] == ["--serve"]:
        serve()
        return 0
    url, point, stage = sys.argv[1], sys.argv[2], int(sys.argv[3])
    return run_point(url, point, stage)


if __name__ == "__main__":
    sys.exit(main())

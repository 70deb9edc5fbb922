"""Running counts of the requests an emulator answered, for benchmarks and tests.

Unlike the request log, which keeps the last ``log_limit`` records, these counts cover every
request since the last reset: requests per API method and per HTTP status (0: the connection
was dropped), the bytes of the bodies sent (after gzip), and each API request's arrival on the
emulator's clock (the token endpoint's are left out: they use no quota).

The loopback server serves them as JSON at ``GET /_emulator/stats`` and clears them (and the
request log) on ``POST /_emulator/reset``. These two paths are the emulator's own, not part of
Google's API, and only the loopback server answers them: through ``emu.transport()`` they are
unknown paths like any other (tests read ``emu.stats`` directly).
"""

from __future__ import annotations

import threading
from array import array
from collections import Counter
from typing import Any

STATS_PATH = "/_emulator/stats"
RESET_PATH = "/_emulator/reset"


class RequestStats:
    """Counts of the requests answered since the last :meth:`reset`; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_method: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._bytes_sent = 0
        self._times = array("d")

    def add(self, method: str, status: int, at: float, bytes_sent: int) -> None:
        """Count one answered (or dropped) request."""
        with self._lock:
            self._by_method[method] += 1
            self._by_status[status] += 1
            self._bytes_sent += bytes_sent
            if method != "token":
                self._times.append(at)

    def by_method(self) -> dict[str, int]:
        """Requests per API method (``LoggedRequest.method`` names)."""
        with self._lock:
            return dict(self._by_method)

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._by_method.clear()
            self._by_status.clear()
            self._bytes_sent = 0
            self._times = array("d")

    def snapshot(self) -> dict[str, Any]:
        """The counts as JSON-ready values.

        Returns:
            ``requests`` (all), ``by_method``, ``by_status`` (keys are the statuses as
            strings), ``bytes_sent`` (bodies as sent) and ``times`` (each API request's
            arrival, emulator clock seconds, in the order they were counted).
        """
        with self._lock:
            return {
                "requests": sum(self._by_method.values()),
                "by_method": dict(self._by_method),
                "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "bytes_sent": self._bytes_sent,
                "times": self._times.tolist(),
            }

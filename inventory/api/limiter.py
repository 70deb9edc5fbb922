"""The client-side quota and concurrency cap, and the counters a run's threads share.

A sliding-window limiter keeps the request rate under ``quota_per_100s`` per
``quota_window_s``: a request counts from the moment it is sent until ``window`` after its
response arrived, so the server, which sees each request in between, can never count more
than the client allowed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class RequestLimiter:
    """At most ``max_requests`` requests in any ``window_s`` seconds, and ``concurrency`` at once.

    Thread-safe. ``max_requests = 0`` disables the rate cap (the concurrency cap stays).
    """

    def __init__(
        self,
        max_requests: int,
        window_s: float,
        concurrency: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_requests = max_requests
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._done: deque[float] = deque()  # response times of requests still in the window
        self._in_flight = 0

    def acquire(self) -> None:
        """Block until a request may be sent."""
        self._slots.acquire()
        if self.max_requests <= 0:
            return
        while True:
            with self._lock:
                now = self._clock()
                while self._done and self._done[0] <= now - self.window_s:
                    self._done.popleft()
                if len(self._done) + self._in_flight < self.max_requests:
                    self._in_flight += 1
                    return
                wait = (self._done[0] + self.window_s - now) if self._done else 0.05
            self._sleep(max(wait, 0.001))

    def release(self) -> None:
        """Record that a request's response arrived (or it failed)."""
        if self.max_requests > 0:
            with self._lock:
                self._in_flight -= 1
                self._done.append(self._clock())
        self._slots.release()


@dataclass
class Counters:
    """Requests sent and retries made, shared by the threads of a run."""

    requests: int = 0
    retries: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, requests: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries

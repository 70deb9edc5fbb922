"""Fault and load controls: latency, a quota window, periodic 429s, random 5xx, dropped
connections, scripted one-off faults, and the lifetime of issued tokens.

Order per API request (the token endpoint is exempt unless ``faults_on_token``):

1. ``latency_s`` is the least time each call takes: after answering, the emulator sleeps
   (through its injectable ``sleep``) what remains of it, so its own work counts toward it;
2. the next ``script`` entry, if any, is consumed: an HTTP status (429 carries Retry-After),
   ``"drop"`` (connection dropped), or ``None`` (no fault for this request);
3. ``fail_every``: every K-th API request (counting all of them) gets 429 with
   ``Retry-After: retry_after_s``;
4. ``drop_rate``: the connection is dropped with this probability (seeded RNG);
5. ``error_rate``: a 500 or 503 with this probability (seeded RNG);
6. after authentication and the partner check, the quota: at most ``quota_requests`` accepted
   requests in any sliding ``quota_window_s`` window; beyond it 429 RESOURCE_EXHAUSTED with
   ``Retry-After`` = whole seconds until the oldest request in the window leaves it. Refused
   requests do not use quota.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field

DROP = "drop"


@dataclass
class FaultConfig:
    """Mutable fault settings; every fault is off by default.

    Attributes:
        latency_s: seconds each API request takes at least, the emulator's own work included.
        quota_requests: requests allowed per ``quota_window_s`` (0: no quota). Google's default
            is 1000 per 100 s.
        quota_window_s: the quota's sliding window in seconds.
        fail_every: every K-th API request gets 429 (0: never).
        error_rate: probability of a 500/503 per API request.
        drop_rate: probability of a dropped connection per API request.
        token_ttl_s: lifetime of issued access tokens (``expires_in``).
        retry_after_s: Retry-After sent with ``fail_every`` and scripted 429/503 answers.
        seed: seed of the RNG behind ``error_rate`` and ``drop_rate``.
        script: one-off faults consumed by the next API requests, e.g. ``[500, "drop", 429]``.
        faults_on_token: apply latency, script and random faults to ``/token`` too.
    """

    latency_s: float = 0.0
    quota_requests: int = 0
    quota_window_s: float = 100.0
    fail_every: int = 0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    token_ttl_s: float = 3600.0
    retry_after_s: float = 1.0
    seed: int = 0
    script: list[int | str | None] = field(default_factory=list)
    faults_on_token: bool = False


@dataclass(frozen=True)
class Fault:
    """What the emulator does instead of answering: an error status, or a dropped connection."""

    status: int = 0  # 0 with drop=True
    retry_after: float | None = None
    drop: bool = False
    reason: str = ""


def retry_after_header(seconds: float) -> str:
    """Return a Retry-After value: whole seconds, rounded up (HTTP delta-seconds)."""
    return str(max(0, math.ceil(seconds - 1e-9)))


class FaultState:
    """Counters, RNG and quota window behind one ``FaultConfig``.

    Args:
        config: the settings (read afresh on every request, so tests may change them).
    """

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.requests = 0
        self.window: deque[float] = deque()

    def before(self) -> Fault | None:
        """Decide the fault (if any) of the next request, before authentication."""
        cfg = self.config
        self.requests += 1  # every API request counts towards fail_every, scripted ones too
        if cfg.script:
            item = cfg.script.pop(0)
            if item == DROP:
                return Fault(drop=True, reason="script")
            if isinstance(item, int):
                wait = cfg.retry_after_s if item in (429, 503) else None
                return Fault(item, wait, reason="script")
        if cfg.fail_every > 0 and self.requests % cfg.fail_every == 0:
            return Fault(429, cfg.retry_after_s, reason="fail_every")
        if cfg.drop_rate > 0 and self.rng.random() < cfg.drop_rate:
            return Fault(drop=True, reason="drop_rate")
        if cfg.error_rate > 0 and self.rng.random() < cfg.error_rate:
            return Fault(self.rng.choice((500, 503)), reason="error_rate")
        return None

    def quota(self, now: float) -> Fault | None:
        """Spend one unit of quota at ``now``; return a 429 fault when none is left."""
        cfg = self.config
        if cfg.quota_requests <= 0:
            return None
        window = self.window
        while window and window[0] <= now - cfg.quota_window_s:
            window.popleft()
        if len(window) >= cfg.quota_requests:
            wait = window[len(window) - cfg.quota_requests] + cfg.quota_window_s - now
            return Fault(429, max(wait, 1.0), reason="quota")
        window.append(now)
        return None

"""Changes to the fleet while a client pages: hooks a test schedules, and seeded churn.

- ``Emulator.after_requests(n, fn, method="findByOwner")`` schedules ``fn(emu)`` to run once,
  under the emulator's lock and before the answer is computed, when the n-th matching request
  (counted from the call) arrives: a test can move a device between two pages of a sync.
- ``Behaviour.churn_every`` makes every N-th findByOwner request move one device of its own
  listing out of it (``Churn``), so a terminal user sees what offset page tokens do.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from inventory.emulator.fleet import Fleet
from inventory.emulator.listing import OwnerQuery


@dataclass
class RequestHook:
    """A change to make when the ``after``-th matching request arrives.

    Attributes:
        after: which matching request (1: the next one) triggers it.
        action: called with the emulator.
        method: the method name that counts (``LoggedRequest.method``); None: any API request.
        seen: matching requests so far.
        fired: True once ``action`` has run.
    """

    after: int
    action: Callable[[Any], None]
    method: str | None = "findByOwner"
    seen: int = 0
    fired: bool = False


class Hooks:
    """The pending ``RequestHook``s of one emulator."""

    def __init__(self) -> None:
        self._pending: list[RequestHook] = []

    def add(self, hook: RequestHook) -> RequestHook:
        """Schedule ``hook``."""
        if hook.after < 1:
            raise ValueError(f"after must be 1 or more, not {hook.after}")
        self._pending.append(hook)
        return hook

    def due(self, method: str) -> list[RequestHook]:
        """Count a request of ``method``; return (and forget) the hooks it triggers."""
        out = []
        for hook in self._pending:
            if hook.method == method or (hook.method is None and method != "token"):
                hook.seen += 1
                if hook.seen >= hook.after:
                    hook.fired = True
                    out.append(hook)
        if out:
            self._pending = [h for h in self._pending if not h.fired]
        return out


class Churn:
    """Every N-th findByOwner request, one device of its listing leaves it.

    Args:
        seed: the fleet's seed; the same seed and requests make the same changes.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"zt-emulator churn:{seed}")
        self.requests = 0
        self.moved: list[int] = []

    def due(self, every: int) -> bool:
        """Count one findByOwner request; True when it is an N-th one."""
        self.requests += 1
        return every > 0 and self.requests % every == 0

    def leave(self, fleet: Fleet, query: OwnerQuery, listing: Sequence[int], returned: int) -> None:
        """Take one device out of ``listing``: unclaim it, or give it to a customer not named.

        Args:
            fleet: the fleet to change.
            query: the request's query.
            listing: the device indexes it lists now.
            returned: how many of them earlier pages returned; one of those is chosen when
                there are any, so later pages of an offset-token listing shift.
        """
        pool = listing[:returned] or listing
        if not pool:
            return
        device_id = fleet.device_id(pool[self.rng.randrange(len(pool))])
        others = [
            c.company_id
            for c in fleet.current_customers(query.partner)
            if c.company_id not in query.company_ids
            and c.google_workspace_customer_id not in query.workspace_ids
        ]
        if others and self.rng.random() < 0.5:
            target = others[self.rng.randrange(len(others))]
            fleet.move_device(device_id, target, query.section, query.partner)
        else:
            fleet.unclaim(device_id, query.section)
        self.moved.append(device_id)

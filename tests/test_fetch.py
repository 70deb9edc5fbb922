"""How pages are fetched (``inventory.sync.fetch``): request slots follow page chains.

Chains here are hand-made page iterators (no API, no database): their lengths are known to the
test, which logs every page a slot takes and checks the order against literal expectations for
small inputs, and against the scheduling rule's properties for larger ones.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from inventory.api import Page
from inventory.sync.fetch import Halt, fetch_pages

PAGE = 100  # items per page


@dataclass
class Chain:
    """A listing of ``pages`` pages; ``expected`` is what the plan believes (inf: unknown)."""

    name: str
    pages: int
    expected: float = math.inf


@dataclass
class Log:
    """Every page request, in the order slots made them."""

    taken: list[str] = field(default_factory=list)
    # at each request, before it: pages left of every unfinished chain, and whether it started
    left: list[dict[str, tuple[int, bool]]] = field(default_factory=list)
    most_in_flight: int = 0


def fetch_all(chains: list[Chain], concurrency: int, hold_s: float = 0.0) -> Log:
    """Fetch every page of ``chains`` with ``concurrency`` slots; the log of the requests.

    ``hold_s``: the first ``concurrency`` requests wait that long for one more to join them
    (it never should), so that every slot there is has its request in flight at once.
    """
    log = Log()
    lock = threading.Lock()
    served = {c.name: 0 for c in chains}
    in_flight = [0]
    gate = threading.Barrier(concurrency + 1, timeout=hold_s) if hold_s else None

    def open_pages(chain: Chain) -> Iterator[Page]:
        for number in range(chain.pages):
            with lock:
                log.taken.append(chain.name)
                log.left.append(
                    {
                        c.name: (c.pages - served[c.name], served[c.name] > 0)
                        for c in chains
                        if served[c.name] < c.pages
                    }
                )
                served[chain.name] += 1
                in_flight[0] += 1
                log.most_in_flight = max(log.most_in_flight, in_flight[0])
                first_round = len(log.taken) <= concurrency + 1
            if gate is not None and first_round:
                with contextlib.suppress(threading.BrokenBarrierError):
                    gate.wait()
            with lock:
                in_flight[0] -= 1
            last = number == chain.pages - 1
            yield Page(number, [{}] * PAGE, chain.pages * PAGE, None if last else f"t{number}")

    ended = []
    for item in fetch_pages(
        chains,
        open_pages,
        expected_pages=lambda c: c.expected,
        concurrency=concurrency,
        page_size=PAGE,
        halt=Halt(),
    ):
        if item.error is not None:
            raise item.error
        if item.ended:
            ended.append(item.task.name)
    assert sorted(ended) == sorted(c.name for c in chains)
    return log


# --- literal orders: one slot, so the order is exact ---------------------------------------------


def test_one_slot_follows_the_chain_with_the_most_pages_left() -> None:
    """A re-sync: the snapshot tells each chain's length. Ties go to the plan's order."""
    chains = [Chain("A", 2, 2), Chain("B", 5, 5), Chain("C", 3, 3)]
    assert "".join(fetch_all(chains, concurrency=1).taken) == "BBBCABCABC"


def test_one_slot_learns_the_lengths_from_first_pages() -> None:
    """A first sync: no length is known. A chain nobody started counts the mean length of the
    started ones (each first page's totalSize tells one), so A starts (nothing known), then B
    (mean 2 >= A's 1 left), then B goes on (mean 3.5 < its 4 left), then C starts (3.5 >= 3)."""
    chains = [Chain("A", 2), Chain("B", 5), Chain("C", 3)]
    assert "".join(fetch_all(chains, concurrency=1).taken) == "ABBCBBCABC"


def test_one_slot_starts_a_chain_of_unknown_length_first() -> None:
    """A re-sync with an owner new to the snapshot: its chain (length unknown) starts first;
    once its first page tells its length it takes turns with the known chains by pages left,
    the plan's order breaking ties (B before N at 3 left, at 2 and at 1)."""
    chains = [Chain("A", 1, 1), Chain("B", 3, 3), Chain("N", 4)]
    assert "".join(fetch_all(chains, concurrency=1).taken) == "NBNBNABN"


# --- properties of the rule, from the log --------------------------------------------------------


def _chains(seed: int, known: bool) -> list[Chain]:
    rng = random.Random(seed)
    lengths = [rng.choice([1, 1, 2, 3, 5, 8, 13, 40]) for _ in range(25)]
    return [Chain(f"c{n}", k, k if known else math.inf) for n, k in enumerate(lengths)]


@pytest.mark.parametrize("known", [True, False], ids=["re-sync", "first-sync"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_slot_never_takes_a_shorter_chain_while_a_longer_one_is_ready(
    seed: int, known: bool
) -> None:
    """One slot, so every unfinished chain whose length is known is ready at each request:
    on a re-sync all of them (the snapshot tells), on a first sync those started. The page
    taken is of one with the most pages left (or starts a chain of unknown length)."""
    chains = _chains(seed, known)
    log = fetch_all(chains, concurrency=1)
    assert len(log.taken) == sum(c.pages for c in chains)
    for name, left in zip(log.taken, log.left, strict=True):
        pages, started = left[name]
        if not known and not started:
            continue  # a fresh chain: when it starts is the mean-length rule's (tested above)
        ready = [n for n, (_, s) in left.items() if known or s]
        longest = max(left[n][0] for n in ready)
        assert pages == longest, (name, left)


def test_the_slots_work_at_once_and_no_more() -> None:
    """Four slots: the first four requests wait half a second for a fifth to join them: all
    four are in flight together, and no fifth comes."""
    chains = _chains(4, known=False)
    log = fetch_all(chains, concurrency=4, hold_s=0.5)
    assert len(log.taken) == sum(c.pages for c in chains)
    assert log.most_in_flight == 4
    for chain in chains:
        assert log.taken.count(chain.name) == chain.pages

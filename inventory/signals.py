"""The one way zt-inventory reacts to SIGINT and SIGTERM: a handler for the length of a block.

Used by ``sync`` (stop the run, nothing applied), ``emulator`` (stop serving) and the
scheduled service (stop after the current run). Handlers can only be set from the main
thread; elsewhere (a test calling a command in a thread) the block runs without them.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def on_signals(
    handler: Callable[[signal.Signals], None], signals: tuple[signal.Signals, ...] = STOP_SIGNALS
) -> Iterator[bool]:
    """Call ``handler(signal)`` on each of ``signals`` inside the block; restore the previous
    handlers after it.

    Yields:
        True when the handlers were installed (the main thread), False otherwise.
    """
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: handler(signal.Signals(signum)))
        for sig in signals
    }
    try:
        yield True
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

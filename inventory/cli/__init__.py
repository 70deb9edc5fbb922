"""The ``zt-inventory`` command line: the only package that prints or exits.

``app`` holds the group and what every command shares (options, one-line errors and exit
codes, logging, printing); ``read`` has ``init``, ``status`` and ``sql``; ``sync`` the sync
command; ``reconcile`` the reconcile command; ``serve`` ``schedule``, ``emulator`` and
``demo``.
"""

from __future__ import annotations

from inventory.cli import read, reconcile, serve, sync
from inventory.cli.app import main

__all__ = ["main", "read", "reconcile", "serve", "sync"]

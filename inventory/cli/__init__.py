"""The ``zt-inventory`` command line: the only package that prints or exits.

``app`` holds the group and what every command shares (options, one-line errors and exit
codes, logging, printing); ``read`` has ``init``, ``status`` and ``sql``; ``sync`` the sync
command; ``reconcile`` the reconcile command; ``check`` the API assumptions check; ``serve``
``schedule``, ``emulator`` and ``demo``.
"""

from __future__ import annotations

from inventory.cli import check, read, reconcile, serve, sync
from inventory.cli.app import main

__all__ = ["check", "main", "read", "reconcile", "serve", "sync"]

"""``python -m inventory`` runs the ``zt-inventory`` command line."""

from __future__ import annotations

from inventory.cli import main

if __name__ == "__main__":
    main()

"""zt-inventory: a SQL copy of a zero-touch reseller's device inventory."""

from __future__ import annotations

__version__ = "0.1.0"

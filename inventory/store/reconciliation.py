"""Reads of a reconciliation: each identifiers-CSV row's state (``v_reconciliation``), and the
devices of the file's orders that the file does not name (``ordernumber`` metadata)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from inventory.models import IdentifierLookup, table_of
from inventory.transform import IDENTIFIER_FIELDS

STATES = ("ok", "wrong_customer", "unclaimed", "not_registered", "error")
NOT_IN_FILE = "not_in_file"
ORDER_KEY = "ordernumber"  # the metadata key Google's docs suggest for a device's order
ORDERS_PER_QUERY = 500  # well under SQLite's bound-parameter limit

# the identifier columns a lookup keeps (the identifiers CSV's)
IDENTIFIER_COLUMNS = tuple(
    c for c in IDENTIFIER_FIELDS.values() if c in table_of(IdentifierLookup).c
)
# v_reconciliation's columns, in its order (revision 0007)
ROW_COLUMNS = (
    "line_number",
    *IDENTIFIER_COLUMNS,
    "order_number",
    "expected_company_id",
    "device_id",
    "company_id",
    "company_name",
    "state",
    "error",
)


def reconciliation_rows(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """``v_reconciliation``'s rows, when ``run_id`` is the newest run that looked identifiers
    up (the caller holds the writer lock, so no run came in between); else none."""
    query = text(
        f"SELECT {', '.join(ROW_COLUMNS)} FROM v_reconciliation WHERE run_id = :r "
        "ORDER BY line_number"
    )
    return [dict(row._mapping) for row in conn.execute(query, {"r": run_id})]


def devices_not_in_file(
    conn: Connection, run_id: int, orders: Sequence[str]
) -> list[dict[str, Any]]:
    """Current devices whose ``ordernumber`` metadata names one of ``orders`` but that no
    lookup of run ``run_id`` found, by order and device id.

    They come from the snapshot: a device registered to an order since the last sync is not
    among them yet.
    """
    columns = ", ".join(f"v.{c}" for c in ("device_id", *IDENTIFIER_COLUMNS))
    # ``m.key = 'ordernumber'`` as a literal: it is what lets both databases use the partial
    # index ix_device_metadata_ordernumber
    query = text(
        f"""
        SELECT m.value AS order_number, {columns}, v.company_id, v.company_name
        FROM device_metadata m JOIN v_devices v ON v.device_id = m.device_id
        WHERE m.key = '{ORDER_KEY}' AND m.value IN :orders
          AND m.device_id NOT IN (SELECT l.device_id FROM identifier_lookups l
                                  WHERE l.run_id = :r AND l.device_id IS NOT NULL)
        """
    ).bindparams(bindparam("orders", expanding=True))
    unique = sorted(set(orders))
    found: list[dict[str, Any]] = []
    for start in range(0, len(unique), ORDERS_PER_QUERY):
        chunk = unique[start : start + ORDERS_PER_QUERY]
        found += [dict(r._mapping) for r in conn.execute(query, {"orders": chunk, "r": run_id})]
    return sorted(found, key=lambda d: (d["order_number"], d["device_id"]))

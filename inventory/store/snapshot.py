"""Reads of the current snapshot that the sync, ``status`` and the scheduler share."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.engine import Connection

from inventory.models import Customer, Device


def current_fleet_size(conn: Connection) -> int:
    """Devices in the current snapshot (``removed_at IS NULL``)."""
    query = select(func.count()).select_from(Device).where(Device.removed_at.is_(None))
    return int(conn.execute(query).scalar_one())


def current_customer_count(conn: Connection) -> int:
    """Customers in the current snapshot."""
    query = select(func.count()).select_from(Customer).where(Customer.removed_at.is_(None))
    return int(conn.execute(query).scalar_one())


def devices_per_owner(
    conn: Connection, sections: Sequence[str], partner_id: int | None = None
) -> tuple[dict[int, int], dict[str, int]]:
    """Current devices per claim owner in these section types, as the last run left them
    (of claims a partner made, when ``partner_id`` is given: a run of several partners plans
    each partner's listings apart).

    Returns ({company id: devices}, {Workspace customer id: devices}): what a run expects each
    listing to page through (a Workspace listing returns every device whose claim names the
    account, with or without a company). Claims exist only for current devices, and the owner
    indexes answer both counts.
    """
    mine = "" if partner_id is None else "AND (reseller_id = :p OR reseller_id IS NULL) "
    by_company = text(
        "SELECT owner_company_id, COUNT(*) FROM device_claims WHERE section_type IN :s "
        f"AND owner_company_id IS NOT NULL {mine}GROUP BY owner_company_id"
    ).bindparams(bindparam("s", expanding=True))
    by_workspace = text(
        "SELECT google_workspace_customer_id, COUNT(*) FROM device_claims "
        f"WHERE section_type IN :s AND google_workspace_customer_id IS NOT NULL {mine}"
        "GROUP BY google_workspace_customer_id"
    ).bindparams(bindparam("s", expanding=True))
    params = {"s": list(sections), "p": partner_id}
    companies = {int(k): int(v) for k, v in conn.execute(by_company, params)}
    spaces = {str(k): int(v) for k, v in conn.execute(by_workspace, params)}
    return companies, spaces

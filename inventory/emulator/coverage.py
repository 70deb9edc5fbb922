"""``coverage``: how many of a partner's devices a default sync lists, and why not the rest.

A default sync asks findByOwner, in one section, for every customer that ``customers.list``
returns together with the customers' Google Workspace accounts. It cannot see devices that are
unclaimed in that section (unclaimed, or SIM-lock only when it syncs zero-touch), nor devices
claimed for a Workspace account that is no customer of the partner, unless the sync names that
account (``sync.google_workspace_customer_ids``). ``zt-inventory emulator`` prints these counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from inventory.emulator.fleet import Fleet
from inventory.emulator.records import SECTION_ZERO_TOUCH


@dataclass(frozen=True)
class Coverage:
    """What a default sync of one partner lists in one section.

    Attributes:
        partner_id: the partner.
        devices: devices the partner knows (registered or claimed), claimed or not.
        listed: devices claimed in the section by a customer or a customer's Workspace account.
        workspace_only: devices claimed in the section by a Workspace account of no customer.
        section: the section type counted.
    """

    partner_id: int
    devices: int
    listed: int
    workspace_only: int
    section: str = SECTION_ZERO_TOUCH

    @property
    def unlisted(self) -> int:
        """Devices with no claim in the section (unclaimed, or claimed in another only)."""
        return self.devices - self.listed - self.workspace_only


def coverage(
    fleet: Fleet, partner_id: int | None = None, section: str = SECTION_ZERO_TOUCH
) -> Coverage:
    """Count what a default sync of ``partner_id`` (None: the first partner) lists in ``section``.

    Args:
        fleet: the fleet.
        partner_id: the partner.
        section: the section type a sync lists.

    Returns:
        The counts.
    """
    pid = fleet.require_partner(partner_id)
    customers = fleet.current_customers(pid)
    own = {c.google_workspace_customer_id for c in customers} - {None}
    ids = [c.company_id for c in customers]
    listed = sum(len(a) for a in fleet.owner_lists(section, ids, [], pid))
    alone = 0
    for (sec, p, kind, owner), arr in fleet.index.arrays.items():
        if sec != section or p != pid or kind != "g":
            continue
        for i in arr:  # a claim naming a company too was counted with the company
            claim = fleet.section_claim(i, section)
            if claim is not None and claim.owner_company_id is None:
                if owner in own:
                    listed += 1
                else:
                    alone += 1
    if len(fleet.partner_ids) == 1:
        known = len(fleet)
    else:
        known = sum(1 for i in fleet.iter_indexes() if fleet.knows(i, pid))
    return Coverage(pid, known, listed, alone, section)

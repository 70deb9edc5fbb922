"""``Behaviour``: how the emulator answers where Google's discovery document leaves it open.

The discovery document fixes paths, fields and encodings, but not everything a server may do.
Each switch here picks one reading; the defaults are the emulator's long-standing behaviour, so
tests written against it keep their meaning. Switch them to check that a client copes with every
server the document allows:

- ``owners``: a findByOwner request naming both ``customerId`` and
  ``googleWorkspaceCustomerId``: ``"union"`` lists devices matching either (default);
  ``"intersect"`` lists only devices whose claim names one of the companies AND one of the
  Workspace accounts; ``"reject"`` answers 400 INVALID_ARGUMENT.
- ``max_ids_per_request``: the most ids (``customerId`` plus ``googleWorkspaceCustomerId``
  values) one findByOwner request may name; beyond it 400 INVALID_ARGUMENT. 0: no cap (default).
  The REST reference sets none; Google's reseller library caps its wrapper at 100.
- ``page_tokens``: ``"keyset"`` tokens resume after the last item returned, so changes made
  between pages neither skip nor repeat an item (default); ``"offset"`` tokens carry how many
  items were returned, and the next page starts at that index of the listing as it is then: an
  item that leaves the listing earlier in the order makes one item be skipped, one that joins
  earlier in the order makes one come back twice. Both are opaque, signed and bound to their
  query; they apply to findByOwner, findByIdentifier and the list methods.
- ``total_size``: findByOwner's ``totalSize``. ``"distinct"`` counts the devices listed
  (default); ``"per_owner"`` sums, over the owners the request names, the devices of the listing
  each owner matches, so a device matched by two named owners (its company and its Workspace
  account) counts twice.
- ``churn_every``: every N-th findByOwner request (counting those that pass validation), before
  it is answered, one device of the fleet that the request's listing contains leaves it: it is
  unclaimed in that section, or moved to another customer of the partner. A device that earlier
  pages of the request already returned is chosen when there is one, so offset tokens visibly
  skip a device. The choice is deterministic for a given fleet seed and request sequence. 0: off
  (default). ``Emulator.churned`` lists the device ids it moved.

``Emulator(fleet, behaviour=Behaviour(...))`` sets them; ``emu.behaviour`` stays mutable at run
time (assigning a new one also restarts the churn count). ``zt-inventory emulator`` exposes each
as an option (``--owners``, ``--max-ids-per-request``, ``--page-tokens``, ``--total-size``,
``--churn-every``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

OWNER_MODES = ("union", "intersect", "reject")
PAGE_TOKEN_MODES = ("keyset", "offset")
TOTAL_SIZE_MODES = ("distinct", "per_owner")
_CHOICES = {"owners": OWNER_MODES, "page_tokens": PAGE_TOKEN_MODES, "total_size": TOTAL_SIZE_MODES}
_COUNTS = ("max_ids_per_request", "churn_every")


@dataclass
class Behaviour:
    """Switches for what the discovery document leaves open (module docstring).

    Every assignment is checked, so a typo fails where it is made.

    Attributes:
        owners: ``"union"``, ``"intersect"`` or ``"reject"``: findByOwner naming both owner kinds.
        max_ids_per_request: most ids a findByOwner request may name (0: no cap).
        page_tokens: ``"keyset"`` or ``"offset"``.
        total_size: ``"distinct"`` or ``"per_owner"``: how findByOwner counts ``totalSize``.
        churn_every: every N-th findByOwner request, a device leaves its listing (0: never).
    """

    owners: str = "union"
    max_ids_per_request: int = 0
    page_tokens: str = "keyset"
    total_size: str = "distinct"
    churn_every: int = 0

    def __setattr__(self, name: str, value: Any) -> None:
        _check(name, value)
        super().__setattr__(name, value)

    def changed(self) -> dict[str, Any]:
        """Return the switches that differ from their defaults, by name."""
        default = Behaviour()
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        }


def _check(name: str, value: Any) -> None:
    choices = _CHOICES.get(name)
    if choices is not None and value not in choices:
        raise ValueError(f"Behaviour.{name} must be one of {choices}, not {value!r}")
    if name in _COUNTS and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"Behaviour.{name} must be a whole number >= 0, not {value!r}")

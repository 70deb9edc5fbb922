"""``FleetView``: the emulator's ground truth and the mutations tests make, under its lock.

Every mutation takes the emulator's lock, so it never lands in the middle of an answer; the
fleet (``fleet.Fleet``) documents what each one does and raises. ``partner_id`` arguments pick
one partner of a fleet of several (None: the first, ``emu.partner_id``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from inventory.emulator.fleet import Fleet
from inventory.emulator.records import SECTION_ZERO_TOUCH, JsonObject


class FleetView:
    """Ground truth and mutations of ``self.fleet``; ``Emulator`` inherits them."""

    fleet: Fleet
    _lock: threading.RLock
    echo_input_only: bool

    def iter_devices(self, partner_id: int | None = None) -> Iterator[JsonObject]:
        """Yield every device (claimed or not) as the API encodes it, by deviceId.

        Args:
            partner_id: only the devices this partner knows (registered or claimed), named as
                it sees them; None: every device of the fleet (of the partner, when only one).
        """
        return self.fleet.iter_devices(partner_id)

    def iter_customers(self, partner_id: int | None = None) -> Iterator[JsonObject]:
        """Yield every current customer's Company JSON as ``customers.list`` returns it.

        Args:
            partner_id: only this partner's customers; None: every customer of the fleet.
        """
        return self.fleet.iter_customers(
            echo_input_only=self.echo_input_only, partner_id=partner_id
        )

    def move_device(
        self,
        device_id: int,
        company_id: int,
        section_type: str = SECTION_ZERO_TOUCH,
        partner_id: int | None = None,
    ) -> None:
        """Give a device's ``section_type`` claim to another customer (see ``Fleet``)."""
        with self._lock:
            self.fleet.move_device(device_id, company_id, section_type, partner_id)

    def unclaim(self, device_id: int, section_type: str = SECTION_ZERO_TOUCH) -> None:
        """Remove a device's ``section_type`` claim."""
        with self._lock:
            self.fleet.unclaim(device_id, section_type)

    def claim(
        self,
        device_id: int,
        company_id: int,
        section_type: str = SECTION_ZERO_TOUCH,
        partner_id: int | None = None,
    ) -> None:
        """Claim a device (unclaimed in ``section_type``) for a customer (of ``partner_id``)."""
        with self._lock:
            self.fleet.claim(device_id, company_id, section_type, partner_id)

    def transfer_device(
        self,
        device_id: int,
        to_partner_id: int,
        company_id: int,
        section_type: str = SECTION_ZERO_TOUCH,
    ) -> None:
        """Hand a device to another partner, claimed for its customer ``company_id``."""
        with self._lock:
            self.fleet.transfer_device(device_id, to_partner_id, company_id, section_type)

    def set_metadata(self, device_id: int, entries: Mapping[str, str]) -> None:
        """Replace a device's metadata entries."""
        with self._lock:
            self.fleet.set_metadata(device_id, entries)

    def add_device(self, **kwargs: Any) -> int:
        """Register a new device and return its deviceId (kwargs of ``Fleet.add_device``)."""
        with self._lock:
            return self.fleet.add_device(**kwargs)

    def remove_device(self, device_id: int) -> None:
        """Delete a device from every listing and lookup."""
        with self._lock:
            self.fleet.remove_device(device_id)

    def add_customer(self, company_name: str, **kwargs: Any) -> int:
        """Add a customer and return its companyId (kwargs of ``Fleet.add_customer``)."""
        with self._lock:
            return self.fleet.add_customer(company_name, **kwargs)

    def remove_customer(self, company_id: int) -> None:
        """Remove a customer from customers.list and drop every claim it owns."""
        with self._lock:
            self.fleet.remove_customer(company_id)

"""findByIdentifier's matching rules: which of a partner's devices a DeviceIdentifier names.

The discovery document says a serial-number match ignores case (revision 20250331) and that
serial numbers may repeat across models, so the emulator wants a manufacturer beside one. An IMEI
(or MEID) matches either slot of a device.
"""

from __future__ import annotations

from collections.abc import Mapping

from inventory.emulator.fleet import Fleet
from inventory.emulator.records import DEVICE_TYPE_ANDROID, DEVICE_TYPE_CHROME_OS
from inventory.emulator.rpc import invalid

KNOWN_TYPES = (DEVICE_TYPE_ANDROID, DEVICE_TYPE_CHROME_OS)


def match_identifier(
    fleet: Fleet, ident: Mapping[str, str], partner: int | None = None
) -> list[int]:
    """Return the sorted indexes of devices (known to ``partner``; None: any) matching a
    DeviceIdentifier query.

    The first identifier present picks candidates: imei/imei2 (either matches either),
    then meid/meid2, then serialNumber (any case; manufacturer required), then
    chromeOsAttestedDeviceId. Every other field given must then match too (manufacturer
    and model case-insensitively; deviceType ANDROID also matches devices without one).

    Raises:
        RpcError: 400 when no usable identifier is given.
    """
    imeis = {ident[k].strip() for k in ("imei", "imei2") if ident.get(k, "").strip()}
    meids = {ident[k].strip().upper() for k in ("meid", "meid2") if ident.get(k, "").strip()}
    serial = ident.get("serialNumber", "").strip().upper()
    attested = ident.get("chromeOsAttestedDeviceId", "").strip()
    maker = ident.get("manufacturer", "").strip().lower()
    model = ident.get("model", "").strip().lower()
    kind = ident.get("deviceType", "")
    if serial and not maker:
        raise invalid("Request contains an invalid argument: a serial_number needs a manufacturer.")
    candidates: set[int] = set()
    if imeis:
        for value in imeis:
            candidates |= fleet.lookup("imei", value)
    elif meids:
        for value in meids:
            candidates |= fleet.lookup("meid", value)
    elif serial:
        candidates = fleet.lookup("serial", serial)
    elif attested:
        candidates = fleet.lookup("attested", attested)
    else:
        raise invalid(
            "Request contains an invalid argument: device_identifier needs an imei, meid, "
            "serial_number (with manufacturer) or chrome_os_attested_device_id."
        )
    found = []
    for i in candidates:
        if partner is not None and not fleet.knows(i, partner):
            continue
        d = fleet.identifiers(i)
        if (
            (imeis and not imeis & {d.get("imei"), d.get("imei2")})
            or (
                meids and not meids & {d.get("meid", "").upper(), d.get("meid2", "").upper()} - {""}
            )
            or (serial and d.get("serialNumber", "").upper() != serial)
            or (attested and d.get("chromeOsAttestedDeviceId") != attested)
            or (maker and d.get("manufacturer", "").lower() != maker)
            or (model and d.get("model", "").lower() != model)
            or (kind in KNOWN_TYPES and d.get("deviceType", DEVICE_TYPE_ANDROID) != kind)
        ):
            continue
        found.append(i)
    return sorted(found)

"""Device content derived from one 64-bit hash per device: vacation mode, services, metadata,
the order it was shipped in.

A generated device stores none of these; ``store.FleetStore`` passes the device's hash and gets
the same values every time, so a fleet of millions stays compact and reproducible.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from inventory.emulator.codec import mix64
from inventory.emulator.names import LONG_VALUE_UNIT, METADATA_KEYS, METADATA_VALUES
from inventory.emulator.records import DEVICE_PROTECTION, SECTION_ZERO_TOUCH, Claim

_VACATION_EPOCH = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())


def rfc3339(seconds: int, millis: int = 0) -> str:
    """Format a UTC Unix time as RFC 3339 with a ``Z``, with milliseconds only when nonzero."""
    text = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def android_zt_claim(h: int, company_id: int) -> Claim:
    """Return an Android device's zero-touch claim: ~1% in vacation mode, ~2% protected."""
    start = expire = service = None
    if (h >> 30) & 1023 < 12:
        h2 = mix64(h)
        begin = _VACATION_EPOCH + h2 % (540 * 86400)
        start = rfc3339(begin, (h2 >> 40) % 1000 if (h2 >> 38) & 1 else 0)
        expire = rfc3339(begin + (30 + (h2 >> 20) % 150) * 86400)
    if (h >> 40) & 1023 < 25:
        service = DEVICE_PROTECTION
    return Claim(SECTION_ZERO_TOUCH, company_id, None, start, expire, service)


def metadata(h: int) -> dict[str, str]:
    """Return metadata entries for hash ``h`` (often none; sometimes dozens, long, unicode)."""
    c = (h >> 50) & 1023
    if c < 460:
        return {}
    n = 1 + c % 2 if c < 770 else 3 + c % 4 if c < 945 else 7 + c % 9 if c < 1015 else 16 + c % 25
    rng = random.Random(h)
    keys = rng.sample(METADATA_KEYS, min(n, len(METADATA_KEYS)))
    keys += [f"custom_field_{k}" for k in range(n - len(keys))]
    out: dict[str, str] = {}
    for key in keys:
        roll = rng.random()
        if key == "asset_tag":
            out[key] = f"AT-{rng.randrange(10**6):06d}"
        elif roll < 0.04:
            out[key] = LONG_VALUE_UNIT * rng.randint(8, 60)
        else:
            out[key] = rng.choice(METADATA_VALUES)
    return out


ORDER_KEY = "ordernumber"  # the metadata key Google's docs suggest for a device's order
ORDER_SHARE = 400  # of 1024: about 39% of a customer's zero-touch devices carry their order
ORDERS_PER_CUSTOMER = 3


def order_number(h: int, customer: int) -> str | None:
    """Return the order a device of customer number ``customer`` was shipped in (its
    ``ordernumber`` metadata), or None for a device registered without one."""
    if (h >> 10) & 1023 >= ORDER_SHARE:
        return None
    return f"SO-{customer + 1:05d}-{1 + (h >> 60) % ORDERS_PER_CUSTOMER}"

"""Invertible, seeded encodings of a device's index into its hardware identifiers.

A million devices cannot each carry a dict of strings, so the fleet stores only a model number
per device and computes identifiers on demand from ``(seed, index)``. Every encoding here is a
bijection, so a lookup by IMEI, MEID, serial number or attested device ID decodes the index
straight from the value and then checks that the device really carries it: no reverse index is
built for the generated fleet.

- IMEI: 6-digit per-model TAC prefix + 8 scrambled digits of ``2*index + slot`` + Luhn digit.
- MEID: ``A1`` + 4-hex per-model code + 8 scrambled hex digits of ``2*index + slot``.
- serial: per-model prefix + 8 scrambled base-36 characters of the index.
- Chrome OS attested device ID: 10 scrambled base-36 characters of the index.
"""

from __future__ import annotations

import string

M64 = (1 << 64) - 1
B36 = string.digits + string.ascii_uppercase
_B36_VALUE = {ch: n for n, ch in enumerate(B36)}
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def mix64(x: int) -> int:
    """Return splitmix64's output for ``x``: a cheap, well-mixed 64-bit hash.

    Args:
        x: any integer (reduced modulo 2**64).

    Returns:
        A 64-bit unsigned integer.
    """
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def luhn_digit(body: str) -> str:
    """Return the Luhn check digit that completes ``body`` (the IMEI check digit).

    Args:
        body: the digits before the check digit.

    Returns:
        One decimal digit as a string.
    """
    # Digits in odd positions from the right are doubled (digit sum of the product).
    total = sum(map(_DOUBLED.__getitem__, map(int, body[::-1][::2])))
    total += sum(map(int, body[::-1][1::2]))
    return str(-total % 10)


def luhn_valid(number: str) -> bool:
    """Return True when ``number`` is all digits and its last digit is its Luhn check digit."""
    return len(number) > 1 and number.isdigit() and luhn_digit(number[:-1]) == number[-1]


class Scrambler:
    """A seeded bijection on ``range(modulus)``: affine, swap halves, affine.

    Args:
        modulus: size of the domain; ``split`` must divide it.
        split: the swap step turns ``hi * split + lo`` into ``lo * (modulus / split) + hi``.
        seed: picks the affine constants.
    """

    def __init__(self, modulus: int, split: int, seed: int) -> None:
        self.modulus = modulus
        self.split = split
        self.other = modulus // split
        self.a1 = self._unit(mix64(seed ^ 0xA1), modulus)
        self.b1 = mix64(seed ^ 0xB1) % modulus
        self.a2 = self._unit(mix64(seed ^ 0xA2), modulus)
        self.b2 = mix64(seed ^ 0xB2) % modulus
        self.i1 = pow(self.a1, -1, modulus)
        self.i2 = pow(self.a2, -1, modulus)

    @staticmethod
    def _unit(candidate: int, modulus: int) -> int:
        # Multipliers coprime with 2, 3 and 5 are units modulo 10**k, 16**k and 36**k alike.
        a = candidate % modulus
        while a < 2 or a % 2 == 0 or a % 3 == 0 or a % 5 == 0:
            a = (a + 1) % modulus
        return a

    def forward(self, x: int) -> int:
        """Map ``x`` (``0 <= x < modulus``) to its scrambled value."""
        y = (x * self.a1 + self.b1) % self.modulus
        hi, lo = divmod(y, self.split)
        y = lo * self.other + hi
        return (y * self.a2 + self.b2) % self.modulus

    def backward(self, y: int) -> int:
        """Invert :meth:`forward`."""
        y = ((y - self.b2) * self.i2) % self.modulus
        lo, hi = divmod(y, self.other)
        y = hi * self.split + lo
        return ((y - self.b1) * self.i1) % self.modulus


def to_b36(value: int, width: int) -> str:
    """Encode ``value`` as exactly ``width`` upper-case base-36 characters."""
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 36)
        chars.append(B36[rem])
    return "".join(reversed(chars))


def from_b36(text: str) -> int | None:
    """Decode upper-case base-36 text; None when a character is not base-36."""
    value = 0
    for ch in text:
        digit = _B36_VALUE.get(ch)
        if digit is None:
            return None
        value = value * 36 + digit
    return value


class IdentifierCodec:
    """The identifier encodings of one fleet (one seed).

    Args:
        seed: the fleet seed.
        model_count: how many models the per-model prefixes must tell apart.
    """

    SERIAL_WIDTH = 8
    ATTESTED_WIDTH = 10

    def __init__(self, seed: int, model_count: int) -> None:
        self.imei = Scrambler(10**8, 10**4, seed ^ 0x1E1)
        self.meid = Scrambler(16**8, 16**4, seed ^ 0x3E1D)
        self.serial = Scrambler(36**self.SERIAL_WIDTH, 36**4, seed ^ 0x5E41)
        self.attested = Scrambler(36**self.ATTESTED_WIDTH, 36**5, seed ^ 0xA77E)
        # 6-digit TAC prefixes: reporting body "35" plus 4 digits, distinct per model.
        self.tac = [f"35{(7919 * m + 1237 + seed % 97) % 10000:04d}" for m in range(model_count)]
        self.tac_model = {tac: m for m, tac in enumerate(self.tac)}
        self.meid_code = [
            f"{(0x3B00 + 0x10D * m + seed % 251) & 0xFFFF:04X}" for m in range(model_count)
        ]
        self.meid_model = {code: m for m, code in enumerate(self.meid_code)}

    def imei_of(self, index: int, slot: int, model: int) -> str:
        """Return the IMEI in ``slot`` (0: imei, 1: imei2) of device ``index``."""
        body = f"{self.tac[model]}{self.imei.forward(2 * index + slot):08d}"
        return body + luhn_digit(body)

    def decode_imei(self, value: str) -> tuple[int, int, int] | None:
        """Return ``(index, slot, model)`` that would produce ``value``, or None."""
        if len(value) != 15 or not value.isdigit():
            return None
        model = self.tac_model.get(value[:6])
        if model is None:
            return None
        x = self.imei.backward(int(value[6:14]))
        return x >> 1, x & 1, model

    def meid_of(self, index: int, slot: int, model: int) -> str:
        """Return the MEID in ``slot`` (0: meid, 1: meid2) of device ``index``."""
        return f"A1{self.meid_code[model]}{self.meid.forward(2 * index + slot):08X}"

    def decode_meid(self, value: str) -> tuple[int, int, int] | None:
        """Return ``(index, slot, model)`` that would produce ``value`` (any case), or None."""
        value = value.upper()
        if len(value) != 14 or not value.startswith("A1"):
            return None
        model = self.meid_model.get(value[2:6])
        if model is None:
            return None
        try:
            y = int(value[6:], 16)
        except ValueError:
            return None
        x = self.meid.backward(y)
        return x >> 1, x & 1, model

    def serial_of(self, index: int, prefix: str) -> str:
        """Return the serial number of device ``index`` whose model uses ``prefix``."""
        return prefix + to_b36(self.serial.forward(index), self.SERIAL_WIDTH)

    def decode_serial(self, value: str, prefix: str) -> int | None:
        """Return the index whose serial under ``prefix`` is ``value`` (any case), or None."""
        value = value.upper()
        if len(value) != len(prefix) + self.SERIAL_WIDTH or not value.startswith(prefix):
            return None
        y = from_b36(value[len(prefix) :])
        return None if y is None else self.serial.backward(y)

    def attested_of(self, index: int) -> str:
        """Return the Chrome OS attested device ID of device ``index``."""
        return to_b36(self.attested.forward(index), self.ATTESTED_WIDTH)

    def decode_attested(self, value: str) -> int | None:
        """Return the index whose attested device ID is ``value``, or None."""
        if len(value) != self.ATTESTED_WIDTH:
            return None
        y = from_b36(value)
        return None if y is None else self.attested.backward(y)

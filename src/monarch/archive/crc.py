"""Streaming CRC-64/XZ, the checksum a mongodump archive keeps per namespace.

The archive's end-of-collection block stores CRC-64 (ECMA-182 polynomial, reflected, init and
final xor ``~0``) over the bytes of all of a namespace's documents, as the signed 64-bit integer
with the same bits. The arithmetic runs in C (``anycrc``): a pure-Python CRC would cap the whole
pipeline near 10 MB/s.
"""

from __future__ import annotations

from typing import Any

import anycrc

_MODEL: Any = anycrc.Model("CRC64-XZ")
_BIT63 = 1 << 63
_MASK = (1 << 64) - 1


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Return the unsigned CRC-64/XZ of ``data``, continuing from a previous ``crc``.

    ``crc64(b, crc64(a)) == crc64(a + b)``; the CRC of no bytes is 0.
    """
    if not data:
        return crc
    return int(_MODEL.calc(data, crc))


def to_signed(crc: int) -> int:
    """Return the int64 with the same bits as the unsigned 64-bit ``crc`` (the stored form)."""
    crc &= _MASK
    return crc - (1 << 64) if crc & _BIT63 else crc


def to_unsigned(value: int) -> int:
    """Return the unsigned 64-bit value with the same bits as the int64 ``value``."""
    return value & _MASK


class Crc64:
    """An incremental CRC-64/XZ: feed it with :meth:`update`, read :attr:`value` at any time."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0
        """The unsigned CRC of everything given to :meth:`update` so far."""

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Add ``data`` to the checksum."""
        self.value = crc64(data, self.value)

    @property
    def signed(self) -> int:
        """The CRC as mongodump stores it: an int64 with the same bits."""
        return to_signed(self.value)

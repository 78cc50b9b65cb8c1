"""A small, seeded mutation engine: valid samples in, damaged variants out.

Every case is reproducible from ``(seed, case)`` alone (:func:`case_rng`), so a crash found in a
nightly run can be replayed without the run that found it. Mutations work on bytes and know one
structure, BSON's int32 length prefixes (documents, strings, binaries, which is what the
archive and ``.bson`` readers trust most), so those fields are set to extremes far more often than
blind flips would manage.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence

INT32 = struct.Struct("<i")
INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
MAX_BSON = 16 * 1024 * 1024 + 16 * 1024  # the readers' document-size ceiling
INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x02, 0x03, 0x05, 0x10, 0x12, 0x22, 0x7B)

# BSON element types whose value starts with an int32 byte count.
_STRINGLIKE = {0x02, 0x0D, 0x0E}  # string, JavaScript code, symbol
_DOCUMENTS = {0x03, 0x04}  # embedded document, array
_FIXED = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16,
          0x06: 0, 0x7F: 0, 0xFF: 0}


def case_rng(seed: int, case: int) -> random.Random:
    """The random source of one case: the same ``(seed, case)`` gives the same mutations."""
    return random.Random(f"monarch-fuzz:{seed}:{case}")


def length_fields(data: bytes, start: int = 0) -> list[int]:
    """Offsets of the int32 length prefixes of the BSON documents laid end to end from ``start``
    (a ``.bson`` file, or an archive after its 4-byte magic), their nested documents, strings
    and binaries. A terminator (-1) is skipped; the walk stops at the first thing it cannot read.
    """
    found: list[int] = []
    pos = start
    while pos + 4 <= len(data):
        (size,) = INT32.unpack_from(data, pos)
        if size == -1:
            found.append(pos)
            pos += 4
            continue
        if size < 5 or pos + size > len(data) or data[pos + size - 1] != 0:
            break
        _walk_document(data, pos, pos + size, found, depth=0)
        pos += size
    return found


def _walk_document(data: bytes, pos: int, end: int, found: list[int], depth: int) -> None:
    found.append(pos)
    if depth > 20:
        return
    i = pos + 4
    while i < end - 1:
        kind = data[i]
        name_end = data.find(b"\x00", i + 1, end)
        if name_end < 0:
            return
        i = name_end + 1
        if i + 4 > end:
            return
        if kind in _STRINGLIKE or kind == 0x05:
            found.append(i)
            (size,) = INT32.unpack_from(data, i)
            if size < 0:
                return
            i += 4 + size + (1 if kind == 0x05 else 0)
        elif kind in _DOCUMENTS:
            (size,) = INT32.unpack_from(data, i)
            if size < 5 or i + size > end:
                return
            _walk_document(data, i, i + size, found, depth + 1)
            i += size
        elif kind == 0x0F:  # code with scope: total length, string, document
            found.append(i)
            (size,) = INT32.unpack_from(data, i)
            if size < 14:
                return
            i += size
        elif kind == 0x0B:  # regex: two C strings
            for _ in range(2):
                stop = data.find(b"\x00", i, end)
                if stop < 0:
                    return
                i = stop + 1
        elif kind == 0x0C:  # DBPointer: string then 12 bytes
            found.append(i)
            (size,) = INT32.unpack_from(data, i)
            if size < 0:
                return
            i += 4 + size + 12
        elif kind in _FIXED:
            i += _FIXED[kind]
        else:
            return


class Mutator:
    """Turns a sample (bytes) into a damaged variant, one to three mutations deep.

    ``fields(data)`` names the offsets of int32 length fields the sample has (for formats that
    have some); ``others`` are the samples of the same kind, for splices.
    """

    def __init__(self, fields: Callable[[bytes], list[int]] | None = None) -> None:
        self._fields = fields
        self._ops: list[tuple[int, Callable[[random.Random, bytes, Sequence[bytes]], bytes]]] = [
            (4, self.flip_bits),
            (3, self.set_bytes),
            (2, self.truncate),
            (2, self.splice),
            (2, self.duplicate_chunk),
            (1, self.delete_chunk),
            (1, self.insert_bytes),
            (5 if fields else 1, self.set_length_field),
        ]

    def mutate(self, rng: random.Random, data: bytes, others: Sequence[bytes] = ()) -> bytes:
        """One to three stacked mutations of ``data``."""
        weights = [w for w, _ in self._ops]
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            _, op = rng.choices(self._ops, weights)[0]
            data = op(rng, data, others)
        return data

    @staticmethod
    def flip_bits(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
        """Flip one to eight random bits."""
        if not data:
            return bytes([rng.randrange(256)])
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(out))
            out[at] ^= 1 << rng.randrange(8)
        return bytes(out)

    @staticmethod
    def set_bytes(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
        """Set one to four bytes to values parsers treat specially (0, 0xff, type codes...)."""
        if not data:
            return bytes([rng.choice(INTERESTING_BYTES)])
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.choice((*INTERESTING_BYTES, rng.randrange(256)))
        return bytes(out)

    @staticmethod
    def truncate(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
        """Cut the end off (sometimes just a few bytes, sometimes most of it)."""
        if len(data) < 2:
            return b""
        if rng.random() < 0.4:
            return data[: len(data) - rng.randint(1, min(16, len(data)))]
        return data[: rng.randrange(len(data))]

    @staticmethod
    def splice(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
        """The head of this sample followed by the tail of another (or of itself)."""
        other = rng.choice(list(others)) if others else data
        cut = rng.randint(0, len(data))
        from_other = rng.randint(0, len(other))
        return data[:cut] + other[from_other:]

    @staticmethod
    def duplicate_chunk(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
        """Copy a chunk and insert it elsewhere (a repeated block, a replayed segment)."""
        if not data:
            return data
        start = rng.randrange(len(data))
        end = min(len(data), start + rng.choice((1, 4, 16, 64, 512, 4096)))
        at = rng.randint(0, len(data))
        return data[:at] + data[start:end] * rng.choice((1, 1, 2, 8)) + data[at:]

    @staticmethod
    def delete_chunk(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
        """Remove a chunk from the middle."""
        if not data:
            return data
        start = rng.randrange(len(data))
        return data[:start] + data[start + rng.choice((1, 3, 4, 17, 256)) :]

    @staticmethod
    def insert_bytes(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
        """Insert a few random or repeated bytes."""
        at = rng.randint(0, len(data))
        filler = (
            rng.randbytes(rng.randint(1, 16))
            if rng.random() < 0.5
            else bytes([rng.choice(INTERESTING_BYTES)]) * rng.choice((1, 4, 100, 5000))
        )
        return data[:at] + filler + data[at:]

    def set_length_field(self, rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
        """Set an int32 length field to 0, -1, a huge value, or just over what is left."""
        if len(data) < 4:
            return self.set_bytes(rng, data, others)
        fields = self._fields(data) if self._fields else []
        at = rng.choice(fields) if fields else rng.randrange(len(data) - 3)
        if at + 4 > len(data):
            return self.set_bytes(rng, data, others)
        (old,) = INT32.unpack_from(data, at)
        left = len(data) - at
        value = rng.choice(
            (0, -1, -2, 1, 4, 5, INT32_MAX, INT32_MIN, MAX_BSON, MAX_BSON + 1,
             left, left + 1, old + 1, old - 1, old * 2, 2**24)
        )
        value = max(INT32_MIN, min(INT32_MAX, value))
        return data[:at] + INT32.pack(value) + data[at + 4 :]

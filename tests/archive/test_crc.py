"""CRC-64/XZ: the checksum mongodump stores per namespace."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from monarch.archive import Crc64, crc64, to_signed, to_unsigned


def test_check_value_of_the_standard_test_string() -> None:
    assert crc64(b"123456789") == 0x995DC9BBDF1939FA


def test_crc_of_nothing_is_zero() -> None:
    assert crc64(b"") == 0
    assert Crc64().value == 0


@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=6))
def test_incremental_crc_equals_one_shot(data: bytes, cuts: list[int]) -> None:
    crc = Crc64()
    start = 0
    for cut in sorted(min(c, len(data)) for c in cuts):
        crc.update(memoryview(data)[start:cut])
        start = cut
    crc.update(data[start:])
    assert crc.value == crc64(data)


def test_signed_form_has_the_same_bits() -> None:
    assert to_signed(0x995DC9BBDF1939FA) == 0x995DC9BBDF1939FA - 2**64
    assert to_signed(5) == 5
    assert to_unsigned(to_signed(0x995DC9BBDF1939FA)) == 0x995DC9BBDF1939FA


def test_signed_property_is_the_stored_form() -> None:
    crc = Crc64()
    crc.update(b"1234")
    crc.update(b"56789")
    assert crc.signed == 0x995DC9BBDF1939FA - 2**64

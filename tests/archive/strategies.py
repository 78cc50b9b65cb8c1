"""Hypothesis strategies for BSON documents using every BSON type, as encoded bytes."""

from __future__ import annotations

import datetime
from typing import Any

import bson
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS
from hypothesis import strategies as st

BINARY_SUBTYPES = [0, 1, 2, 3, 4, 5, 6, 7, 0x80]

# Field names and regex parts are C strings: no NUL; and no lone surrogates (not UTF-8).
cstrings = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8)
strings = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)

scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.floats(allow_nan=True, allow_infinity=True),
    strings,
    st.binary(max_size=20),
    st.builds(Binary, st.binary(max_size=20), st.sampled_from(BINARY_SUBTYPES)),
    st.binary(min_size=16, max_size=16).map(Decimal128.from_bid),
    st.builds(MinKey),
    st.builds(MaxKey),
    st.builds(Regex, cstrings, st.sampled_from(["", "i", "ims", "lmsux"])),
    st.builds(Code, strings),
    st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.integers(-(2**63), 2**63 - 1).map(DatetimeMS),
    st.datetimes(min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(1969, 12, 31)),
    st.datetimes(min_value=datetime.datetime(1970, 1, 1)),
    st.binary(min_size=12, max_size=12).map(ObjectId),
    st.builds(
        lambda ref, oid: {"$ref": ref, "$id": oid},
        strings,
        st.binary(min_size=12, max_size=12).map(ObjectId),
    ),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(cstrings, children, max_size=4),
        st.builds(Code, strings, st.dictionaries(cstrings, children, max_size=3)),
    )


values = st.recursive(scalars, _containers, max_leaves=12)

documents: st.SearchStrategy[bytes] = st.dictionaries(cstrings, values, max_size=6).map(bson.encode)
"""One encoded document."""

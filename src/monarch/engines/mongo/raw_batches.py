"""Raw BSON to and from the driver, cheaply: batches read with their counts, documents to insert.

pymongo's ``find_raw_batches`` decodes every reply twice: once into one ``RawBSONDocument`` per
document (thrown away), once more to cut the batch out of the reply's array. Profiled on the
wire server (docs/backups.md), that first pass was most of a dump's reading CPU. The cursor here
decodes only the reply's envelope, cuts the batch out of the array in C as pymongo does, and
counts its documents from the array's size: an array of N documents carries, besides the
documents, one type byte, the key ``str(i)`` and a NUL for each index i, so the bytes that were
cut away tell N exactly (and a reply whose sizes do not add up is counted the slow way).

Everything else (sessions, retries, getMore, killCursors) is pymongo's own cursor. Where the
pymongo internals this leans on are missing, :func:`find_counted` falls back on
``find_raw_batches`` with counts of None, which the archive writer then takes by walking the
documents.

:func:`raw_documents` hands a run of documents to ``insert_many`` as ``RawBSONDocument`` objects
made without re-checking each one (the archive reader already did): ``bson.decode_all`` spent
most of a restore's CPU making them (docs/backups.md).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import bson
from bson import raw_bson
from bson.raw_bson import DEFAULT_RAW_BSON_OPTIONS, RawBSONDocument

from monarch.io import Buffer

if TYPE_CHECKING:
    from pymongo.collection import Collection

Batch = tuple[bytes, int | None]
"""Whole BSON documents, concatenated, and how many (None: not known)."""

_unpack_int32 = struct.Struct("<i").unpack_from
_TO_STREAM: Any = getattr(bson, "_array_of_documents_to_buffer", None)
_RAW_ARRAYS: Any = getattr(raw_bson, "_RAW_ARRAY_BSON_OPTIONS", None)


def find_counted(collection: Collection[Any], **find: Any) -> Generator[Batch]:
    """``collection.find_raw_batches(**find)``, each batch with its document count.

    The caller closes the iterator (``close()``) to end the cursor early.
    """
    cursor_class = _cursor_class()
    if cursor_class is None:
        return _batches(collection.find_raw_batches(**find), counted=False)
    return _batches(cursor_class(collection, **find), counted=True)


def _batches(cursor: Any, *, counted: bool) -> Generator[Batch]:
    try:
        if counted:
            yield from cursor
        else:
            for raw in cursor:
                yield raw, None
    finally:
        cursor.close()


def documents_in_array(array_size: int, stream_size: int) -> int | None:
    """How many documents an array of ``array_size`` bytes held, if its documents take
    ``stream_size`` bytes and its keys are "0", "1", ... (None when the sizes cannot be so)."""
    extra = array_size - 5 - stream_size  # the int32 size and the final NUL are not per element
    count, digits, first = 0, 1, 0
    while extra > 0:
        span = 10**digits - first  # indexes with this many digits
        per = 2 + digits  # type byte, key, NUL
        if extra < span * per:
            whole, rest = divmod(extra, per)
            return count + whole if not rest else None
        extra -= span * per
        count += span
        first, digits = 10**digits, digits + 1
    return count if extra == 0 else None


class _Trusted(RawBSONDocument):
    """A RawBSONDocument over bytes known to be one whole document: made without the size
    check and the codec options check of ``RawBSONDocument.__init__`` (per document, they cost
    more than everything else a restore does with it)."""

    __slots__ = ()

    def __init__(self, raw: bytes) -> None:
        self._RawBSONDocument__raw = raw
        self._RawBSONDocument__inflated_doc = None
        self._RawBSONDocument__codec_options = DEFAULT_RAW_BSON_OPTIONS


def _trusted_works() -> bool:
    """Whether RawBSONDocument still keeps its state where :class:`_Trusted` puts it."""
    try:
        sample = bson.encode({"_id": 1})
        return _Trusted(sample).raw is sample and _Trusted(sample)["_id"] == 1
    except Exception:
        return False


_TRUSTED = _trusted_works()


def raw_documents(data: Buffer) -> list[RawBSONDocument]:
    """The documents of ``data`` (whole BSON documents, concatenated, already walked and
    checked, as the archive reader hands them out), one RawBSONDocument each."""
    if not _TRUSTED:
        return bson.decode_all(data, DEFAULT_RAW_BSON_OPTIONS)
    blob = data if isinstance(data, bytes) else bytes(data)
    documents: list[RawBSONDocument] = []
    add, unpack, pos, end = documents.append, _unpack_int32, 0, len(blob)
    while pos < end:
        size = unpack(blob, pos)[0]
        add(_Trusted(blob[pos:pos + size]))
        pos += size
    return documents


@functools.cache
def _cursor_class() -> type[Any] | None:
    """pymongo's raw-batch cursor with a cheaper reply decoding, or None where the pymongo
    internals it needs are missing."""
    from pymongo.cursor import RawBatchCursor
    from pymongo.message import _OpMsg

    if _TO_STREAM is None or _RAW_ARRAYS is None or not hasattr(RawBatchCursor, "_unpack_response"):
        return None

    class CountingRawBatchCursor(RawBatchCursor):  # type: ignore[type-arg]
        def _unpack_response(self, response: Any, cursor_id: Any, codec_options: Any,
                             user_fields: Any = None, legacy_response: bool = False) -> Any:
            if legacy_response or not isinstance(response, _OpMsg):
                return super()._unpack_response(response, cursor_id, codec_options,
                                                user_fields, legacy_response)
            # Arrays stay raw bytes: only the envelope's few fields become Python objects.
            reply = dict(bson.decode(response.payload_document, _RAW_ARRAYS))
            cursor = reply.get("cursor")
            if cursor is not None:
                cursor = reply["cursor"] = dict(cursor)
                for key in ("firstBatch", "nextBatch"):
                    array = cursor.get(key)
                    if array is not None:
                        stream = _TO_STREAM(array)
                        count = documents_in_array(len(array), len(stream))
                        cursor[key] = [(stream, count)] if stream else []
            return [reply]

    return CountingRawBatchCursor

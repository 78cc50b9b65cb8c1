"""Raw BSON to and from the driver, cheaply: batches read with their counts, documents to insert.

pymongo's ``find_raw_batches`` decodes every reply twice: once into one ``RawBSONDocument`` per
document (thrown away), once more to cut the batch out of the reply's array. Profiled on the
wire server (docs/backups.md), that first pass was most of a dump's reading CPU. The cursor here
finds the batch's array where it lies in the reply (walking the few elements before it),
decodes only the rest of the envelope, cuts the documents out of the array in C as pymongo
does (the one copy of the batch), and counts them from the array's size: an array of N
documents carries, besides the documents, one type byte, the key ``str(i)`` and a NUL for each
index i, so the bytes that were cut away tell N exactly (and a reply whose sizes do not add up
is counted the slow way).

Everything else (sessions, retries, getMore, killCursors) is pymongo's own cursor. Where the
pymongo internals this leans on are missing, :func:`find_counted` falls back on
``find_raw_batches`` with counts of None, which the archive writer then takes by walking the
documents.

:func:`insert_raw` sends runs of documents (as the archive reader hands them out, already walked
and checked) to the server as they are: one ``insert`` command whose documents are the runs'
bytes, joined once, so no Python object is made per document. Profiled on the wire server
(docs/backups.md), making one ``RawBSONDocument`` per document for ``insert_many`` was most of a
restore's CPU. It checks out a connection, adds what pymongo adds to every command (the server
API version, the cluster time, the compression the connection negotiated) and reads the reply
as ``insert_many`` would, raising ``BulkWriteError`` for documents the server refused. Where the
pymongo internals it leans on are missing, or the client encrypts documents itself, it falls
back on ``insert_many`` with :func:`raw_documents`.
"""

from __future__ import annotations

import functools
import itertools
import random
import struct
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import bson
from bson import raw_bson
from bson.codec_options import DEFAULT_CODEC_OPTIONS
from bson.raw_bson import DEFAULT_RAW_BSON_OPTIONS, RawBSONDocument

from monarch.io import Buffer

if TYPE_CHECKING:
    from pymongo.collection import Collection

Batch = tuple[bytes, int | None]
"""Whole BSON documents, concatenated, and how many (None: not known)."""

_unpack_int32 = struct.Struct("<i").unpack_from
_pack_int32 = struct.Struct("<i").pack
_pack_int32_into = struct.Struct("<i").pack_into
_pack_header = struct.Struct("<iiii").pack
_OP_MSG = 2013
_BODY_START = struct.pack("<IB", 0, 0)  # no flags; section 0: the command
_DOCUMENTS = b"\x01"  # section 1: a sequence of documents,
_SEQUENCE_NAME = b"documents\0"  # the insert command's documents
_ENVELOPE = 64 * 1024
"""Room left in a message for its header and command beside the documents."""
_request_ids = itertools.count(random.randrange(1 << 30))
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


def insert_raw(collection: Collection[Any], runs: Sequence[Buffer], size: int) -> int:
    """Insert the documents of ``runs`` (whole BSON documents, concatenated, already walked and
    checked; ``size`` bytes in all) into ``collection``, unordered and bypassing validation, in
    one command; return how many the server acknowledged.

    Documents the server refuses raise ``BulkWriteError`` with the server's write errors, as
    ``insert_many`` does; other failures raise what pymongo raises for a command.
    """
    from pymongo.errors import BulkWriteError

    client = collection.database.client
    internals = _raw_insert_internals()
    if internals is None or client.options.auto_encryption_opts is not None:
        return _insert_many(collection, runs)
    compress, check = internals
    command: dict[str, Any] = {"insert": collection.name, "ordered": False,
                               "bypassDocumentValidation": True}
    concern = collection.write_concern
    if not concern.is_server_default and concern.acknowledged:
        command["writeConcern"] = concern.document
    command["$db"] = collection.database.name
    with client._conn_for_writes(None, "insert") as conn:
        limit = getattr(conn, "max_message_size", None)
        if not isinstance(limit, int) or size + _ENVELOPE > limit:
            reply = None  # too big for one message (or no limit known): insert_many splits it
        else:
            conn.add_server_api(command)
            conn.send_cluster_time(command, None, client)
            compression = getattr(conn, "compression_context", None)
            request_id, message = _message(command, runs, size, compress if compression else None,
                                           compression)
            conn.send_message(message, 0)
            reply = conn.receive_message(request_id).command_response(DEFAULT_CODEC_OPTIONS)
            client._process_response(reply, None)
            check(reply, None)  # in the checkout, so pymongo learns of a primary that stepped down
    if reply is None:
        return _insert_many(collection, runs)
    refused, concern_error = reply.get("writeErrors"), reply.get("writeConcernError")
    if refused or concern_error:
        raise BulkWriteError({"writeErrors": refused or [], "nInserted": reply.get("n", 0),
                              "writeConcernErrors": [concern_error] if concern_error else []})
    return int(reply["n"])


def _message(command: dict[str, Any], runs: Sequence[Buffer], size: int, compress: Any,
             compression: Any) -> tuple[int, bytes]:
    """An OP_MSG of ``command`` with ``runs`` as its documents (compressed with pymongo's
    ``compress`` in the connection's ``compression`` context, if any): request id and bytes."""
    encoded = bson.encode(command)
    sequence = [_DOCUMENTS, _pack_int32(4 + len(_SEQUENCE_NAME) + size), _SEQUENCE_NAME, *runs]
    if compress is not None:
        request_id, message = compress(_OP_MSG, b"".join([_BODY_START, encoded, *sequence]),
                                       compression)
        return int(request_id), bytes(message)
    request_id = next(_request_ids) & 0x7FFFFFFF
    length = 16 + len(_BODY_START) + len(encoded) + 1 + 4 + len(_SEQUENCE_NAME) + size
    header = _pack_header(length, request_id, 0, _OP_MSG)
    return request_id, b"".join([header, _BODY_START, encoded, *sequence])


def _insert_many(collection: Collection[Any], runs: Sequence[Buffer]) -> int:
    documents = [document for run in runs for document in raw_documents(run)]
    collection.insert_many(documents, ordered=False, bypass_document_validation=True)
    return len(documents)


@functools.cache
def _raw_insert_internals() -> tuple[Any, Any] | None:
    """pymongo's message compressor and reply check, if every pymongo internal that
    :func:`insert_raw` leans on is there (None otherwise)."""
    try:
        from pymongo import helpers_shared, message
        from pymongo.message import _OpMsg
        from pymongo.synchronous.mongo_client import MongoClient
        from pymongo.synchronous.pool import Connection
    except ImportError:
        return None
    compress = getattr(message, "_compress", None)
    check = getattr(helpers_shared, "_check_command_response", None)
    needed = {MongoClient: ("_conn_for_writes", "_process_response"),
              Connection: ("add_server_api", "send_cluster_time", "send_message",
                           "receive_message"),
              _OpMsg: ("command_response",)}
    if compress is None or check is None or not all(
        hasattr(owner, name) for owner, names in needed.items() for name in names
    ):
        return None
    return compress, check


def cursor_reply(payload: Buffer) -> dict[str, Any]:
    """A find or getMore reply (``payload``, its BSON) decoded, but for its batch of documents:
    ``reply["cursor"]["firstBatch"]`` (or ``nextBatch``) is ``[(documents, count)]``, the batch's
    documents concatenated and how many (None: not known), or ``[]`` for an empty batch.

    The batch is cut out of the reply where it lies (no copy of it but the one that drops the
    array's keys), and only the rest, a few fields, is decoded. A reply whose layout the walk
    does not know is decoded whole instead, with its arrays kept raw: the same result.
    """
    try:
        span = _batch_span(payload)
    except (IndexError, ValueError, struct.error):
        span = None
    if span is None:
        reply = dict(bson.decode(payload, _RAW_ARRAYS))
        if reply.get("cursor") is None:
            return reply
        cursor = reply["cursor"] = dict(reply["cursor"])
        batches = {key: cursor[key] for key in ("firstBatch", "nextBatch") if key in cursor}
    else:
        cursor_at, start, end, key = span
        view = memoryview(payload).cast("B")
        shrink = end - start - len(_EMPTY_ARRAY)
        envelope = bytearray(view[:start])
        envelope += _EMPTY_ARRAY
        envelope += view[end:]
        _pack_int32_into(envelope, 0, _unpack_int32(view, 0)[0] - shrink)
        _pack_int32_into(envelope, cursor_at, _unpack_int32(view, cursor_at)[0] - shrink)
        reply = dict(bson.decode(bytes(envelope), _RAW_ARRAYS))
        cursor = reply["cursor"] = dict(reply["cursor"])
        batches = {key: view[start:end]}
    for key, array in batches.items():
        stream = _TO_STREAM(array)
        count = documents_in_array(len(array), len(stream))
        cursor[key] = [(stream, count)] if stream else []
    return reply


_EMPTY_ARRAY = b"\x05\x00\x00\x00\x00"
_BATCH_KEYS = (b"firstBatch", b"nextBatch")
_FIXED_SIZES = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8,
                0x13: 16, 0x7F: 0, 0xFF: 0}
"""Value sizes of the BSON types of fixed size (double ... decimal128, min/max key)."""


def _batch_span(doc: Buffer) -> tuple[int, int, int, str] | None:
    """Where the batch array of reply ``doc`` lies: the offset of the ``cursor`` document, the
    start and end of the array's value, and its key; None if the walk meets a type whose size
    it does not know, or finds no batch."""
    view = memoryview(doc).cast("B")
    for kind, name, at, size in _elements(view, 0):
        if kind == 0x03 and name == b"cursor" and size is not None:
            for kind2, name2, at2, size2 in _elements(view, at):
                if kind2 == 0x04 and name2 in _BATCH_KEYS and size2 is not None:
                    return (at, at2, at2 + size2, name2.decode()) if at2 + size2 < at + size \
                        else None
            return None
    return None


def _elements(view: memoryview, at: int) -> Generator[tuple[int, bytes, int, int | None]]:
    """The elements of the document at ``at``: type, name, value offset and value size (None,
    and the walk ends, for a type of unknown size)."""
    end = at + _unpack_int32(view, at)[0] - 1
    pos = at + 4
    while pos < end:
        kind = view[pos]
        name_end = pos + 1
        while view[name_end]:
            name_end += 1
        value = name_end + 1
        size = _value_size(kind, view, value)
        yield kind, bytes(view[pos + 1:name_end]), value, size
        if size is None or value + size > end:
            return
        pos = value + size


def _value_size(kind: int, view: memoryview, at: int) -> int | None:
    fixed = _FIXED_SIZES.get(kind)
    if fixed is not None:
        return fixed
    if kind in (0x03, 0x04):  # document, array: their int32 size counts itself
        return int(_unpack_int32(view, at)[0])
    if kind == 0x02:  # string: int32 length (with its NUL), then the bytes
        return 4 + int(_unpack_int32(view, at)[0])
    if kind == 0x05:  # binary: int32 length, subtype byte, then the bytes
        return 5 + int(_unpack_int32(view, at)[0])
    return None


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
            return [cursor_reply(response.payload_document)]

    return CountingRawBatchCursor

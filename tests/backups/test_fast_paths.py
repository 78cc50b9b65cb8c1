"""The pieces that made the dump, the restore and the backup's output cheaper keep their promises:
a cursor reply's batch cut out where it lies, counts taken from a reply's array sizes,
RawBSONDocuments made without per-document checks, the output thread that raises its sink's
failure, and the pipe that keeps immutable bytes uncopied."""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping

import bson
import pytest
from bson import Binary, Decimal128, Int64, ObjectId, Regex, Timestamp
from bson.raw_bson import RawBSONDocument

from monarch.archive.meta import CollectionMeta
from monarch.archive.writer import ArchiveWriter
from monarch.backups._pipe import Pipe, PipeClosed, WriterThread, frozen
from monarch.engines.mongo import raw_batches
from monarch.engines.mongo.raw_batches import cursor_reply, documents_in_array, raw_documents
from monarch.io import Buffer


def array_and_stream(count: int) -> tuple[bytes, bytes]:
    """The raw bytes of an array of ``count`` documents, and of the documents alone."""
    docs = [bson.encode({"_id": i, "pad": "x" * (i % 7)}) for i in range(count)]
    holder = bson.encode({"a": [bson.decode(d) for d in docs]})
    array = holder[4 + 1 + 2:-1]  # past the holder's size, the type byte and the key "a\0"
    return array, b"".join(docs)


@pytest.mark.parametrize("count", [0, 1, 9, 10, 11, 99, 100, 101, 1000, 10_001])
def test_the_count_of_an_array_of_documents_comes_from_its_sizes_alone(count: int) -> None:
    array, stream = array_and_stream(count)
    assert documents_in_array(len(array), len(stream)) == count


def test_sizes_that_no_array_of_documents_can_have_give_no_count() -> None:
    array, stream = array_and_stream(10)
    assert documents_in_array(len(array) + 1, len(stream)) is None  # one byte no key explains
    assert documents_in_array(len(array), len(stream) + 10) is None  # more bytes than the array


def test_raw_documents_are_the_documents_of_the_run_and_insertable_as_raw_bson() -> None:
    docs = [{"_id": i, "name": f"n{i}", "tags": ["a", i]} for i in range(300)]
    run = memoryview(b"".join(bson.encode(d) for d in docs))
    made = raw_documents(run)
    assert [dict(d) for d in made] == docs
    assert all(isinstance(d, RawBSONDocument) for d in made)
    assert b"".join(bytes(d.raw) for d in made) == bytes(run)
    # What insert_many does with them: encode each one as it is.
    assert [bson.encode(d) for d in made] == [bson.encode(d) for d in docs]


def test_an_archive_batch_with_a_known_count_is_written_like_one_that_is_walked() -> None:
    docs = b"".join(bson.encode({"_id": i}) for i in range(50))
    outputs = []
    for count in (None, 50):
        out = io.BytesIO()
        writer = ArchiveWriter(out)
        writer.write_header([CollectionMeta.build("db", "c")], "7.0", "test")
        writer.write_documents("db", "c", docs, count)
        stats = writer.end_collection("db", "c")
        writer.close()
        outputs.append((out.getvalue(), stats.documents, stats.crc))
    assert outputs[0] == outputs[1]


class Sink:
    def __init__(self, fail_after: int | None = None) -> None:
        self.data = bytearray()
        self.fail_after = fail_after

    def write(self, data: Buffer, /) -> int:
        if self.fail_after is not None and len(self.data) >= self.fail_after:
            raise OSError("disk full")
        self.data += data
        return len(data)


def test_the_output_thread_delivers_every_write_in_order_before_close_returns() -> None:
    sink = Sink()
    out = WriterThread(sink, capacity=64)
    parts = [bytes([i % 256]) * (i + 1) for i in range(200)]
    for part in parts:
        out.write(part)
    out.close()
    assert bytes(sink.data) == b"".join(parts)


def test_a_failing_sink_is_raised_by_the_next_write_or_by_close() -> None:
    out = WriterThread(Sink(fail_after=10), capacity=16)
    with pytest.raises(OSError, match="disk full"):
        for _ in range(1000):
            out.write(b"x" * 8)
        out.close()
    out.abort()


def test_abort_drops_what_waits_and_releases_a_blocked_writer() -> None:
    gate = threading.Event()

    class Slow(Sink):
        def write(self, data: Buffer, /) -> int:
            gate.wait(5)
            return super().write(data)

    sink = Slow()
    out = WriterThread(sink, capacity=8)
    out.write(b"a" * 8)
    out.write(b"b" * 8)
    gate.set()
    out.abort()
    assert len(sink.data) <= 16
    with pytest.raises(PipeClosed):
        out.write(b"c")


def test_the_pipe_keeps_immutable_bytes_and_copies_what_may_change() -> None:
    data = b"0123456789"
    view = memoryview(data)[2:6]
    kept_view = frozen(view)
    assert isinstance(kept_view, memoryview) and kept_view.obj is data  # no copy
    assert bytes(kept_view) == b"2345"
    buffer = bytearray(b"abcd")
    kept = frozen(buffer)
    buffer[0] = ord("z")
    assert kept == b"abcd"
    pipe = Pipe(100)
    pipe.write(view)
    pipe.write(buffer)
    pipe.close()
    assert pipe.read() == b"2345zbcd"


def plain(value: object) -> object:
    """``value`` with every mapping (raw BSON ones included) made a dict, for comparing."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def what_the_reply_says(payload: bytes) -> object:
    """The reply decoded plainly, its batch as ``[(documents concatenated, count)]``."""
    reply = bson.decode(payload)
    for key in ("firstBatch", "nextBatch"):
        docs = reply["cursor"].get(key)
        if docs is not None:
            reply["cursor"][key] = [(b"".join(bson.encode(d) for d in docs), len(docs))] if docs \
                else []
    return plain(reply)


GOSSIP = {"$clusterTime": {"clusterTime": Timestamp(1700000000, 3),
                           "signature": {"hash": Binary(b"h" * 20), "keyId": Int64(7)}},
          "operationTime": Timestamp(1700000000, 3)}


@pytest.mark.parametrize("reply", [
    {"cursor": {"firstBatch": [{"_id": i, "v": "x" * i} for i in range(50)], "id": Int64(9),
                "ns": "db.c"}, "ok": 1.0},
    {"cursor": {"nextBatch": [{"_id": i} for i in range(3)], "id": Int64(0), "ns": "db.c",
                "postBatchResumeToken": {"$recordId": Int64(3)}}, "ok": 1.0, **GOSSIP},
    {"cursor": {"id": Int64(0), "ns": "db.a.b", "firstBatch": []}, "ok": 1, **GOSSIP},
    {"ok": 1.0, "cursor": {"ns": "db.c", "atClusterTime": Timestamp(5, 1),
                           "partialResultsReturned": False, "id": Int64(1),
                           "firstBatch": [{"_id": ObjectId(), "d": Decimal128("1.5")}]}},
    # A type whose size the walk does not know, before the batch: decoded whole instead.
    {"cursor": {"pattern": Regex("^a", "i"), "nextBatch": [{"_id": 1}], "id": Int64(0),
                "ns": "db.c"}, "ok": 1.0},
], ids=["first", "next-gossip", "empty", "odd-order", "regex-before"])
def test_a_cursor_reply_is_the_server_reply_with_its_batch_cut_out_whole(reply: dict) -> None:
    payload = bson.encode(reply)
    for given in (payload, memoryview(b"\0" + payload)[1:]):
        assert plain(cursor_reply(given)) == what_the_reply_says(payload)


def test_a_reply_without_a_cursor_is_decoded_as_it_is() -> None:
    payload = bson.encode({"ok": 0.0, "errmsg": "no", "code": 2})
    assert plain(cursor_reply(payload)) == {"ok": 0.0, "errmsg": "no", "code": 2}


def test_the_batch_is_found_where_the_walk_knows_every_type_before_it() -> None:
    known = bson.encode({"cursor": {"id": Int64(1), "ns": "d.c", "nextBatch": [{"_id": 1}]},
                         "ok": 1.0, **GOSSIP})
    odd = bson.encode({"cursor": {"p": Regex("x"), "nextBatch": [{"_id": 1}]}, "ok": 1.0})
    assert raw_batches._batch_span(known) is not None
    assert raw_batches._batch_span(odd) is None

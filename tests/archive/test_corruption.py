"""A damaged archive is refused with an ArchiveError saying what and where; never read as whole."""

from __future__ import annotations

import gzip
import io
import struct

import bson
import pytest
from bson.int64 import Int64

from monarch.archive import (
    ArchiveReader,
    ArchiveWriter,
    ChecksumMismatch,
    CollectionMeta,
    Method,
    NotAnArchive,
    TruncatedArchive,
    open_archive,
)
from monarch.archive.format import (
    MAGIC_BYTES,
    TERMINATOR_BYTES,
    encode_collection_metadata,
    encode_header,
)
from monarch.errors import ArchiveError
from tests.archive.helpers import collect, make_archive

DOCS = [bson.encode({"_id": i, "name": f"item {i}", "tags": ["a", "b"][: i % 3]}) for i in range(6)]
COLLECTIONS = [CollectionMeta.build("shop", "orders"), CollectionMeta.build("shop", "users")]
BATCHES = [
    ("shop", "orders", b"".join(DOCS[:3])),
    ("shop", "users", b"".join(DOCS[3:])),
    ("shop", "orders", DOCS[0]),
]


def read(data: bytes, compression: Method | None = None) -> None:
    collect(open_archive(io.BytesIO(data), compression))


def archive(compression: Method = "none") -> bytes:
    return make_archive(BATCHES, COLLECTIONS, compression=compression)[0]


def ns_header(db: str, coll: str, *, eof: bool = False, crc: int = 0) -> bytes:
    return bson.encode({"db": db, "collection": coll, "EOF": eof, "CRC": Int64(crc)})


def prelude(*metas: CollectionMeta) -> bytes:
    return (
        MAGIC_BYTES
        + encode_header("7.0", "t", 1)
        + b"".join(encode_collection_metadata(m) for m in metas)
        + TERMINATOR_BYTES
    )


def test_a_complete_archive_reads() -> None:
    read(archive())


def test_a_flipped_byte_inside_a_document_is_a_crc_mismatch_naming_the_namespace() -> None:
    data = bytearray(archive())
    at = data.index(b"item 4")  # in shop.users
    data[at] ^= 0x20
    with pytest.raises(ChecksumMismatch) as caught:
        read(bytes(data))
    assert caught.value.namespace == "shop.users"
    assert caught.value.expected != caught.value.actual
    message = str(caught.value)
    assert "shop.users" in message and "CRC mismatch" in message
    assert str(caught.value.expected) in message and str(caught.value.actual) in message


def document_regions(data: bytes) -> list[int]:
    """Offsets of every byte of every document in an uncompressed archive built from BATCHES."""
    offsets = []
    start = 0
    for doc in DOCS:
        start = 0
        while (at := data.find(doc, start)) != -1:
            offsets.extend(range(at, at + len(doc)))
            start = at + 1
    return sorted(set(offsets))


def test_flipping_any_byte_of_any_document_is_detected() -> None:
    data = archive()
    regions = document_regions(data)
    assert len(regions) > 100
    for offset in regions:
        damaged = bytearray(data)
        damaged[offset] ^= 0x01
        with pytest.raises(ArchiveError):
            read(bytes(damaged))


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_every_truncation_is_refused(compression: Method) -> None:
    data = archive(compression)
    read(data)
    for cut in range(len(data)):
        with pytest.raises(ArchiveError):
            read(data[:cut])


def test_truncation_between_blocks_names_the_unfinished_namespaces() -> None:
    data = archive()
    eof = data.index(ns_header("shop", "users", eof=True)[:20])  # no CRC match needed
    with pytest.raises(
        TruncatedArchive,
        match=r"before the end of 2 namespace\(s\): "
        r"shop.orders, shop.users",
    ) as caught:
        read(data[:eof])
    assert caught.value.hint is not None


def test_truncation_inside_a_document_gives_its_offset() -> None:
    data = archive()
    at = data.index(DOCS[4])
    with pytest.raises(
        TruncatedArchive,
        match=rf"document of {len(DOCS[4])} bytes at byte {at} "
        r"in namespace 'shop.users'",
    ):
        read(data[: at + 10])


def test_wrong_magic_is_not_an_archive() -> None:
    with pytest.raises(NotAnArchive, match="not a mongodump archive") as caught:
        read(b"hello world, this is text")
    assert caught.value.looks_like is None


def test_empty_input_is_not_an_archive() -> None:
    with pytest.raises(NotAnArchive, match="empty"):
        ArchiveReader(io.BytesIO(b""))


def test_a_gzip_archive_read_as_plain_says_it_looks_gzip_compressed() -> None:
    with pytest.raises(NotAnArchive, match="gzip") as caught:
        read(gzip.compress(archive()), "none")
    assert caught.value.looks_like == "gzip"
    assert caught.value.hint is not None


def test_a_zstd_archive_read_as_plain_says_it_looks_zstd_compressed() -> None:
    with pytest.raises(NotAnArchive, match="zstd"):
        read(archive("zstd"), "none")


def test_a_zstd_archive_read_as_gzip_says_what_it_is() -> None:
    with pytest.raises(ArchiveError, match="looks zstd-compressed"):
        read(archive("zstd"), "gzip")


def test_a_bson_file_given_as_archive_is_recognised() -> None:
    with pytest.raises(NotAnArchive, match="plain BSON file") as caught:
        read(b"".join(DOCS))
    assert caught.value.looks_like == "bson"


def test_corrupt_gzip_data_is_an_archive_error() -> None:
    data = bytearray(archive("gzip"))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(ArchiveError, match="gzip"):
        read(bytes(data))


@pytest.mark.parametrize("length", [0, 4, -2, 16 * 1024 * 1024 + 16 * 1024 + 1])
def test_an_impossible_document_length_is_refused_with_its_offset(length: int) -> None:
    meta = CollectionMeta.build("db", "c")
    head = prelude(meta) + ns_header("db", "c")
    data = head + DOCS[0] + struct.pack("<i", length) + b"\x00" * 20
    at = len(head) + len(DOCS[0])
    with pytest.raises(ArchiveError, match=rf"{length} .*at byte {at}|at byte {at}.*{length}"):
        read(data)


def test_a_document_without_its_closing_nul_is_refused() -> None:
    meta = CollectionMeta.build("db", "c")
    bad = DOCS[0][:-1] + b"\x01"
    with pytest.raises(ArchiveError, match="NUL"):
        read(prelude(meta) + ns_header("db", "c") + bad + TERMINATOR_BYTES)


def test_documents_for_a_namespace_without_metadata_are_refused() -> None:
    meta = CollectionMeta.build("db", "c")
    data = prelude(meta) + ns_header("db", "intruder") + DOCS[0] + TERMINATOR_BYTES
    with pytest.raises(ArchiveError, match=r"'db\.intruder', which has no collection metadata"):
        read(data)


def test_data_after_a_namespace_ended_is_refused() -> None:
    meta = CollectionMeta.build("db", "c")
    data = (
        prelude(meta)
        + ns_header("db", "c", eof=True)
        + TERMINATOR_BYTES
        + ns_header("db", "c")
        + DOCS[0]
        + TERMINATOR_BYTES
    )
    with pytest.raises(ArchiveError, match="after that namespace's end-of-collection block"):
        read(data)


def test_documents_inside_an_end_of_collection_block_are_refused() -> None:
    meta = CollectionMeta.build("db", "c")
    data = prelude(meta) + ns_header("db", "c", eof=True) + DOCS[0] + TERMINATOR_BYTES
    with pytest.raises(ArchiveError, match="followed by data"):
        read(data)


def test_a_headerless_block_is_refused() -> None:
    meta = CollectionMeta.build("db", "c")
    data = prelude(meta) + TERMINATOR_BYTES
    with pytest.raises(ArchiveError, match="terminator at byte"):
        read(data)


def test_a_wrong_crc_in_the_end_block_is_a_mismatch() -> None:
    meta = CollectionMeta.build("db", "c")
    data = (
        prelude(meta)
        + ns_header("db", "c")
        + DOCS[0]
        + TERMINATOR_BYTES
        + ns_header("db", "c", eof=True, crc=12345)
        + TERMINATOR_BYTES
    )
    with pytest.raises(ChecksumMismatch, match=r"'db\.c'"):
        read(data)


def test_two_metadata_documents_for_one_namespace_are_refused() -> None:
    meta = CollectionMeta.build("db", "c")
    with pytest.raises(ArchiveError, match="two collection metadata"):
        ArchiveReader(io.BytesIO(prelude(meta, meta)))


def test_unreadable_metadata_json_is_refused_up_front() -> None:
    meta = CollectionMeta("db", "c", '{"indexes": [}')
    with pytest.raises(ArchiveError, match=r"metadata of 'db.c' is not valid Extended JSON"):
        ArchiveReader(io.BytesIO(prelude(meta)))


def test_a_corrupt_namespace_header_is_refused() -> None:
    meta = CollectionMeta.build("db", "c")
    header = bytearray(ns_header("db", "c"))
    header[4] = 0x42  # an unknown BSON element type
    with pytest.raises(ArchiveError, match="namespace header at byte"):
        read(prelude(meta) + bytes(header) + TERMINATOR_BYTES)


def test_corruption_in_a_filtered_out_database_is_still_detected() -> None:
    data = bytearray(archive())
    data[data.index(b"item 4")] ^= 0x20
    with pytest.raises(ChecksumMismatch):
        collect(ArchiveReader(io.BytesIO(bytes(data)), db="elsewhere"))


class TestWriterRefusesBadInput:
    def writer(self) -> ArchiveWriter:
        writer = ArchiveWriter(io.BytesIO())
        writer.write_header(COLLECTIONS, "7.0", "t")
        return writer

    def test_a_batch_ending_inside_a_document(self) -> None:
        with pytest.raises(ArchiveError, match=r"'shop.orders' at byte \d+ of the batch"):
            self.writer().write_documents("shop", "orders", DOCS[0] + DOCS[1][:-3])

    def test_a_batch_with_an_impossible_length(self) -> None:
        with pytest.raises(ArchiveError, match="neither a valid document length"):
            self.writer().write_documents("shop", "orders", b"\x02\x00\x00\x00\x00")

    def test_a_namespace_not_in_the_header(self) -> None:
        with pytest.raises(ValueError, match="not in the archive header"):
            self.writer().write_documents("shop", "nope", DOCS[0])

    def test_documents_after_the_end(self) -> None:
        writer = self.writer()
        writer.end_collection("shop", "orders")
        with pytest.raises(ValueError, match="already ended"):
            writer.write_documents("shop", "orders", DOCS[0])

    def test_closing_with_namespaces_not_ended(self) -> None:
        writer = self.writer()
        writer.end_collection("shop", "orders")
        with pytest.raises(ArchiveError, match=r"1 namespace.*shop\.users"):
            writer.close()

    def test_documents_before_the_header(self) -> None:
        with pytest.raises(ValueError, match="write_header"):
            ArchiveWriter(io.BytesIO()).write_documents("shop", "orders", DOCS[0])

    def test_more_namespaces_in_progress_than_declared(self) -> None:
        writer = ArchiveWriter(io.BytesIO())
        writer.write_header(COLLECTIONS, "7.0", "t", concurrent_collections=1)
        writer.write_documents("shop", "orders", DOCS[0])
        with pytest.raises(ValueError, match="concurrent_collections=1"):
            writer.write_documents("shop", "users", DOCS[0])
        with pytest.raises(ValueError, match="concurrent_collections=1"):
            writer.end_collection("shop", "users")  # an empty one counts too
        writer.end_collection("shop", "orders")
        writer.write_documents("shop", "users", DOCS[0])
        writer.end_collection("shop", "users")
        writer.close()

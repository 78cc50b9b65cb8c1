"""The archive layer: mongodump-compatible archives and directory dumps, as raw BSON streams.

Writing: :class:`ArchiveWriter` over :func:`open_compressed_writer`. Reading:
:func:`open_archive` (or :class:`ArchiveReader` over :func:`open_decompressed_reader`) and
:class:`DirectoryReader`, which yield the same :class:`Documents` / :class:`CollectionEnd`
events. Documents are never decoded on the way through.
"""

from monarch.archive._source import MAX_DOCUMENT_SIZE, iter_documents
from monarch.archive.compression import (
    DEFAULT_GZIP_LEVEL,
    DEFAULT_ZSTD_LEVEL,
    METHODS,
    CompressedWriter,
    Method,
    open_compressed_writer,
    open_decompressed_reader,
    sniff,
)
from monarch.archive.crc import Crc64, crc64, to_signed, to_unsigned
from monarch.archive.directory import DirectoryReader
from monarch.archive.errors import ChecksumMismatch, NotAnArchive, TruncatedArchive
from monarch.archive.events import CollectionEnd, Documents, DumpReader, Event
from monarch.archive.format import MAGIC, MAX_SEGMENT_SIZE
from monarch.archive.meta import (
    COLLECTION,
    TIMESERIES,
    VIEW,
    CollectionMeta,
    build_metadata_json,
)
from monarch.archive.reader import ArchiveReader, open_archive
from monarch.archive.writer import ArchiveWriter, NamespaceStats

__all__ = [
    "COLLECTION",
    "DEFAULT_GZIP_LEVEL",
    "DEFAULT_ZSTD_LEVEL",
    "MAGIC",
    "MAX_DOCUMENT_SIZE",
    "MAX_SEGMENT_SIZE",
    "METHODS",
    "TIMESERIES",
    "VIEW",
    "ArchiveReader",
    "ArchiveWriter",
    "ChecksumMismatch",
    "CollectionEnd",
    "CollectionMeta",
    "CompressedWriter",
    "Crc64",
    "DirectoryReader",
    "Documents",
    "DumpReader",
    "Event",
    "Method",
    "NamespaceStats",
    "NotAnArchive",
    "TruncatedArchive",
    "build_metadata_json",
    "crc64",
    "iter_documents",
    "open_archive",
    "open_compressed_writer",
    "open_decompressed_reader",
    "sniff",
    "to_signed",
    "to_unsigned",
]

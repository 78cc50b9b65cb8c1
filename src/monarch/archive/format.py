"""Constants and fixed documents of the mongodump archive format.

An archive is: magic, a header document, one collection-metadata document per namespace, a
terminator, then blocks (a namespace header, its documents, a terminator); a namespace's last
block is an end-of-collection header carrying the CRC of all its documents.
"""

from __future__ import annotations

import bson
from bson.int64 import Int64

from monarch.archive.meta import COLLECTION, CollectionMeta

MAGIC = 0x8199E26D
MAGIC_BYTES = MAGIC.to_bytes(4, "little")
TERMINATOR_BYTES = b"\xff\xff\xff\xff"
FORMAT_VERSION = "0.1"

MAX_SEGMENT_SIZE = 16 * 1024 * 1024
"""mongodump's segments are up to 16 MiB; a reader needs no bigger buffer than that."""

_INT32_MAX = 2**31 - 1


def encode_header(server_version: str, tool_version: str, concurrent_collections: int) -> bytes:
    """The archive header document (field order and int32 width as mongodump writes them)."""
    if not 0 < concurrent_collections <= _INT32_MAX:
        raise ValueError(
            f"concurrent_collections must be a positive int32, not {concurrent_collections}"
        )
    return bson.encode(
        {
            "concurrent_collections": concurrent_collections,
            "version": FORMAT_VERSION,
            "server_version": server_version,
            "tool_version": tool_version,
        }
    )


def encode_collection_metadata(meta: CollectionMeta) -> bytes:
    """One collection-metadata document of the archive's prelude."""
    return bson.encode(
        {
            "db": meta.db,
            "collection": meta.collection,
            "metadata": meta.metadata,
            "size": 0,  # mongorestore ignores it; mongodump writes 0 too
            "type": meta.type or COLLECTION,
        }
    )


def encode_namespace_header(db: str, collection: str, *, eof: bool, crc: int) -> bytes:
    """A block's namespace header; ``crc`` is the signed form and is 0 unless ``eof``."""
    return bson.encode({"db": db, "collection": collection, "EOF": eof, "CRC": Int64(crc)})

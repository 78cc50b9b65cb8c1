"""Reading backups back for assertions: archives as per-collection raw documents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import bson
from pymongo.database import Database

from monarch.archive import CollectionEnd, CollectionMeta, Documents, iter_documents, open_archive
from monarch.stores.base import Store


@dataclass
class ArchiveContents:
    """Everything in an archive: header, collection metadata, documents and ends."""

    header: dict[str, Any]
    collections: dict[str, CollectionMeta]
    documents: dict[str, list[bytes]] = field(default_factory=dict)
    ends: dict[str, CollectionEnd] = field(default_factory=dict)

    def decoded(self, collection: str) -> list[dict[str, Any]]:
        return [bson.decode(d) for d in self.documents.get(collection, [])]


def read_archive(store: Store, key: str) -> ArchiveContents:
    """Read (and so CRC-check) the archive stored under ``key``."""
    with store.reader(key) as raw:
        reader = open_archive(raw)
        contents = ArchiveContents(reader.header, {m.collection: m for m in reader.collections})
        for event in reader:
            if isinstance(event, Documents):
                docs = contents.documents.setdefault(event.collection, [])
                docs.extend(bytes(d) for d in iter_documents(event.data))
            else:
                contents.ends[event.collection] = event
    return contents


def server_documents(db: Database[Any], collection: str) -> list[bytes]:
    """The collection's documents exactly as the server sends them (raw BSON), sorted."""
    raw = b"".join(db[collection].find_raw_batches())
    return sorted(bytes(d) for d in iter_documents(raw))

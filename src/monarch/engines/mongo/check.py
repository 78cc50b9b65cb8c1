"""Checking a mongodump archive without a database: read it through, as a restore would.

The archive checks itself (magic, header, block structure, terminators, each collection's
CRC-64 against its end block); what it holds is returned so that the caller can hold it to
what it expected (a backup's manifest).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monarch.archive.events import CollectionEnd, Documents
from monarch.archive.reader import ArchiveReader
from monarch.engines.base import CollectionDump, StreamCheck
from monarch.errors import ArchiveError, StoreError

if TYPE_CHECKING:
    from monarch.archive.meta import CollectionMeta
    from monarch.io import Readable
    from monarch.progress import Progress

CHECKED = "structure, CRCs, counts"


def check_archive(inp: Readable, progress: Progress | None = None) -> StreamCheck:
    """Read the archive ``inp`` to its end; its problems, and the collections it holds (each
    with the counts, bytes and CRC-64 its end block confirmed). ``progress`` hears each run of
    documents and each collection's end."""
    problems: list[str] = []
    metas: list[CollectionMeta] = []
    ends: dict[tuple[str, str], CollectionEnd] = {}
    try:
        reader = ArchiveReader(inp)
        metas = reader.collections
        for event in reader:
            if isinstance(event, Documents):
                if progress is not None:
                    progress.advance(event.collection, event.count, len(event.data))
            else:
                ends[(event.db, event.collection)] = event
                if progress is not None:
                    progress.finish_item(event.collection)
    except ArchiveError as exc:
        problems.append(f"archive: {exc.message}")
    except StoreError as exc:
        problems.append(f"reading the archive failed: {exc.message}")
    collections = []
    for meta in metas:
        end = ends.get((meta.db, meta.data_collection))
        if end is not None:  # one that broke off is reported as the archive's problem
            collections.append(CollectionDump(meta.collection, meta.type, end.documents,
                                              end.size, end.crc, meta.metadata))
    return StreamCheck(tuple(problems), tuple(collections), CHECKED)

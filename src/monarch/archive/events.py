"""What reading a dump yields, whichever its format (archive or directory).

A reader exposes the dump's ``header`` and ``collections`` up front, then iterates over
:class:`Documents` and :class:`CollectionEnd` events. Restore consumes these without caring
where they came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from monarch.archive.meta import CollectionMeta


@dataclass(frozen=True, slots=True)
class Documents:
    """A run of whole BSON documents of one namespace, as raw bytes.

    ``collection`` is the collection holding the documents (``system.buckets.<name>`` for a
    time-series collection, see :attr:`CollectionMeta.data_collection`). ``data`` stays valid
    for as long as it is referenced; it is never reused by the reader.
    """

    db: str
    collection: str
    data: memoryview
    count: int

    @property
    def namespace(self) -> str:
        """``db.collection``."""
        return f"{self.db}.{self.collection}"


@dataclass(frozen=True, slots=True)
class CollectionEnd:
    """All of a namespace's documents have been read (and, in an archive, CRC-checked).

    ``crc`` is the unsigned CRC-64/XZ of the documents, ``documents`` their count and ``size``
    their total length in bytes.
    """

    db: str
    collection: str
    crc: int
    documents: int
    size: int

    @property
    def namespace(self) -> str:
        """``db.collection``."""
        return f"{self.db}.{self.collection}"


Event = Documents | CollectionEnd


class DumpReader(Protocol):
    """A dump being read: its header and collections, then its events, each read once.

    Every namespace that has a :class:`CollectionMeta` ends with exactly one
    :class:`CollectionEnd`, after all its :class:`Documents`. Corruption raises
    :class:`~monarch.errors.ArchiveError` mid-iteration, so a consumer must not treat data as
    complete before its ``CollectionEnd`` (nor the dump before iteration ends).
    """

    @property
    def header(self) -> dict[str, Any]:
        """``server_version``, ``tool_version``, ``concurrent_collections``, ``version``."""
        ...

    @property
    def collections(self) -> list[CollectionMeta]:
        """The collections in the dump (after the ``db`` filter, if one was given)."""
        ...

    def __iter__(self) -> Iterator[Event]: ...

"""Collection metadata as mongodump records it: one Extended JSON text per collection.

The same text is a directory dump's ``<coll>.metadata.json`` and the ``metadata`` string of an
archive's collection-metadata document, so monarch keeps it as text end to end and parses it
only when someone asks for options or indexes.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from bson import json_util
from bson.binary import Binary
from bson.errors import BSONError

from monarch.errors import ArchiveError

COLLECTION = "collection"
VIEW = "view"
TIMESERIES = "timeseries"
BUCKETS_PREFIX = "system.buckets."
"""A time-series collection's documents live in the collection with this prefix."""


@dataclass(frozen=True)
class CollectionMeta:
    """One collection (or view, or time-series collection) in a dump.

    ``metadata`` is the ``.metadata.json`` text (options, indexes, uuid, collectionName, type);
    it is empty when the dump has none (the oplog, a bare ``.bson`` file). ``type`` is
    ``"collection"``, ``"view"`` or ``"timeseries"``.
    """

    db: str
    collection: str
    metadata: str = ""
    type: str = COLLECTION

    @classmethod
    def build(
        cls,
        db: str,
        collection: str,
        *,
        options: Mapping[str, Any] | None = None,
        indexes: Sequence[Mapping[str, Any]] = (),
        uuid: str | uuid_module.UUID | Binary | None = None,
        type: str = COLLECTION,
    ) -> CollectionMeta:
        """Describe a collection from listCollections/listIndexes output."""
        text = build_metadata_json(
            collection, options=options, indexes=indexes, uuid=uuid, type=type
        )
        return cls(db, collection, text, type)

    @property
    def namespace(self) -> str:
        """``db.collection``."""
        return f"{self.db}.{self.collection}"

    @property
    def data_collection(self) -> str:
        """The collection that holds the documents: ``system.buckets.<name>`` for time series."""
        if self.type == TIMESERIES:
            return BUCKETS_PREFIX + self.collection
        return self.collection

    @cached_property
    def parsed(self) -> dict[str, Any]:
        """The metadata as a dict (empty when there is none).

        Canonical and relaxed Extended JSON (older dumps) are both accepted. Raises
        :class:`~monarch.errors.ArchiveError` if the text is not a JSON object.
        """
        if not self.metadata.strip():
            return {}
        try:
            value = json_util.loads(self.metadata)
        except (ValueError, TypeError, KeyError, IndexError, ArithmeticError, BSONError) as exc:
            # What json_util raises for malformed Extended JSON ($numberDecimal, $oid, ...).
            raise ArchiveError(
                f"the metadata of {self.namespace!r} is not valid Extended JSON: {exc}"
            ) from None
        except RecursionError:
            raise ArchiveError(
                f"the metadata of {self.namespace!r} is not valid: its JSON is nested too deeply"
            ) from None
        if not isinstance(value, dict):
            raise ArchiveError(f"the metadata of {self.namespace!r} is not a JSON object")
        if _nesting(value) > MAX_NESTING:
            # Whether the JSON parser itself gives up depends on the Python version; the
            # server's own limit is the same everywhere.
            raise ArchiveError(
                f"the metadata of {self.namespace!r} is not valid: it is nested more than "
                f"{MAX_NESTING} levels deep, which MongoDB does not allow"
            )
        return value

    @property
    def options(self) -> dict[str, Any]:
        """The collection's creation options (``{}`` when none were recorded)."""
        options = self.parsed.get("options")
        if options is None:
            return {}
        if not isinstance(options, dict):
            raise ArchiveError(f"the metadata of {self.namespace!r} has non-object options")
        return options

    @property
    def indexes(self) -> list[dict[str, Any]]:
        """The index specifications, without the ``ns`` field that older dumps carry.

        ``ns`` is dropped because it names the source namespace, which a restore may rename,
        and current servers refuse a mismatching one.
        """
        indexes = self.parsed.get("indexes")
        if indexes is None:
            return []
        if not isinstance(indexes, list) or not all(isinstance(i, dict) for i in indexes):
            raise ArchiveError(f"the metadata of {self.namespace!r} has malformed indexes")
        return [{k: v for k, v in spec.items() if k != "ns"} for spec in indexes]

    @property
    def uuid(self) -> str | None:
        """The source collection's UUID as 32 hex digits, if recorded."""
        value = self.parsed.get("uuid")
        return value if isinstance(value, str) and value else None


def invalid_collection_name(name: str) -> str | None:
    """Why MongoDB refuses ``name`` as a collection name, or None when it takes it (its length
    against a database name is checked where the database is known)."""
    if not name:
        return "it is empty"
    if "\0" in name:
        return "it contains a NUL byte"
    if "$" in name:
        return "it contains '$'"
    if name.startswith("."):
        return "it starts with '.'"
    if name.endswith(".") or ".." in name:  # the driver refuses these (an empty name part)
        return "it ends with '.'" if name.endswith(".") else "it contains '..'"
    return None


def build_metadata_json(
    collection: str,
    *,
    options: Mapping[str, Any] | None = None,
    indexes: Sequence[Mapping[str, Any]] = (),
    uuid: str | uuid_module.UUID | Binary | None = None,
    type: str = COLLECTION,
) -> str:
    """Return the canonical Extended JSON ``.metadata.json`` text mongodump would write.

    Fields in mongodump's order: ``options`` (left out when empty), ``indexes``, ``uuid``
    (32 hex digits, left out when unknown), ``collectionName``, ``type``.
    """
    doc: dict[str, Any] = {}
    if options:
        doc["options"] = dict(options)
    doc["indexes"] = [dict(spec) for spec in indexes]
    if uuid is not None:
        doc["uuid"] = _uuid_hex(uuid)
    doc["collectionName"] = collection
    doc["type"] = type
    # Compact separators and raw UTF-8 match mongodump's output byte for byte.
    text: str = json_util.dumps(
        doc,
        json_options=json_util.CANONICAL_JSON_OPTIONS,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return text


def _uuid_hex(value: str | uuid_module.UUID | Binary) -> str:
    if isinstance(value, Binary):
        if len(value) != 16:
            raise ValueError(f"a collection UUID has 16 bytes, not {len(value)}")
        return bytes(value).hex()
    if isinstance(value, uuid_module.UUID):
        return value.hex
    return uuid_module.UUID(value).hex


# MongoDB refuses documents nested more deeply than this.
MAX_NESTING = 100


def _nesting(value: object) -> int:
    """How deeply ``value`` nests objects and arrays (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_NESTING:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest

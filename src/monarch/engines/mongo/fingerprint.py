"""A MongoDB database's fingerprint: each collection's documents as raw BSON, by ``_id``.

Documents are read as :class:`~bson.raw_bson.RawBSONDocument` (never decoded) in ``_id`` order,
which the ``_id`` index serves without a sort in memory. A collection's definition is its
options (a view's pipeline, a validator, collation) and its index specifications by name, as
BSON; fields that only describe how an index was built or stored (``v``, ``ns``,
``background``) are left out, so that an index dropped and created again the same way is the
same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bson
from bson.raw_bson import DEFAULT_RAW_BSON_OPTIONS

from monarch.engines.base import Fingerprint, fingerprint_of
from monarch.engines.mongo._moves import INDEX_FIELDS_DROPPED
from monarch.engines.mongo.errors import translated
from monarch.engines.mongo.journal import is_operational
from monarch.history import BOOKKEEPING

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from pymongo.collection import Collection
    from pymongo.database import Database

    from monarch.config import Environment


def fingerprint(db: Database[Any], environment: Environment) -> dict[str, Fingerprint]:
    """Each collection's (view's) fingerprint, monarch's own left out (see the module doc)."""
    found = {}
    with translated(environment, "reading documents for a fingerprint"):
        for spec in sorted(db.list_collections(), key=lambda c: str(c["name"])):
            name = str(spec["name"])
            if is_operational(name) or name in BOOKKEEPING:
                continue
            if spec.get("type", "collection") != "collection":  # a view: its definition only
                found[name] = fingerprint_of(bson.encode(_options(spec)), ())
                continue
            collection = db.get_collection(name, codec_options=DEFAULT_RAW_BSON_OPTIONS)
            definition = {"options": _options(spec), "indexes": _indexes(db[name])}
            found[name] = fingerprint_of(bson.encode(definition), _documents(collection))
    return found


def _options(spec: Mapping[str, Any]) -> dict[str, Any]:
    # The collection's uuid ("info") differs between two equal collections.
    return {"type": spec.get("type", "collection"), "options": spec.get("options", {})}


def _indexes(collection: Collection[Any]) -> list[dict[str, Any]]:
    specs = [{k: v for k, v in index.items() if k not in INDEX_FIELDS_DROPPED}
             for index in collection.list_indexes()]
    return sorted(specs, key=lambda index: str(index.get("name", "")))


def _documents(collection: Collection[Any]) -> Iterator[bytes]:
    with collection.find({}, sort=[("_id", 1)], batch_size=1000) as cursor:
        for document in cursor:
            yield document.raw

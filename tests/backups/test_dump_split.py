"""A big collection is dumped by several readers in _id ranges: every document exactly once,
and the archive (interleaved segments of one namespace) stays valid for mongorestore."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo.database import Database

from monarch.archive import ArchiveReader, Documents, iter_documents
from monarch.config import config_from_dict
from monarch.engines import engine_for
from monarch.engines.mongo import MongoEngine
from monarch.engines.mongo.dump import dump_archive
from monarch.engines.mongo.split import id_ranges, parts_for
from tests.backups.helpers import server_documents
from tests.servers import MongoServer, MongoTools


@pytest.fixture
def engine(mongo_url: str, tmp_path: Path) -> Iterator[MongoEngine]:
    config = config_from_dict({"environments": {"t": {"url": mongo_url}}}, None, {},
                              root=tmp_path)
    made = engine_for(config.environment("t"))
    assert isinstance(made, MongoEngine)
    yield made
    made.close()


def split_dump(engine: MongoEngine) -> tuple[bytes, dict[str, list[bytes]]]:
    """The archive and its documents by collection (sorted)."""
    out = io.BytesIO()
    dump_archive(engine, out, parallel=4, split_bytes=1)  # split anything bigger than 2 bytes
    found: dict[str, list[bytes]] = {}
    for event in ArchiveReader(io.BytesIO(out.getvalue())):
        if isinstance(event, Documents):
            found.setdefault(event.collection, []).extend(
                bytes(d) for d in iter_documents(event.data))
    return out.getvalue(), {k: sorted(v) for k, v in found.items()}


def fill(db: Database[dict[str, Any]], ids: list[Any]) -> None:
    db.big.insert_many([{"_id": i, "n": k, "pad": "x" * 200} for k, i in enumerate(ids)])
    db.small.insert_one({"_id": "only"})


@pytest.mark.parametrize("kind", ["int", "objectid", "string"])
def test_a_split_collection_is_dumped_with_every_document_exactly_once(
    engine: MongoEngine, mongo_db: Database[dict[str, Any]], kind: str
) -> None:
    choices: dict[str, list[Any]] = {
        "int": list(range(-500, 1500)),
        "objectid": [ObjectId() for _ in range(2000)],
        "string": [f"key-{i:05d}" for i in range(2000)],
    }
    ids = choices[kind]
    fill(mongo_db, ids)

    ranges = id_ranges(mongo_db.big, 2000, 4)
    _, found = split_dump(engine)

    assert len(ranges) == 4
    assert found["big"] == server_documents(mongo_db, "big")
    assert len(found["big"]) == 2000
    assert found["small"] == server_documents(mongo_db, "small")


def test_a_collection_whose_ids_mix_types_is_read_whole(
    engine: MongoEngine, mongo_db: Database[dict[str, Any]]
) -> None:
    fill(mongo_db, [*range(1000), *(f"s{i}" for i in range(500)), *(ObjectId() for _ in range(5))])

    ranges = id_ranges(mongo_db.big, 1505, 4)
    _, found = split_dump(engine)

    assert ranges == [{}]
    assert found["big"] == server_documents(mongo_db, "big")
    assert len(found["big"]) == 1505


def test_only_collections_of_at_least_two_ranges_are_split() -> None:
    assert parts_for(None, 4) == 1
    assert parts_for(100 << 20, 4) == 1
    assert parts_for(100 << 20, 1, split_bytes=1) == 1
    assert parts_for(200 << 20, 4) == 3
    assert parts_for(10 << 30, 4) == 4


def test_mongorestore_restores_a_split_archive_to_the_same_documents(
    engine: MongoEngine, mongo_db: Database[dict[str, Any]], mongo_server: MongoServer,
    mongo_tools: MongoTools,
) -> None:
    fill(mongo_db, list(range(3000)))
    archive, _ = split_dump(engine)
    target = f"{mongo_db.name}_mr"
    args = [f"--uri={mongo_server.uri}", f"--nsFrom={mongo_db.name}.*", f"--nsTo={target}.*",
            "--numParallelCollections=1", "--numInsertionWorkersPerCollection=1", "--quiet",
            "--archive"]
    if mongo_server.is_ferretdb:
        args.append("--noIndexRestore")  # FerretDB refuses the "ns" mongorestore adds
    try:
        result = subprocess.run([str(mongo_tools.mongorestore), *args], input=archive,
                                capture_output=True, check=False, timeout=300)
        assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
        restored = mongo_db.client[target]
        assert server_documents(restored, "big") == server_documents(mongo_db, "big")
    finally:
        mongo_server.drop_database(target)

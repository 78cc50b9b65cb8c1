"""Real mongodump and mongorestore (100.10.0) against a real server: our archives and theirs
are interchangeable, plain and gzip-compressed."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import Binary, Int64, ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.database import Database

from monarch.archive import CollectionMeta, DirectoryReader, Method, iter_documents, open_archive
from tests.archive.helpers import collect, make_archive
from tests.servers import MongoServer, MongoTools

RAW = CodecOptions(document_class=RawBSONDocument)


def sample_documents(count: int) -> list[dict[str, Any]]:
    return [
        {
            "_id": ObjectId(),
            "n": i,
            "big": Int64(2**40 + i),
            "price": i * 0.25,
            "name": f"item {i} — ünïcode",
            "at": datetime.datetime(1960 + i % 80, 1 + i % 12, 1),
            "tags": ["a", "b", {"nested": [i, None, True]}],
            "blob": Binary(bytes([i % 256]) * 5),
        }
        for i in range(count)
    ]


def run(tool: Path, *args: str) -> None:
    result = subprocess.run(
        [str(tool), *args],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def stored(db: Database[dict[str, Any]], name: str) -> dict[Any, bytes]:
    """A collection's documents as raw bytes, by _id."""
    raw = db.with_options(codec_options=RAW)[name]
    return {doc["_id"]: doc.raw for doc in raw.find()}


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_mongorestore_restores_an_archive_we_wrote(
    mongo_tools: MongoTools,
    mongo_server: MongoServer,
    mongo_db: Database[dict[str, Any]],
    tmp_path: Path,
    compression: Method,
) -> None:
    docs = [bson.encode(d) for d in sample_documents(300)]
    collections = [
        CollectionMeta.build(
            mongo_db.name,
            "items",
            indexes=[
                {"v": 2, "key": {"_id": 1}, "name": "_id_"},
                {"v": 2, "key": {"n": -1}, "name": "n_-1"},
            ],
        ),
        CollectionMeta.build(mongo_db.name, "empty"),
    ]
    # Small segments, interleaved with another namespace, as a parallel dump would write them.
    batches = [(mongo_db.name, "items", b"".join(docs[i : i + 37])) for i in range(0, 300, 37)]
    data, _ = make_archive(batches, collections, compression=compression, segment_size=4096)
    path = tmp_path / "dump.archive"
    path.write_bytes(data)
    flags = ["--gzip"] if compression == "gzip" else []
    if mongo_server.is_ferretdb:
        # mongorestore sends index specs with "ns", which FerretDB refuses (any dump's would).
        flags.append("--noIndexRestore")
    url = mongo_server.database_url(mongo_db.name)
    run(mongo_tools.mongorestore, f"--uri={url}", f"--archive={path}", *flags)
    assert set(mongo_db.list_collection_names()) == {"items", "empty"}
    restored = stored(mongo_db, "items")
    assert sorted(restored.values()) == sorted(docs)
    if not mongo_server.is_ferretdb:
        assert "n_-1" in mongo_db["items"].index_information()


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_we_read_an_archive_mongodump_wrote(
    mongo_tools: MongoTools,
    mongo_db: Database[dict[str, Any]],
    mongo_url: str,
    tmp_path: Path,
    compression: Method,
) -> None:
    mongo_db["items"].insert_many(sample_documents(500))
    mongo_db["others"].insert_many(sample_documents(20))
    mongo_db["items"].create_index("n")
    mongo_db.create_collection("empty")
    path = tmp_path / "dump.archive"
    gzip_flag = ["--gzip"] if compression == "gzip" else []
    run(mongo_tools.mongodump, f"--uri={mongo_url}", f"--archive={path}", *gzip_flag)
    with path.open("rb") as file:
        reader = open_archive(file)  # compression found from the magic bytes
        metas = {m.collection: m for m in reader.collections}
        got = collect(reader)
    assert set(metas) == {"items", "others", "empty"}
    assert {i["name"] for i in metas["items"].indexes} >= {"_id_", "n_1"}
    for name in metas:
        ns = f"{mongo_db.name}.{name}"
        from_archive = {
            bson.decode(bytes(d))["_id"]: bytes(d) for d in iter_documents(got.data.get(ns, b""))
        }
        assert from_archive == stored(mongo_db, name)
        assert got.ends[ns].documents == len(from_archive)


def test_mongodump_directory_output_reads_like_its_archive(
    mongo_tools: MongoTools,
    mongo_db: Database[dict[str, Any]],
    mongo_url: str,
    tmp_path: Path,
) -> None:
    mongo_db["items"].insert_many(sample_documents(50))
    run(mongo_tools.mongodump, f"--uri={mongo_url}", f"--out={tmp_path / 'dir'}", "--gzip")
    run(mongo_tools.mongodump, f"--uri={mongo_url}", f"--archive={tmp_path / 'a'}")
    from_directory = collect(DirectoryReader(tmp_path / "dir"))
    with (tmp_path / "a").open("rb") as file:
        from_archive = collect(open_archive(file))
    assert from_directory.ends == from_archive.ends
    assert from_directory.data == from_archive.data

"""monarch and the real mongo-tools (mongodump/mongorestore 100.10.0, built by the test command)
read each other's dumps: monarch backups restored by mongorestore, mongodump archives and
directories restored by monarch, and the sample dumps shipped inside the mongo-tools module.

Command lines carry the server URI without any password: FerretDB has no authentication, and
with a real server a password would go in a ``--config`` file, never in argv.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from monarch import backup, restore
from monarch.archive import (
    DirectoryReader,
    Documents,
    DumpReader,
    iter_documents,
    open_archive,
)
from monarch.errors import ArchiveError, UsageError
from tests.backups.helpers import server_documents
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    TwoDbs,
    data_collections,
    leftovers,
    seed,
    snapshot,
    two_dbs_fixture,
)
from tests.servers import MongoTools


def run(tool: Path, *args: str, stdin: bytes | None = None) -> None:
    result = subprocess.run([str(tool), *args], input=stdin, capture_output=True, check=False,
                            timeout=300)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]


def documents_only(snap: dict[str, Any]) -> dict[str, list[bytes]]:
    return {name: docs for name, (docs, _) in snap.items()}


def fresh_database(two_dbs: TwoDbs, suffix: str) -> Database[dict[str, Any]]:
    client: MongoClient[dict[str, Any]] = MongoClient(two_dbs.server.uri)
    name = f"{two_dbs.source.name}_{suffix}"
    client.drop_database(name)
    return client[name]


@pytest.mark.parametrize("compression", ["gzip", "none"])
@pytest.mark.parametrize("via", ["file", "stdin"])
def test_mongorestore_restores_a_monarch_backup_to_the_same_data(
    two_dbs: TwoDbs, mongo_tools: MongoTools, compression: str, via: str
) -> None:
    seed(two_dbs.source)
    made = backup(two_dbs.config(), "development", compression=compression)
    archive = two_dbs.root / "backups" / made.manifest.archive.key
    into = fresh_database(two_dbs, "mr")
    args = [f"--uri={two_dbs.server.uri}", f"--nsFrom={two_dbs.source.name}.*",
            f"--nsTo={into.name}.*", "--numParallelCollections=1",
            "--numInsertionWorkersPerCollection=1", "--quiet"]
    if compression == "gzip":
        args.append("--gzip")
    if two_dbs.server.is_ferretdb:
        args.append("--noIndexRestore")  # FerretDB refuses the "ns" mongorestore adds
    try:
        if via == "file":
            run(mongo_tools.mongorestore, *args, f"--archive={archive}")
        else:
            run(mongo_tools.mongorestore, *args, "--archive", stdin=archive.read_bytes())

        restored = snapshot(into)
        expected = snapshot(two_dbs.source)
        assert documents_only(restored) == documents_only(expected)
        if not two_dbs.server.is_ferretdb:
            assert restored == expected
    finally:
        into.client.drop_database(into.name)
        into.client.close()


@pytest.mark.parametrize("gzip", [False, True])
def test_monarch_restores_a_mongodump_archive_to_the_same_data(
    two_dbs: TwoDbs, mongo_tools: MongoTools, gzip: bool
) -> None:
    seed(two_dbs.source)
    seed(two_dbs.target, seed_value=13)
    two_dbs.target.not_in_dump.insert_one({})
    path = two_dbs.root / ("dump.archive.gz" if gzip else "dump.archive")
    run(mongo_tools.mongodump, f"--uri={two_dbs.source_url}", f"--archive={path}",
        *(["--gzip"] if gzip else []), "--quiet")

    result = restore(two_dbs.config(), str(path), "staging")

    assert result.source == "archive" and result.source_database == two_dbs.source.name
    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)
    assert leftovers(two_dbs.target) == []


@pytest.mark.parametrize("gzip", [False, True])
def test_monarch_restores_a_mongodump_directory_to_the_same_data(
    two_dbs: TwoDbs, mongo_tools: MongoTools, gzip: bool
) -> None:
    seed(two_dbs.source)
    seed(two_dbs.target, seed_value=17)
    out = two_dbs.root / "dump"
    run(mongo_tools.mongodump, f"--uri={two_dbs.source_url}", f"--out={out}",
        *(["--gzip"] if gzip else []), "--quiet")

    result = restore(two_dbs.config(), str(out), "staging")

    assert result.source == "directory"
    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)


def test_a_dump_of_several_databases_needs_from_db_and_lists_them(
    two_dbs: TwoDbs, mongo_tools: MongoTools
) -> None:
    seed(two_dbs.source)
    other = fresh_database(two_dbs, "other")
    try:
        other.things.insert_many([{"n": i} for i in range(7)])
        out = two_dbs.root / "everything"
        for db in (two_dbs.source.name, other.name):
            run(mongo_tools.mongodump, f"--uri={two_dbs.server.uri}/{db}", f"--out={out}",
                "--quiet")
        seed(two_dbs.target, seed_value=2)
        before = snapshot(two_dbs.target)

        with pytest.raises(UsageError, match="several databases") as caught:
            restore(two_dbs.config(), str(out), "staging")
        assert other.name in str(caught.value) and two_dbs.source.name in str(caught.value)
        assert snapshot(two_dbs.target) == before

        restore(two_dbs.config(), str(out), "staging", from_db=other.name)
        assert snapshot(two_dbs.target) == snapshot(other)
    finally:
        other.client.drop_database(other.name)
        other.client.close()


def dumped_documents(reader: DumpReader, namespace: str) -> list[bytes]:
    """The raw documents a dump holds for ``namespace``, sorted (as server_documents are)."""
    found: list[bytes] = []
    for event in reader:
        if isinstance(event, Documents) and event.namespace == namespace:
            found += [bytes(d) for d in iter_documents(event.data)]
    return sorted(found)


@pytest.mark.parametrize(("sample", "namespace"), [
    ("test.bar.archive", "test.bar"),          # mongodump 3.4, with admin.system.version
    ("dump-w-oplog.archive", "test.foo"),      # mongodump 4.1, with an oplog
])
def test_monarch_restores_the_sample_archives_shipped_with_mongo_tools(
    two_dbs: TwoDbs, mongo_tools: MongoTools, sample: str, namespace: str
) -> None:
    path = mongo_tools.testdata / sample
    seed(two_dbs.target)

    result = restore(two_dbs.config(), str(path), "staging")

    db, _, collection = namespace.partition(".")
    assert result.source_database == db
    assert data_collections(two_dbs.target) == [collection]
    with path.open("rb") as raw:
        expected = dumped_documents(open_archive(raw), namespace)
    assert expected and server_documents(two_dbs.target, collection) == expected


def test_monarch_restores_a_sample_directory_dump_without_its_oplog(
    two_dbs: TwoDbs, mongo_tools: MongoTools
) -> None:
    folder = mongo_tools.testdata / "testdirs"

    result = restore(two_dbs.config(), str(folder), "staging")

    assert result.source_database == "db1"
    assert data_collections(two_dbs.target) == ["c1", "c2", "c3", "c4"]
    for name in ("c1", "c2", "c3", "c4"):
        expected = dumped_documents(DirectoryReader(folder, db="db1"), f"db1.{name}")
        assert server_documents(two_dbs.target, name) == expected


def test_the_deliberately_broken_sample_archive_is_refused_and_changes_nothing(
    two_dbs: TwoDbs, mongo_tools: MongoTools
) -> None:
    seed(two_dbs.target)
    before = snapshot(two_dbs.target)

    with pytest.raises(ArchiveError):
        restore(two_dbs.config(), str(mongo_tools.testdata / "bad-format.archive"), "staging")

    assert snapshot(two_dbs.target) == before

"""A restore's raw insert puts the dump's documents on the server exactly as they are.

``insert_raw`` sends runs of whole BSON documents as the document sequence of one ``insert``
command (compressed when the connection negotiated compression), reads the reply as
``insert_many`` would, and falls back on ``insert_many`` for a batch that no single message
can hold. These tests drive it against the test MongoDB server (FerretDB, which refuses a few
BSON types: those go to the wire server alone) and the wire server (tests/servers/wire/). A
command listener tells the two paths apart: pymongo announces the commands of ``insert_many``,
never the raw message.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from pymongo import MongoClient, monitoring
from pymongo.compression_support import ZlibContext
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from monarch import restore
from monarch.archive import CollectionMeta
from monarch.config import load_config
from monarch.engines import engine_for
from monarch.engines.mongo._moves import STAGING_PREFIX
from monarch.engines.mongo.raw_batches import _insert_many, insert_raw
from monarch.io import Buffer
from tests.backups.helpers import server_documents
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    TwoDbs,
    leftovers,
    run_cli,
    seed,
    snapshot,
    two_dbs_fixture,
    write_archive,
)
from tests.servers import MongoServer
from tests.servers.wire import WireServer, start_wire

Client = MongoClient[dict[str, Any]]
NEAR_16_MB = 16 * 1024 * 1024 - 1024


class Inserts(monitoring.CommandListener):
    """The ``insert`` commands pymongo announces (those of ``insert_many``, not the raw ones)."""

    def __init__(self) -> None:
        self.announced: list[int] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "insert":
            self.announced.append(len(event.command.get("documents", [])))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def documents(first: int, count: int, *, rich: bool = True) -> list[dict[str, Any]]:
    """Documents of many BSON types: nested documents, arrays, binaries, dates... and, when
    ``rich``, the types FerretDB 1.x refuses (decimal128, min and max keys, code, nested
    arrays)."""
    start = datetime.datetime(2024, 2, 29, 12, 30, tzinfo=datetime.UTC)
    made = []
    for i in range(first, first + count):
        doc: dict[str, Any] = {
            "_id": i, "name": f"doc {i} é", "n": Int64(i * 1_000_003), "ratio": i / 7,
            "even": i % 2 == 0, "nothing": None,
            "when": start + datetime.timedelta(milliseconds=i * 1001),
            "blob": Binary(bytes(range(i % 256)) * 3), "uuid": Binary(uuid.UUID(int=i).bytes, 4),
            "oid": ObjectId(f"{i:024x}"), "nested": {"a": {"b": [i, {"c": str(i)}], "d": {}}},
            "tags": ["x", i, {"k": "v"}], "pattern": Regex("^doc", "i"),
            "ts": Timestamp(1_700_000_000 + i, 1)}
        if rich:
            doc.update({"price": Decimal128(f"{i}.{i % 1000:03d}"), "low": MinKey(),
                        "high": MaxKey(), "code": Code("function () { return 1 }"),
                        "grid": [[1, 2], [3, [4]]]})
        made.append(doc)
    return made


def runs_of(batches: Sequence[Sequence[dict[str, Any]]]) -> list[Buffer]:
    """Each batch as one run of concatenated BSON, alternately bytes and a view into a larger
    buffer (the archive reader hands out both)."""
    runs: list[Buffer] = []
    for i, batch in enumerate(batches):
        run = b"".join(bson.encode(d) for d in batch)
        runs.append(run if i % 2 == 0 else memoryview(b"--" + run + b"--")[2:-2])
    return runs


def the_runs(*, rich: bool = True) -> tuple[list[Buffer], list[bytes]]:
    """Several runs (one holding a document near 1 MB) and every document's BSON."""
    big = {"_id": "big", "payload": "x" * 1_000_000, "tail": [1.5, {"deep": True}]}
    batches = [documents(0, 150, rich=rich), [big, *documents(150, 3, rich=rich)],
               documents(153, 97, rich=rich)]
    return runs_of(batches), [bson.encode(d) for batch in batches for d in batch]


def size_of(runs: Sequence[Buffer]) -> int:
    return sum(len(memoryview(run)) for run in runs)


@dataclass
class Watched:
    """The test's database on the test server, through a client whose announced inserts are
    recorded; ``rich`` when the server takes every BSON type (FerretDB 1.x does not)."""

    db: Database[dict[str, Any]]
    inserts: Inserts
    rich: bool


@pytest.fixture
def watched(mongo_server: MongoServer, mongo_url: str) -> Iterator[Watched]:
    inserts = Inserts()
    client: Client = MongoClient(mongo_url, event_listeners=[inserts],
                                 serverSelectionTimeoutMS=5000)
    with client:
        yield Watched(client.get_default_database(), inserts, not mongo_server.is_ferretdb)


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WireServer]:
    with start_wire(tmp_path_factory.mktemp("wire"), megabytes=0.1) as server:
        yield server


def test_insert_raw_puts_the_runs_documents_on_the_server_byte_for_byte_in_one_command(
    watched: Watched,
) -> None:
    db, inserts = watched.db, watched.inserts
    runs, expected = the_runs(rich=watched.rich)

    assert insert_raw(db.items, runs, size_of(runs)) == len(expected) == 251
    assert server_documents(db, "items") == sorted(expected)
    assert inserts.announced == []  # the raw message, not insert_many


def test_the_fallback_inserts_the_same_documents_as_the_raw_insert(
    watched: Watched,
) -> None:
    db, inserts = watched.db, watched.inserts
    runs, expected = the_runs(rich=watched.rich)

    assert _insert_many(db.fallback, runs) == insert_raw(db.raw, runs, size_of(runs)) == 251
    assert server_documents(db, "fallback") == server_documents(db, "raw") == sorted(expected)
    assert sum(inserts.announced) == 251  # only insert_many's commands were announced


def test_a_duplicate_id_in_a_batch_raises_bulk_write_error_and_the_others_are_inserted(
    watched: Watched,
) -> None:
    db = watched.db
    docs = [{"_id": i % 8, "n": i} for i in range(10)]  # _id 0 and 1 come twice
    runs = runs_of([docs[:5], docs[5:]])

    with pytest.raises(BulkWriteError) as caught:
        insert_raw(db.items, runs, size_of(runs))

    details = caught.value.details
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(8, 11000), (9, 11000)]
    assert details["nInserted"] == 8
    assert list(db.items.find(sort=[("_id", 1)])) == docs[:8]  # unordered: all but the two


def test_a_restore_of_a_dump_holding_an_id_twice_fails_clearly_and_changes_nothing(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.target)
    before = snapshot(two_dbs.target)
    docs = [bson.encode({"_id": i, "n": i}) for i in range(3000)] + [bson.encode({"_id": 7})]
    path = write_archive(two_dbs.root / "twice.archive", [
        (CollectionMeta.build("shop", "fine"), [bson.encode({"_id": i}) for i in range(10)]),
        (CollectionMeta.build("shop", "items"), docs),
    ])

    result = run_cli(two_dbs, "restore", f"{path}:staging")

    assert result.code != 0
    assert f"staging collection '{STAGING_PREFIX}" in result.stderr
    assert "code 11000" in result.stderr
    assert "Try: the dump holds the same _id twice in a collection: it is not a consistent dump" \
        in result.stderr
    assert snapshot(two_dbs.target) == before
    assert leftovers(two_dbs.target) == []


def test_a_batch_too_big_for_one_message_goes_through_insert_many_and_lands_whole(
    wire: WireServer,
) -> None:
    inserts = Inserts()
    client: Client = MongoClient(wire.uri, directConnection=True, event_listeners=[inserts])
    giants = [{"_id": i, "fill": bytes([i]) * NEAR_16_MB} for i in range(3)]
    runs = runs_of([giants[:1], giants[1:]])
    with client:
        max_message = client.admin.command("hello")["maxMessageSizeBytes"]
        assert size_of(runs) > max_message  # 3 x 16 MB against 48,000,000 bytes

        assert insert_raw(client.big.giants, runs, size_of(runs)) == 3

        assert client.big.command("count", "giants")["n"] == 3
        assert sum(inserts.announced) == 3 and len(inserts.announced) >= 2  # split by insert_many
        kept = client.big.giants.find_one({"_id": 2})
        assert kept is not None and kept["fill"] == giants[2]["fill"]


def test_the_wire_server_offers_zlib_only_to_a_client_that_lists_it(wire: WireServer) -> None:
    client: Client = MongoClient(wire.uri, directConnection=True)
    with client:
        offered = client.admin.command({"hello": 1, "compression": ["snappy", "zlib", "zstd"]})
        plain = client.admin.command("hello")
    assert offered["compression"] == ["zlib"]
    assert "compression" not in plain


def test_insert_raw_on_a_zlib_connection_sends_compressed_documents_that_arrive(
    wire: WireServer,
) -> None:
    runs, expected = the_runs()
    inserts = Inserts()
    client: Client = MongoClient(f"{wire.uri}?compressors=zlib&directConnection=true",
                                 event_listeners=[inserts])
    with client:
        with client._conn_for_writes(None, "insert") as conn:
            assert isinstance(conn.compression_context, ZlibContext)

        assert insert_raw(client.zipped.items, runs, size_of(runs)) == 251

        assert client.zipped.command("count", "items")["n"] == 251  # under the 1000 kept
        assert server_documents(client.zipped, "items") == sorted(expected)
        assert inserts.announced == []


def test_a_restore_through_a_zlib_url_lands_every_document(
    wire: WireServer, tmp_path: Path
) -> None:
    target = f"zlib_{tmp_path.name[-20:]}"
    path = write_archive(tmp_path / "dump.archive", [
        (CollectionMeta.build("shop", "items"), [bson.encode(d) for d in documents(0, 2500)]),
        (CollectionMeta.build("shop", "few"), [bson.encode({"_id": i}) for i in range(3)]),
    ])
    config = tmp_path / "monarch.toml"
    config.write_text(
        f'backups = "file://{tmp_path / "store"}"\n'
        f'[environments.dst]\nurl = "{wire.database_url(target)}?compressors=zlib"\n'
        "protected = false\n")

    engine = engine_for(load_config(config).environment("dst"))
    try:  # monarch's own client for that URL negotiates zlib with the server
        with engine.client._conn_for_writes(None, "insert") as conn:  # type: ignore[attr-defined]
            assert isinstance(conn.compression_context, ZlibContext)
    finally:
        engine.close()

    restored = restore(load_config(config), str(path), "dst")

    assert sorted((c.name, c.documents) for c in restored.collections) == [
        ("few", 3), ("items", 2500)]
    client: Client = MongoClient(wire.uri, directConnection=True)
    with client:
        assert client[target].command("count", "items")["n"] == 2500
        assert client[target].command("count", "few")["n"] == 3
    assert "unknown" not in wire.log() and "unsupported" not in wire.log()

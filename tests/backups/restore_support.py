"""Shared by the restore, copy, interop and kill tests: a project with two databases, database
snapshots to compare exactly, and hand-made archives.

Fixtures defined here are imported by the test modules that use them (``two_dbs_fixture``
provides the ``two_dbs`` fixture).
"""

from __future__ import annotations

import io
import json
import logging
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from click.testing import CliRunner
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.database import Database

from monarch.archive import (
    ArchiveWriter,
    CollectionMeta,
    Method,
    iter_documents,
    open_compressed_writer,
)
from monarch.cli import main
from monarch.config import Config, load_config
from monarch.engines.mongo.journal import ASIDE_PREFIX, JOURNAL, PROBE_PREFIX, STAGING_PREFIX
from tests.backups.helpers import server_documents
from tests.servers import MongoServer

Snapshot = dict[str, tuple[list[bytes], list[tuple[Any, ...]]]]
RAW: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument)


@dataclass
class TwoDbs:
    """A project whose environments are two databases of the test server.

    ``development`` is the source (``source`` db), ``staging`` the target (``target`` db),
    ``production`` the target again but protected.
    """

    root: Path
    server: MongoServer
    source_url: str
    target_url: str
    source: Database[dict[str, Any]]
    target: Database[dict[str, Any]]

    @property
    def config_path(self) -> Path:
        return self.root / "monarch.toml"

    def config(self) -> Config:
        return load_config(self.config_path)


@pytest.fixture(name="two_dbs")
def two_dbs_fixture(
    tmp_path: Path, mongo_server: MongoServer, mongo_url: str, mongo_db: Database[dict[str, Any]]
) -> Iterator[TwoDbs]:
    """Source = the test's own database; target = a second fresh database, dropped after."""
    target_name = mongo_db.name + "_to"
    target_url = mongo_server.database_url(target_name)
    (tmp_path / "querysets").mkdir()
    (tmp_path / "monarch.toml").write_text(
        f'backups = "file://{tmp_path / "backups"}"\n\n'
        f'[environments.development]\nurl = "{mongo_url}"\n\n'
        f'[environments.staging]\nurl = "{target_url}"\n\n'
        f'[environments.production]\nurl = "{target_url}"\nprotected = true\n'
    )
    client: MongoClient[dict[str, Any]] = MongoClient(target_url, serverSelectionTimeoutMS=5000)
    try:
        yield TwoDbs(tmp_path, mongo_server, mongo_url, target_url, mongo_db,
                     client.get_default_database())
    finally:
        client.close()
        mongo_server.drop_database(target_name)


def seed(db: Database[dict[str, Any]], scale: int = 1, seed_value: int = 7) -> None:
    """Mixed shapes: users (unique index), orders (compound), notes (nested), an empty one."""
    rng = random.Random(seed_value)
    users = 300 * scale
    db.users.insert_many(
        {"_id": i, "name": f"user {i}", "email": f"user{i}@example.com", "active": i % 3 != 0,
         "score": rng.random(), "tags": ["a", "b", "c"][: i % 4], "joined": i * 86_400}
        for i in range(users)
    )
    db.users.create_index([("email", ASCENDING)], unique=True, name="email_1")
    db.orders.insert_many(
        {"user": i % users, "total": round(rng.uniform(1, 500), 2),
         "lines": [{"sku": f"sku-{j}", "qty": j + 1} for j in range(i % 5)]}
        for i in range(500 * scale)
    )
    db.orders.create_index([("user", ASCENDING), ("total", DESCENDING)], name="user_total")
    db.notes.insert_many({"text": "x" * rng.randrange(1, 2000), "n": {"deep": {"er": i}}}
                         for i in range(100 * scale))
    db.create_collection("empty")


# monarch's own bookkeeping beside the data: the environment's lock, which a restore, copy or drop
# holds like migrate (#12), and the audit events they write. Neither is part of what a backup
# holds or a restore gives back, so contents compared here leave them out.
BOOKKEEPING = frozenset({"monarch_lock", "monarch_events"})


def data_collections(db: Database[Any]) -> list[str]:
    """The names of ``db``'s collections, sorted, but monarch's bookkeeping."""
    return sorted(set(db.list_collection_names()) - BOOKKEEPING)


def snapshot(db: Database[Any], *, batch_size: int = 0) -> Snapshot:
    """Every collection (but monarch's bookkeeping): its documents as raw BSON (sorted) and its
    indexes' key/name/unique.

    ``batch_size`` bounds documents per reply (FerretDB sends replies past the 48 MB message
    limit when documents are near 16 MB, which the driver then refuses).
    """
    result: Snapshot = {}
    for name in sorted(set(db.list_collection_names()) - BOOKKEEPING):
        indexes = sorted(
            (tuple(spec["key"].items()), spec["name"], bool(spec.get("unique", False)))
            for spec in db[name].list_indexes()
        )
        if batch_size:
            raw = b"".join(db[name].find_raw_batches(batch_size=batch_size))
            documents = sorted(bytes(d) for d in iter_documents(raw))
        else:
            documents = server_documents(db, name)
        result[name] = (documents, indexes)
    return result


def edit_manifest(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite the manifest file at ``path`` through ``change`` (tampering tests)."""
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def leftovers(db: Database[Any]) -> list[str]:
    """monarch's restore bookkeeping still in the database (must be none after a restore)."""
    return sorted(n for n in db.list_collection_names()
                  if n.startswith((STAGING_PREFIX, ASIDE_PREFIX, PROBE_PREFIX)) or n == JOURNAL)


def write_archive(
    path: Path,
    collections: Sequence[tuple[CollectionMeta, Sequence[bytes]]],
    *,
    compression: Method = "none",
) -> Path:
    """A hand-made archive: each collection's metadata and its raw documents."""
    out = io.BytesIO()
    with open_compressed_writer(out, compression) as stream:
        writer = ArchiveWriter(stream)
        writer.write_header([meta for meta, _ in collections], "7.0.0", "monarch-tests")
        for meta, documents in collections:
            if documents:
                writer.write_documents(meta.db, meta.data_collection, b"".join(documents))
            writer.end_collection(meta.db, meta.data_collection)
        writer.close()
    path.write_bytes(out.getvalue())
    return path


def dump_with_writer(db: Database[Any], path: Path, *, compression: Method = "none") -> Path:
    """An archive of ``db`` made with monarch's ArchiveWriter only (no backup code)."""
    collections = []
    for name in sorted(db.list_collection_names()):
        meta = CollectionMeta.build(db.name, name, options=db[name].options(),
                                    indexes=list(db[name].list_indexes()))
        docs = [d.raw for d in db.get_collection(name, codec_options=RAW).find()]
        collections.append((meta, docs))
    return write_archive(path, collections, compression=compression)


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str


def run_cli(two_dbs: TwoDbs, *args: str) -> CliRun:
    """``monarch --config ... ARGS`` in this process, through the real entry point."""
    logger = logging.getLogger("monarch")
    handlers = list(logger.handlers)
    with CliRunner().isolation() as (out, err, _):
        try:
            main(["--config", str(two_dbs.config_path), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            logger.handlers[:] = handlers  # the CLI's log handler must not outlive its stream
        sys.stdout.flush()
        sys.stderr.flush()
        return CliRun(code, out.getvalue().decode(), err.getvalue().decode())

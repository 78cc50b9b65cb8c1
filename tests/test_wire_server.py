"""The benchmark's wire server serves mongodump, mongorestore and monarch unchanged.

It is the yardstick of the client-bound benchmark (benchmarks/wire_bench.py): if a tool needed
a command the server lacks, the figures would measure a failure. Unknown commands are logged by
the server, and none may appear.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

from monarch.history import EVENTS_NAME, LOCK_NAME
from tests.servers import MongoTools
from tests.servers.wire import WireServer, start_wire

MEGABYTES = 3.0


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WireServer]:
    with start_wire(tmp_path_factory.mktemp("wire"), shape="small", megabytes=MEGABYTES) as server:
        yield server


def counts(server: WireServer, db: str) -> dict[str, int]:
    """Documents per collection (monarch's lock and audit trail left out: the environment's)."""
    client: MongoClient[dict[str, object]] = MongoClient(server.uri, directConnection=True)
    with client:
        names = set(client[db].list_collection_names()) - {LOCK_NAME, EVENTS_NAME}
        return {name: client[db][name].estimated_document_count() for name in names}


def no_unknown_commands(server: WireServer) -> None:
    problems = [line for line in server.log().splitlines()
                if "unknown" in line or "unsupported" in line or "ignored" in line]
    assert problems == []


def monarch(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monarch", "--config", str(config), *args],
                          capture_output=True, text=True, check=True, timeout=120)


@pytest.fixture
def config(wire: WireServer, tmp_path: Path) -> Path:
    path = tmp_path / "monarch.toml"
    path.write_text(
        f'backups = "file://{tmp_path / "store"}"\n'
        f'[environments.src]\nurl = "{wire.database_url()}"\nprotected = false\n'
        f'[environments.dst]\nurl = "{wire.database_url(f"dst_{tmp_path.name[-20:]}")}"\n'
        "protected = false\n")
    return path


def test_the_server_serves_a_generated_dataset_of_the_size_asked(wire: WireServer) -> None:
    source = counts(wire, "bench")

    assert sorted(source) == ["small_000", "small_001", "small_002", "small_003"]
    client: MongoClient[dict[str, object]] = MongoClient(wire.uri, directConnection=True)
    with client:
        size = sum(len(batch) for name in source
                   for batch in client.bench[name].find_raw_batches())
    assert MEGABYTES * 1e6 * 0.97 <= size <= MEGABYTES * 1e6 * 1.03


def test_mongodump_and_mongorestore_archives_round_trip_through_the_server(
    wire: WireServer, mongo_tools: MongoTools, tmp_path: Path
) -> None:
    archive = tmp_path / "dump.archive"
    subprocess.run([str(mongo_tools.mongodump), f"--uri={wire.uri}", "--db=bench",
                    f"--archive={archive}", "--quiet"], check=True, timeout=120)
    subprocess.run([str(mongo_tools.mongorestore), f"--uri={wire.uri}", f"--archive={archive}",
                    "--nsFrom=bench.*", "--nsTo=tools_copy.*", "--quiet"],
                   check=True, timeout=120)

    assert counts(wire, "tools_copy") == counts(wire, "bench")
    no_unknown_commands(wire)


def test_monarch_backup_and_restore_run_against_the_server(
    wire: WireServer, config: Path
) -> None:
    monarch(config, "backup", "src", "--quiet", "--compression", "zstd", "--name", "w")
    store = config.parent / "store"
    name = next(p.name for p in store.iterdir() if p.name.endswith(".manifest.json"))
    monarch(config, "restore", f"{name.split('.')[0]}:dst", "--quiet")

    target = config.read_text().split('url = "')[-1].split('"')[0].rsplit("/", 1)[1]
    assert counts(wire, target) == counts(wire, "bench")
    no_unknown_commands(wire)


def test_monarch_copy_db_runs_against_the_server(wire: WireServer, config: Path) -> None:
    monarch(config, "copy_db", "src:dst", "--quiet")

    target = config.read_text().split('url = "')[-1].split('"')[0].rsplit("/", 1)[1]
    assert counts(wire, target) == counts(wire, "bench")
    no_unknown_commands(wire)

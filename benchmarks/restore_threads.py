"""How many insertion threads should a restore use? monarch restore with 1, 2 and 4 threads,
against a bare raw-insert loop and mongorestore, on the tests' server (FerretDB unless
``$MONARCH_TEST_MONGODB_URI`` or a ``mongod`` on PATH says otherwise)::

    python benchmarks/restore_threads.py [--docs 200000] [--rounds 3]

Rounds are interleaved so that a busy machine slows every case alike; medians are printed.
"""

from __future__ import annotations

import argparse
import io
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bson
from bson.raw_bson import DEFAULT_RAW_BSON_OPTIONS
from pymongo import MongoClient
from pymongo.database import Database
from tests.servers import mongo_tools, start_mongo

from monarch import backup, load_config, restore
from monarch.archive import Documents, open_archive

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()



    with start_mongo() as server, tempfile.TemporaryDirectory() as work:
        root = Path(work)
        (root / "monarch.toml").write_text(
            f'backups = "file://{root / "store"}"\n'
            f'[environments.src]\nurl = "{server.uri}/bench_src"\n'
            f'[environments.dst]\nurl = "{server.uri}/bench_dst"\n')
        config = load_config(root / "monarch.toml")
        client: MongoClient[dict[str, object]] = MongoClient(server.uri)
        generate(client["bench_src"], args.docs)
        plain = backup(config, "src", compression="none")
        packed = backup(config, "src", compression="zstd")
        archive = root / "store" / plain.manifest.archive.key
        data = archive.read_bytes()
        tools = mongo_tools()
        print(f"{plain.documents:,} documents, {len(data) / 1e6:.0f} MB archive, "
              f"server {server.kind} {server.version}")

        def raw_insert() -> None:
            client.drop_database("bench_dst")
            for event in open_archive(io.BytesIO(data)):
                if isinstance(event, Documents):
                    docs = bson.decode_all(event.data, DEFAULT_RAW_BSON_OPTIONS)
                    for i in range(0, len(docs), 1000):
                        client["bench_dst"][event.collection].insert_many(docs[i:i + 1000],
                                                                          ordered=False)

        def mongorestore() -> None:
            client.drop_database("bench_dst")
            subprocess.run([str(tools.mongorestore), f"--uri={server.uri}",
                            f"--archive={archive}", "--nsFrom=bench_src.*",
                            "--nsTo=bench_dst.*", "--noIndexRestore",
                            "--numParallelCollections=1", "--numInsertionWorkersPerCollection=1",
                            "--quiet"], check=True)

        def monarch(workers: int) -> Callable[[], object]:
            return lambda: restore(config, packed.name, "dst", workers=workers)

        cases: dict[str, Callable[[], object]] = {
            "monarch restore, 1 thread": monarch(1),
            "monarch restore, 2 threads": monarch(2),
            "monarch restore, 4 threads": monarch(4),
            "raw insert limit (no indexes)": raw_insert,
            "mongorestore 1x1 --noIndexRestore": mongorestore,
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, run in cases.items():
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
        for name, runs in times.items():
            median = sorted(runs)[len(runs) // 2]
            print(f"{name:38s} median {median:6.2f} s  best {min(runs):6.2f} s  "
                  f"{plain.documents / median:9,.0f} docs/s")


def generate(db: object, docs: int) -> None:
    assert isinstance(db, Database)
    rng = random.Random(1)
    db.users.insert_many(({"_id": i, "name": f"user {i}", "email": f"u{i}@example.com",
                           "score": rng.random(), "tags": ["a", "b"][: i % 3]}
                          for i in range(docs // 2)), ordered=False)
    db.users.create_index("email", unique=True)
    db.orders.insert_many(({"user": i % 1000, "total": rng.random() * 100,
                            "lines": [{"sku": f"s{j}", "q": j} for j in range(i % 4)]}
                           for i in range(docs * 4 // 10)), ordered=False)
    db.notes.insert_many(({"text": "x" * rng.randrange(200, 2000)}
                          for _ in range(docs // 10)), ordered=False)


if __name__ == "__main__":
    main()

"""The valid inputs the fuzzer starts from, taken from real producers.

- monarch's own backups (archive + manifest; plain, gzip, zstd) of a small real database, made
  by :func:`monarch.backup` against the MongoDB-wire test server;
- mongodump's archives (plain and ``--gzip``) and directory dumps (plain and ``--gzip``) of the
  same database, and the dumps real mongodump releases wrote that ship with mongo-tools;
- monarch 0.0.x backups (``.dmp.zip``: that mongodump folder zipped, deflated and stored);
- the hand-written SQL migrations, ``monarch.toml`` files and legacy ``settings.py`` files in
  ``tests/fuzz/seeds``.

:func:`collect_samples` lays them out as ``DEST/<kind>/<sample>``; the targets read them back
with :func:`load_samples`.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, MongoClient

from monarch import backup
from monarch.config import load_config
from tests.servers import MongoTools

SEEDS = Path(__file__).parent / "seeds"

# mongodump outputs that ship with mongo-tools (written by real releases), small enough to fuzz.
TESTDATA_ARCHIVES = ("test.bar.archive", "dump-w-oplog.archive", "timeseries_tests/dump.archive")
TESTDATA_DUMPS = ("testdirs", "specialcharacter", "longcollectionname", "indexmetadata",
                  "duplicate_index_key_with_oplog", "timeseries_tests/ts_dump")

Tree = dict[str, bytes]
"""A directory dump as files: path relative to the dump's root -> contents."""


def seed_database(url: str) -> None:
    """A small database of mixed shapes: documents of every common BSON type, indexes, an empty
    collection and one whose name needs escaping in a file name."""
    rng = random.Random(10)
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        db = client.get_default_database()
        db.users.insert_many(
            {"_id": i, "name": f"user {i} — ü", "active": i % 2 == 0, "score": rng.random(),
             "big": 2**40 + i, "tags": ["a", "b"][: i % 3], "blob": bytes([i]) * 3}
            for i in range(12)
        )
        db.users.create_index([("name", ASCENDING)], unique=True, name="name_1")
        db.orders.insert_many(
            {"user": i % 12, "lines": [{"sku": f"sku-{j}", "qty": j} for j in range(i % 4)],
             "note": None}
            for i in range(15)
        )
        db["odd name/with%chars"].insert_one({"x": 1})
        db.create_collection("empty")
    finally:
        client.close()


def collect_samples(dest: Path, *, mongo_url: str, tools: MongoTools) -> Path:
    """Write every sample into ``dest`` (see the module docstring); returns ``dest``."""
    work = dest / ".work"
    work.mkdir(parents=True, exist_ok=True)
    seed_database(mongo_url)
    _monarch_backups(dest, work, mongo_url)
    _mongodump_outputs(dest, work, mongo_url, tools)
    _testdata(dest, tools.testdata)
    for kind in ("sql", "toml", "settings"):
        shutil.copytree(SEEDS / kind, dest / kind, dirs_exist_ok=True)
    shutil.rmtree(work)
    return dest


def _monarch_backups(dest: Path, work: Path, mongo_url: str) -> None:
    store = work / "backups"
    (work / "monarch.toml").write_text(
        f'backups = "file://{store}"\n\n[environments.dev]\nurl = "{mongo_url}"\n'
    )
    config = load_config(work / "monarch.toml")
    suffix = {"none": "archive", "gzip": "archive-gzip", "zstd": "archive-zstd"}
    for method in ("none", "gzip", "zstd"):
        made = backup(config, "dev", compression=method)
        archive = store / made.manifest.archive.key
        manifest = store / f"{made.name}.manifest.json"
        _put(dest / suffix[method] / f"monarch-{method}.bin", archive.read_bytes())
        _put(dest / "manifest" / f"monarch-{method}.json", manifest.read_bytes())
        pair = dest / "backup" / f"monarch-{method}"
        _put(pair / "manifest.json", manifest.read_bytes())
        _put(pair / "archive", archive.read_bytes())


def _mongodump_outputs(dest: Path, work: Path, mongo_url: str, tools: MongoTools) -> None:
    (dest / "legacy-zip").mkdir(parents=True, exist_ok=True)
    mongodump(tools, f"--uri={mongo_url}", f"--archive={work / 'plain.archive'}")
    mongodump(tools, f"--uri={mongo_url}", f"--archive={work / 'gzip.archive'}", "--gzip")
    mongodump(tools, f"--uri={mongo_url}", f"--out={work / 'dir'}")
    mongodump(tools, f"--uri={mongo_url}", f"--out={work / 'dir-gzip'}", "--gzip")
    db_folder = next(p for p in (work / "dir").iterdir() if p.is_dir())
    for method, suffix in ((zipfile.ZIP_DEFLATED, "deflated"), (zipfile.ZIP_STORED, "stored")):
        # A monarch 0.0.x backup: the database's mongodump files at the root of a zip.
        with zipfile.ZipFile(dest / "legacy-zip" / f"legacy-{suffix}.bin", "w", method) as out:
            for file in sorted(db_folder.iterdir()):
                out.write(file, arcname=file.name)
    _put(dest / "archive" / "mongodump.bin", (work / "plain.archive").read_bytes())
    _put(dest / "archive-gzip" / "mongodump-gzip.bin", (work / "gzip.archive").read_bytes())
    shutil.copytree(work / "dir", dest / "dump" / "mongodump")
    shutil.copytree(work / "dir-gzip", dest / "dump" / "mongodump-gzip")


def _testdata(dest: Path, testdata: Path) -> None:
    for name in TESTDATA_ARCHIVES:
        _put(dest / "archive" / f"testdata-{Path(name).stem}.bin", (testdata / name).read_bytes())
    for name in TESTDATA_DUMPS:
        shutil.copytree(testdata / name, dest / "dump" / f"testdata-{Path(name).name}")


def mongodump(tools: MongoTools, *args: str) -> None:
    result = subprocess.run([str(tools.mongodump), "--quiet", *args], capture_output=True,
                            text=True, check=False, stdin=subprocess.DEVNULL, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"mongodump {' '.join(args[1:])} failed: {result.stderr[-2000:]}")


def _put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def load_samples(folder: Path, kind: str) -> list[bytes] | list[Tree]:
    """The samples of ``kind``: file contents, or (for ``dump`` and ``backup``) file trees."""
    root = folder / kind
    if not root.is_dir():
        return []
    if kind in ("dump", "backup"):
        return [read_tree(child) for child in sorted(root.iterdir()) if child.is_dir()]
    return [child.read_bytes() for child in sorted(root.iterdir()) if child.is_file()]


def read_tree(root: Path) -> Tree:
    """Every file under ``root``, by its path relative to ``root``."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def write_tree(root: Path, tree: Tree) -> None:
    """Lay ``tree`` out under ``root`` (which must not exist)."""
    root.mkdir(parents=True)
    for name, data in tree.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

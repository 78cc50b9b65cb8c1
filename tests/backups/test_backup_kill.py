"""A backup killed at any moment leaves nothing listed, and its leftovers are cleaned later."""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from monarch import backup, list_backups, prune, verify
from monarch.stores.local import TEMP_PREFIX
from tests.backups.conftest import Project
from tests.servers import MongoServer

pytestmark = pytest.mark.slow


def fill(db: Database[dict[str, Any]], documents: int) -> None:
    """Several collections, so a kill can land between collections as well as inside one."""
    rng = random.Random(3)
    per = documents // 4
    for name in ("events", "users", "orders", "notes"):
        db[name].insert_many(
            ({"i": i, "text": "x" * rng.randint(50, 400), "n": rng.random()}
             for i in range(per)),
            ordered=False,
        )


@pytest.fixture(scope="module")
def mongo_url(mongo_server: MongoServer) -> Iterator[str]:
    """One database for this module's tests, filled once: they back it up and never change it
    (each test keeps its own backup store)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = mongo_server.database_url(name)
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        fill(client.get_default_database(), 40_000)
    finally:
        client.close()
    yield url
    mongo_server.drop_database(name)


def age_everything(folder: os.PathLike[str], seconds: float) -> None:
    then = time.time() - seconds
    for entry in os.scandir(folder):
        os.utime(entry.path, (then, then))


def test_killed_backups_are_never_listed_and_are_cleaned_up(any_project: Project) -> None:
    started = time.monotonic()
    finished = any_project.process("backup", "development", "--quiet")
    full = time.monotonic() - started
    assert finished.returncode == 0, finished.stderr
    complete = {finished.stdout.strip()}
    rng = random.Random(11)
    runs = 6 if any_project.store_kind == "file" else 4
    killed_mid_dump = 0

    for run in range(runs):
        child = any_project.spawn("backup", "development")
        # One kill in each of ``runs`` equal slices of 0.05 s to 1.1 times a whole backup, at
        # a random point of its slice: spread over the dump, and a few past its end.
        time.sleep(0.05 + (run + rng.random()) * (full * 1.1 - 0.05) / runs)
        if child.poll() is None:
            child.kill()
            killed_mid_dump += 1
        child.wait()

        listed = list_backups(any_project.config())
        for info in listed:
            if info.name not in complete:
                assert verify(any_project.config(), info.name).ok, info.name
                complete.add(info.name)
        assert {b.name for b in listed} == complete

    assert killed_mid_dump >= runs // 2, "the kills should mostly land mid-backup"
    if any_project.store_kind == "file":
        folder = any_project.root / "backups"
        assert any(p.name.startswith(TEMP_PREFIX) for p in folder.iterdir())
        # Leftovers younger than an hour may belong to a backup still running: kept...
        complete.add(backup(any_project.config(), "development").name)
        assert any(p.name.startswith(TEMP_PREFIX) for p in folder.iterdir())
        # ...and once old, the next backup removes them.
        age_everything(folder, 7200)
        newest = backup(any_project.config(), "development")
        complete.add(newest.name)
        assert not any(p.name.startswith(TEMP_PREFIX) for p in folder.iterdir())
        assert _backup_names(any_project) == complete
    else:
        result = prune(any_project.config(), keep_last=100, leftover_age=0)
        assert result.removed == ()
        assert _backup_names(any_project) == {b.name for b in list_backups(any_project.config())}
        assert any_project.store().cleanup(0) == 0  # no pending multipart upload remains


def _backup_names(project: Project) -> set[str]:
    """The backup names of every object in the store (orphans and complete backups alike)."""
    names = {key.split(".", 1)[0] for key in project.store_keys()}
    for name in names:  # every object belongs to a complete backup: no orphan archive left
        assert {f"{name}.manifest.json"} < set(project.store_keys()), name
    return names

"""Child processes for the engine tests (races, kills): ``python -m tests.engines._worker``.

- ``race URL FOLDER``: print ``ready``, wait for FOLDER/go, try the lock once, print the outcome
  as JSON; a winner holds the lock until FOLDER/done exists.
- ``hold URL``: take the lock (waiting for it), print ``acquired``, then sleep until killed.
- ``restore URL FILE``: restore the dump in FILE into URL's database, print the result.
- ``restore-pause URL FILE WHERE``: the same, stopping for good at a point of the PostgreSQL
  swap (``in-swap``: renamed, not committed; ``after-swap``: committed, old copy not dropped),
  after printing ``paused``: for a test to kill it exactly there.
- ``write URL SECONDS``: SQLite: move amounts between rows of ``accounts`` in transactions.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path

from monarch.config import config_from_dict
from monarch.engines import engine_for
from monarch.engines.base import Engine
from monarch.engines.postgres import dbprops
from monarch.engines.postgres import restore as module
from monarch.history import LockOwner


def _engine(url: str) -> Engine:
    data = {"environments": {"w": {"url": url}}}
    return engine_for(config_from_dict(data, None, os.environ, root=Path("/")).environment("w"))


def _owner() -> LockOwner:
    return LockOwner(f"token-{os.getpid()}", "worker", "testhost", os.getpid(), "race", "0")


def race(url: str, folder: Path) -> None:
    lock = _engine(url).migration_lock()
    print("ready", flush=True)
    while not (folder / "go").exists():
        time.sleep(0.001)
    outcome = lock.try_acquire(_owner(), 30.0)
    print(json.dumps({"pid": os.getpid(), "acquired": outcome.acquired}), flush=True)
    if outcome.acquired:
        while not (folder / "done").exists():
            time.sleep(0.01)
        lock.release(_owner())


def hold(url: str) -> None:
    lock = _engine(url).migration_lock()
    while not lock.try_acquire(_owner(), 60.0).acquired:
        time.sleep(0.05)
    print("acquired", flush=True)
    while True:
        time.sleep(60)


def restore(url: str, file: Path) -> None:
    engine = _engine(url)
    with file.open("rb") as dump:
        result = engine.restore(dump)
    print(json.dumps({"tables": [c.name for c in result.collections]}), flush=True)


def restore_pause(url: str, file: Path, where: str) -> None:
    def pause() -> None:
        print("paused", flush=True)
        while True:
            time.sleep(60)

    if where == "in-swap":
        apply = dbprops.apply

        def apply_then_pause(*args: object) -> None:
            apply(*args)  # type: ignore[arg-type]
            pause()

        dbprops.apply = apply_then_pause  # type: ignore[assignment]
    else:
        drop = module.drop_database

        def drop_or_pause(admin: object, name: str) -> None:
            if "__monarch_old_" in name:
                pause()
            drop(admin, name)  # type: ignore[arg-type]

        module.drop_database = drop_or_pause  # type: ignore[assignment]
    restore(url, file)


def write(url: str, seconds: float) -> None:
    path = url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    deadline = time.monotonic() + seconds
    count = 0
    print("writing", flush=True)
    while time.monotonic() < deadline:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE accounts SET amount = amount - 1 WHERE id = ?", (count % 10,))
        conn.execute("UPDATE accounts SET amount = amount + 1 WHERE id = ?", ((count + 1) % 10,))
        conn.execute("INSERT INTO log (n) VALUES (?)", (count,))
        conn.execute("COMMIT")
        count += 1
        # A busy application, not a saturating one: in rollback-journal mode a reader needs
        # moments between commits (SQLite lets a writer that never pauses starve readers).
        time.sleep(0.002)
    print(json.dumps({"transactions": count}), flush=True)


def main(argv: list[str]) -> None:
    command, url, *rest = argv
    if command == "race":
        race(url, Path(rest[0]))
    elif command == "hold":
        hold(url)
    elif command == "restore":
        restore(url, Path(rest[0]))
    elif command == "restore-pause":
        restore_pause(url, Path(rest[0]), rest[1])
    elif command == "write":
        write(url, float(rest[0]))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])

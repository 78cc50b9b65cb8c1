"""Restore drills (``monarch verify NAME --restore``) on real servers: MongoDB (FerretDB),
PostgreSQL and SQLite.

A small shop (users, and orders that each name their user) is backed up from ``production``
(protected) and drilled into a scratch database on ``staging``'s server; the project's
``checks/orders.py`` holds every order to its user. After every drill, passed or failed, the
scratch database must be gone.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pymongo import MongoClient

import monarch
from monarch.backups.records import read_verify
from monarch.backups.scratch import is_scratch
from monarch.config import Config, load_config
from monarch.errors import ChecksError, UsageError
from monarch.stores import open_store
from tests.backups.conftest import LISTED_DAY, CliResult, environ, run_cli
from tests.backups.encryption_support import encrypt_to, make_key
from tests.backups.sql_support import flip_byte
from tests.servers import MongoServer, PostgresServer

SCRATCH = ("monarch_scratch_", "monarch_kept_")

MONGO_CHECK = '''
def check_every_order_has_a_user(db):
    users = set(db.users.distinct("_id"))
    orphans = [o["_id"] for o in db.orders.find({}, {"user": 1}) if o["user"] not in users]
    assert not orphans, f"{len(orphans)} order(s) without their user, e.g. order {orphans[0]}"


def check_there_are_users(db):
    assert db.users.count_documents({}) > 0
'''

SQL_CHECK = '''
def check_every_order_has_a_user(conn):
    (orphans,) = conn.execute(
        "SELECT count(*) FROM orders o LEFT JOIN users u ON u.id = o.user_id "
        "WHERE u.id IS NULL").fetchone()
    assert orphans == 0, f"{orphans} order(s) without their user"


def check_there_are_users(conn):
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] > 0
'''


@dataclass
class Shop:
    """A project whose ``production`` (protected) holds a shop; ``staging`` is on the same
    server. ``scratches()`` lists the scratch databases on that server (SQLite: its folder)."""

    root: Path
    engine: str
    seed: Callable[[bool], None]
    """Fill production: 40 users, 120 orders (one of them without its user, if asked)."""
    scratches: Callable[[], set[str]]

    @property
    def config_path(self) -> Path:
        return self.root / "monarch.toml"

    def config(self) -> Config:
        return load_config(self.config_path)

    def cli(self, *args: str) -> CliResult:
        return run_cli(self.config_path, *args)

    def archive(self, name: str) -> Path:
        (path,) = (self.root / "backups").glob(f"{name}.archive*")
        return path


def _write(root: Path, urls: dict[str, str], check: str) -> None:
    lines = ["[backups]", f'url = "file://{root / "backups"}"']
    for env, url in urls.items():
        lines += ["", f"[environments.{env}]", f'url = "{url}"']
        if env == "production":
            lines.append("protected = true")
    (root / "monarch.toml").write_text("\n".join(lines) + "\n")
    (root / "checks").mkdir()
    (root / "checks" / "orders.py").write_text(check)


def _mongo(root: Path, server: MongoServer) -> Iterator[Shop]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = server.database_url(name)
    _write(root, {"production": url, "staging": url}, MONGO_CHECK)
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=5000)

    def seed(orphan: bool) -> None:
        db = client[name]
        db.users.insert_many({"_id": i, "email": f"u{i}@example.com"} for i in range(40))
        db.orders.insert_many({"_id": i, "user": 999 if orphan and i == 7 else i % 40,
                               "total": i * 1.5} for i in range(120))

    def scratches() -> set[str]:
        return {n for n in client.list_database_names() if n.startswith(SCRATCH)}

    try:
        yield Shop(root, "mongo", seed, scratches)
    finally:
        client.close()
        server.drop_database(name)


def _postgres(root: Path, server: PostgresServer) -> Iterator[Shop]:
    names = {env: f"t_{uuid.uuid4().hex[:12]}" for env in ("production", "staging")}
    urls = {env: server.create_database(db) for env, db in names.items()}
    _write(root, urls, SQL_CHECK)

    def seed(orphan: bool) -> None:
        with psycopg.connect(urls["production"], autocommit=True) as conn:
            _fill(conn, orphan)

    def scratches() -> set[str]:
        with psycopg.connect(urls["staging"], autocommit=True) as conn:
            rows = conn.execute("SELECT datname FROM pg_database").fetchall()
        return {str(r[0]) for r in rows if str(r[0]).startswith(SCRATCH)}

    try:
        yield Shop(root, "postgres", seed, scratches)
    finally:
        for db in names.values():
            server.drop_database(db)


def _sqlite(root: Path) -> Iterator[Shop]:
    _write(root, {"production": "sqlite:///prod.db", "staging": "sqlite:///staging.db"},
           SQL_CHECK)

    def seed(orphan: bool) -> None:
        conn = sqlite3.connect(root / "prod.db")
        with conn:
            _fill(conn, orphan)
        conn.close()

    def scratches() -> set[str]:
        return {p.name for p in root.iterdir() if p.name.startswith(SCRATCH)}

    yield Shop(root, "sqlite", seed, scratches)


def _fill(conn: Any, orphan: bool) -> None:
    """The shop in SQL (psycopg and sqlite3 connections both take this)."""
    conn.execute("CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL)")
    conn.execute("CREATE TABLE orders (id integer PRIMARY KEY, user_id integer, total real)")
    for i in range(40):
        conn.execute(f"INSERT INTO users VALUES ({i}, 'u{i}@example.com')")
    for i in range(120):
        user = 999 if orphan and i == 7 else i % 40
        conn.execute(f"INSERT INTO orders VALUES ({i}, {user}, {i * 1.5})")


def backed_up_lite(root: Path, *, orphan: bool = False) -> tuple[Shop, str]:
    """The SQLite shop, seeded, and the name of a backup of its production."""
    shop = next(_sqlite(root))
    shop.seed(orphan)
    return shop, monarch.backup(shop.config(), "production").name


def rewrite_orders_entry(path: Path, field: str, value: object, *, within: str = "") -> None:
    """Set ``field`` of the ``orders`` entry of the JSON file ``path``'s ``collections``
    (those of its object ``within``, when given)."""
    doc = json.loads(path.read_text())
    for entry in (doc[within] if within else doc)["collections"]:
        if entry["name"] == "orders":
            entry[field] = value
    path.write_text(json.dumps(doc))


@pytest.fixture(params=["mongo", "postgres", "sqlite"])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    if request.param == "mongo":
        yield from _mongo(tmp_path, request.getfixturevalue("mongo_server"))
    elif request.param == "postgres":
        yield from _postgres(tmp_path, request.getfixturevalue("postgres_server"))
    else:
        yield from _sqlite(tmp_path)


def test_a_drill_of_a_sound_backup_passes_is_recorded_and_leaves_no_scratch(shop: Shop) -> None:
    shop.seed(False)
    config = shop.config()
    name = monarch.backup(config, "production").name

    done = shop.cli("verify", name, "--restore", "--into", "staging", "--json")
    assert done.code == 0, done.output
    result = json.loads(done.stdout)
    assert result["ok"] is True and result["problems"] == []
    assert [c["name"] for c in result["checks"]] == [
        "orders.py::check_every_order_has_a_user", "orders.py::check_there_are_users"]
    assert all(c["ok"] for c in result["checks"])
    counts = {c["name"].removeprefix("public."): c["count"] for c in result["collections"]}
    assert counts == {"users": 40, "orders": 120}
    assert shop.scratches() == set()

    record = read_verify(open_store(config.backups), name)
    assert record is not None and record.ok and record.drill is not None
    assert record.drill.ok and record.drill.into == "staging"
    (listed,) = json.loads(shop.cli("list_backups", "--json").stdout)
    assert listed["drilled"] is True and listed["last_drill"]["ok"] is True
    healthy = shop.cli("check_backups", "production")
    assert healthy.code == 0 and ", verified and drilled)" in healthy.stdout


def test_list_backups_shows_when_each_backup_was_verified_and_drilled(tmp_path: Path) -> None:
    shop = next(_sqlite(tmp_path))
    shop.seed(False)
    config = shop.config()
    drilled = monarch.backup(config, "production").name
    verified = monarch.backup(config, "production", label="verified").name
    never = monarch.backup(config, "production", label="never").name
    before = shop.cli("list_backups")
    assert before.stdout.splitlines()[0].split()[-3:] == ["COMPRESSION", "VERIFIED", "DRILLED"]
    assert before.stderr == ""
    assert all(line.split()[-2:] == ["never", "never"]
               for line in before.stdout.splitlines()[2:])

    assert monarch.drill(config, drilled, into="staging").ok
    assert monarch.verify(config, verified).ok
    text = shop.cli("list_backups")
    assert text.stderr == ""
    header, _rule, *rows = text.stdout.splitlines()
    assert header.split()[-3:] == ["COMPRESSION", "VERIFIED", "DRILLED"]
    row = {line.split()[0]: line.rstrip() for line in rows}
    when = LISTED_DAY
    assert re.search(rf" ok {when} +ok {when}$", row[drilled])
    assert re.search(rf" ok {when} +never$", row[verified])
    assert re.search(r" never +never$", row[never])

    listed = {b["name"]: b for b in json.loads(shop.cli("list_backups", "--json").stdout)}
    assert listed[drilled]["drilled"] is True and listed[drilled]["last_drill"]["ok"] is True
    assert listed[drilled]["last_drill"]["into"] == "staging"
    assert listed[verified]["last_verify"]["ok"] is True
    assert listed[verified]["drilled"] is False and listed[verified]["last_drill"] is None
    assert listed[never]["last_verify"] is None and listed[never]["drilled"] is False


def test_list_backups_shows_a_failed_drill_as_failed_after_a_passing_verify(
    tmp_path: Path,
) -> None:
    shop, name = backed_up_lite(tmp_path, orphan=True)
    config = shop.config()
    assert not monarch.drill(config, name, into="staging").ok

    failed = shop.cli("list_backups")
    assert monarch.verify(config, name).ok  # the archive is sound; its data is not
    later = shop.cli("list_backups")

    day = LISTED_DAY
    assert failed.code == 0 and failed.stderr == ""
    assert re.search(rf"  FAILED {day}  FAILED {day}$", failed.stdout.splitlines()[2])
    assert re.search(rf"  ok {day} +FAILED {day}$", later.stdout.splitlines()[2])

def test_a_drill_catches_bytes_changed_in_the_store(shop: Shop) -> None:
    shop.seed(False)
    config = shop.config()
    name = monarch.backup(config, "production").name
    flip_byte(shop.archive(name))

    done = shop.cli("verify", name, "--restore", "--into", "staging")
    assert done.code == 1, done.output
    assert done.stdout.startswith(f"FAILED {name}: restore drill on staging: 1 problem(s)")
    assert "the restore failed: " in done.stdout
    assert "was removed" in done.stdout
    assert shop.scratches() == set()
    record = read_verify(open_store(config.backups), name)
    assert record is not None and not record.ok
    assert record.drill is not None and not record.drill.ok
    report = monarch.check_backups(config, "production")
    assert not report.ok and "the restore failed" in report.failing[0].reason()


def test_a_drill_catches_an_order_without_its_user(shop: Shop) -> None:
    shop.seed(True)
    config = shop.config()
    name = monarch.backup(config, "production").name

    done = shop.cli("verify", name, "--restore", "--into", "staging")
    assert done.code == 1, done.output
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"FAILED {name}: restore drill on staging: 1 problem(s)")
    assert lines[1] == ("  - check orders.py::check_every_order_has_a_user failed: "
                        "AssertionError: 1 order(s) without their user"
                        + (", e.g. order 7" if shop.engine == "mongo" else "")
                        + f" (orders.py, line {5 if shop.engine == 'mongo' else 6})")
    assert shop.scratches() == set()
    listed = {b["name"]: b for b in json.loads(shop.cli("list_backups", "--json").stdout)}
    drill = listed[name]["last_drill"]
    assert drill["ok"] is False
    assert [c["ok"] for c in drill["checks"]] == [False, True]
    assert re.search(rf" FAILED {LISTED_DAY} ", shop.cli("list_backups").stdout)


@pytest.mark.parametrize(("text", "said"), [
    ("def check_x(db):\n    return (\n", "orders.py, line 2: syntax error"),
    ("import no_such_module_here\n", "orders.py, line 1: the file failed to load: "
                                      "ModuleNotFoundError: No module named"),
    ("def helper(db):\n    pass\n", "orders.py defines no check: no function whose name "
                                    "starts with 'check_'"),
    ("def check_users():\n    pass\n", "orders.py, line 1: check_users() must take one "
                                       "argument, the restored database"),
])
def test_a_checks_file_that_does_not_load_stops_the_drill_before_anything_is_restored(
    tmp_path: Path, text: str, said: str,
) -> None:
    shop, name = backed_up_lite(tmp_path)
    config = shop.config()
    (shop.root / "checks" / "orders.py").write_text(text)

    done = shop.cli("verify", name, "--restore", "--into", "staging")
    assert done.code == 2, done.output
    assert done.stdout == ""
    assert done.stderr.startswith(f"Error: {shop.root / 'checks' / said}")
    assert "nothing was restored" in done.stderr and "Try: " in done.stderr
    assert shop.scratches() == set()
    assert read_verify(open_store(config.backups), name) is None
    with pytest.raises(ChecksError):
        monarch.drill(config, name, into="staging")


def test_a_drill_never_writes_to_a_protected_server_unless_told_to(tmp_path: Path) -> None:
    shop, name = backed_up_lite(tmp_path)

    refused = shop.cli("verify", name, "--restore")
    assert refused.code == 2
    assert refused.stderr.splitlines() == [
        f"Error: a restore drill of {name} needs a server to restore it on: production is "
        "protected (set in config), and a drill never writes to a protected server unless "
        "told to",
        f"Try: name one: `monarch verify {name} --restore --into staging`, or set "
        'drill_into = "staging" under [environments.production]',
    ]
    assert shop.scratches() == set()
    text = shop.config_path.read_text().replace(
        "protected = true", 'protected = true\ndrill_into = "staging"')
    shop.config_path.write_text(text)
    done = monarch.drill(shop.config(), name)
    assert done.ok and done.into == "staging"
    assert (shop.root / "prod.db").exists() and shop.scratches() == set()


def test_a_drill_holds_the_restored_counts_to_the_manifest(tmp_path: Path) -> None:
    shop, name = backed_up_lite(tmp_path)
    rewrite_orders_entry(shop.root / "backups" / f"{name}.manifest.json", "documents", 121)

    result = monarch.drill(shop.config(), name, into="staging")
    assert result.problems == ("table orders: 120 restored, the manifest records 121",)
    assert shop.scratches() == set()


def test_a_verify_after_a_drill_keeps_the_drill_on_record(tmp_path: Path) -> None:
    shop, name = backed_up_lite(tmp_path)
    config = shop.config()
    drilled = monarch.drill(config, name, into="staging")
    assert monarch.verify(config, name).ok
    record = read_verify(open_store(config.backups), name)
    assert record is not None and record.drill is not None
    assert record.drill.drilled_at < record.verified_at
    assert [c.name for c in record.drill.checks] == [c.name for c in drilled.checks]


def test_a_drill_into_an_environment_of_another_engine_is_refused(tmp_path: Path) -> None:
    shop, name = backed_up_lite(tmp_path)
    text = shop.config_path.read_text() + (
        '\n[environments.mongo_staging]\nurl = "mongodb://127.0.0.1:9/x"\n')
    shop.config_path.write_text(text)
    config = shop.config()
    with pytest.raises(UsageError, match="is a SQLite backup, and --into mongo_staging names a "
                                         "MongoDB environment"):
        monarch.drill(config, name, into="mongo_staging")
    refused = shop.cli("verify", name, "--into", "staging")
    assert refused.code == 2
    assert "Error: --into is an option of a restore drill; it needs --restore" in refused.stderr


def test_a_drill_holds_the_restored_content_to_the_backups_last_drill(tmp_path: Path) -> None:
    shop, name = backed_up_lite(tmp_path)
    config = shop.config()
    first = monarch.drill(config, name, into="staging")
    assert first.ok and all(len(c.digest) == 64 for c in first.collections)
    again = monarch.drill(config, name, into="staging")
    assert again.ok and again.collections == first.collections
    assert any(what.startswith("content digests against the drill of ")
               for what in again.compared)

    # The record of the earlier drill says orders held something else.
    rewrite_orders_entry(shop.root / "backups" / f"{name}.verified.json", "digest", "0" * 64,
                         within="drill")
    changed = monarch.drill(config, name, into="staging")
    (problem,) = changed.problems
    assert problem.startswith("the content of orders differs from what the drill of ")
    assert shop.scratches() == set()


def test_a_kept_scratch_database_stays_for_inspection(tmp_path: Path) -> None:
    shop, name = backed_up_lite(tmp_path, orphan=True)
    done = shop.cli("verify", name, "--restore", "--into", "staging", "--keep", "--json")
    assert done.code == 1
    result = json.loads(done.stdout)
    assert result["kept"] is True and result["scratch"].startswith("monarch_kept_")
    kept = sqlite3.connect(shop.root / result["scratch"])
    try:
        assert kept.execute("SELECT user_id FROM orders WHERE id = 7").fetchone() == (999,)
    finally:
        kept.close()


def databases(shop: Shop) -> set[str]:
    """The scratch databases themselves (not a SQLite file's sidecars)."""
    return {name for name in shop.scratches() if is_scratch(name)}


WAITING_CHECK = '''
import os, pathlib, time


def check_waits_to_be_stopped(conn):
    pathlib.Path(os.environ["DRILL_MARK"]).write_text("in the check")
    time.sleep(60)
'''


def test_a_drill_stopped_by_sigterm_or_killed_leaves_no_scratch_behind(tmp_path: Path) -> None:
    shop, name = backed_up_lite(tmp_path)
    (shop.root / "checks" / "orders.py").write_text(WAITING_CHECK)

    # Two drills at once, each stopped inside its check: one by SIGTERM, one by SIGKILL.
    children = {}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        mark = shop.root / f"mark-{sig.name}"
        children[sig] = (mark, subprocess.Popen(
            [sys.executable, "-m", "monarch", "--config", str(shop.config_path), "verify", name,
             "--restore", "--into", "staging"],
            cwd=shop.root, env={**environ(), "DRILL_MARK": str(mark)},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        deadline = time.monotonic() + 30
        while not all(mark.exists() for mark, _ in children.values()) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(mark.exists() for mark, _ in children.values()), "a drill never got there"
        assert len(databases(shop)) == 2  # restored, being checked
        for sig, (_, child) in children.items():
            child.send_signal(sig)
        codes = {sig: child.wait(timeout=20) for sig, (_, child) in children.items()}
    finally:
        for _, child in children.values():
            if child.poll() is None:
                child.kill()
                child.wait()
    assert codes == {signal.SIGTERM: 128 + signal.SIGTERM, signal.SIGKILL: -signal.SIGKILL}
    assert len(databases(shop)) == 1  # the killed one's: nothing ran to remove it

    (shop.root / "checks" / "orders.py").write_text(SQL_CHECK)
    assert monarch.drill(shop.config(), name, into="staging").ok
    assert shop.scratches() == set()
    record = read_verify(open_store(shop.config().backups), name)
    assert record is not None and record.drill is not None and record.drill.ok


def test_an_encrypted_backups_drill_record_keeps_what_it_seals_out_of_the_clear(
    tmp_path: Path,
) -> None:
    shop = next(_sqlite(tmp_path))
    shop.seed(True)
    key = make_key(tmp_path)
    encrypt_to(shop.config_path, key.recipient)
    config = shop.config()
    name = monarch.backup(config, "production").name

    result = monarch.drill(config, name, into="staging", identity=key.path)
    assert not result.ok and "1 order(s) without their user" in result.problems[0]
    text = (shop.root / "backups" / f"{name}.verified.json").read_text()
    assert "orders" not in text.replace("orders.py", "") and "without" not in text
    record = read_verify(open_store(config.backups), name)
    assert record is not None and record.drill is not None and not record.drill.ok
    assert record.drill.collections == ()
    assert [c.ok for c in record.drill.checks] == [False, True]
    assert record.problems == (f"1 problem(s); the backup is encrypted, so they are not "
                               f"written here: run `monarch verify {name} --restore` with its "
                               "identity",)
    assert shop.scratches() == set()


def test_a_backup_of_monarch_0_0_x_has_no_manifest_to_drill_against(tmp_path: Path) -> None:
    shop = next(_sqlite(tmp_path))
    refused = shop.cli("verify", "shop__2016_11_01", "--restore", "--into", "staging")
    assert refused.code == 2
    assert refused.stderr.splitlines() == [
        "Error: 'shop__2016_11_01' is a backup of monarch 0.0.x: it has no manifest to hold a "
        "restore drill to",
        "Try: check it with `monarch verify shop__2016_11_01`",
    ]

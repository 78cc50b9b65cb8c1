"""Backups of PostgreSQL and SQLite environments: the same commands, stores, manifest and
guarantees as for MongoDB, with the engine's own dump as an opaque, checksummed archive."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import monarch
from monarch.engines import engine_for
from monarch.errors import ConfirmationRequired, MonarchError, UsageError
from tests.backups.conftest import environ
from tests.backups.sql_support import (  # noqa: F401 - fixtures
    SQLProject,
    bulk_fill,
    flip_byte,
    local_project_fixture,
    sql_project_fixture,
)
from tests.engines.pg_helpers import contents, fill_old, fill_rich, schema_dump
from tests.engines.sqlite_helpers import contents as lite_contents
from tests.engines.sqlite_helpers import fill as lite_fill
from tests.engines.sqlite_helpers import fill_other as lite_fill_other


def same_schema(p: SQLProject, a: str, b: str) -> bool:
    return schema_dump(p.bin_dir, p.urls[a]) == schema_dump(p.bin_dir, p.urls[b])


def test_pg_backup_then_restore_gives_the_target_exactly_the_source(
    sql_project: SQLProject,
) -> None:
    p = sql_project
    fill_rich(p.urls["development"])
    fill_old(p.urls["staging"])

    made = monarch.backup(p.config(), "development")
    listed = monarch.list_backups(p.config(), "development")
    result = monarch.restore(p.config(), made.name, "staging")

    assert [b.name for b in listed] == [made.name]
    archive = made.manifest.archive
    assert archive.format == "pg_dump-custom" and archive.compression == "gzip"
    assert len(archive.sha256) == 64 and archive.size > 0 and archive.uncompressed_size > 0
    assert made.manifest.engine == "postgres" and made.manifest.tool_version.startswith("pg_dump")
    assert {c.name for c in made.manifest.collections} >= {"shop.customers", "shop.orders"}
    assert "legacy.things" in result.dropped
    assert contents(p.urls["staging"]) == contents(p.urls["development"])
    assert same_schema(p, "staging", "development")
    assert monarch.verify(p.config(), made.name).ok


def test_pg_manifest_holds_no_secret(sql_project: SQLProject) -> None:
    p = sql_project
    fill_rich(p.urls["development"], customers=5)
    made = monarch.backup(p.config(), "development", compression="zstd")

    text = made.manifest.to_json()
    assert "password" not in text.lower() and "postgresql://" not in text
    assert made.archive_key.endswith(".archive.zst")


def test_sqlite_backup_then_restore_replaces_the_file_exactly(sql_project: SQLProject) -> None:
    p = sql_project
    lite_fill(p.lite(), rows=200, wal=True)
    lite_fill_other(p.lite("lite_copy"))

    made = monarch.backup(p.config(), "lite")
    result = monarch.restore(p.config(), made.name, "lite_copy")

    assert made.manifest.archive.format == "sqlite3-database"
    customers = made.manifest.collection("customers")
    assert customers is not None and customers.documents == 200
    assert result.dropped == ("legacy",)
    assert lite_contents(p.lite("lite_copy")) == lite_contents(p.lite())
    assert monarch.verify(p.config(), made.name).ok


def test_pg_restore_of_a_corrupted_archive_fails_before_the_swap(
    local_project: SQLProject,
) -> None:
    p = local_project
    fill_rich(p.urls["development"])
    fill_old(p.urls["staging"])
    before = contents(p.urls["staging"])
    made = monarch.backup(p.config(), "development", compression="none")
    flip_byte(p.archive_path(made.name), 0.9)

    with pytest.raises(MonarchError):
        monarch.restore(p.config(), made.name, "staging")

    assert contents(p.urls["staging"]) == before
    assert not monarch.verify(p.config(), made.name).ok


def test_gzip_corruption_of_a_sqlite_backup_is_refused_and_reported(
    local_project: SQLProject,
) -> None:
    p = local_project
    lite_fill(p.lite())
    lite_fill_other(p.lite("lite_copy"))
    before = lite_contents(p.lite("lite_copy"))
    made = monarch.backup(p.config(), "lite")
    flip_byte(p.archive_path(made.name), 0.5)

    with pytest.raises(MonarchError):
        monarch.restore(p.config(), made.name, "lite_copy")
    checked = monarch.verify(p.config(), made.name)

    assert lite_contents(p.lite("lite_copy")) == before
    assert not checked.ok and any("SHA-256" in problem for problem in checked.problems)


def test_backups_restore_only_into_their_own_engine(local_project: SQLProject) -> None:
    p = local_project
    fill_rich(p.urls["development"], customers=5)
    lite_fill(p.lite(), rows=5)
    pg_backup = monarch.backup(p.config(), "development")
    lite_backup = monarch.backup(p.config(), "lite")
    before = contents(p.urls["staging"])

    with pytest.raises(UsageError, match="nothing was touched"):
        monarch.restore(p.config(), lite_backup.name, "staging")
    with pytest.raises(UsageError, match="nothing was touched"):
        monarch.restore(p.config(), pg_backup.name, "lite_copy")
    with pytest.raises(UsageError, match="between engines"):
        monarch.copy_db(p.config(), "lite", "staging")

    assert contents(p.urls["staging"]) == before
    assert not p.lite("lite_copy").exists()


def test_pg_copy_db_makes_the_target_an_exact_copy(local_project: SQLProject) -> None:
    p = local_project
    fill_rich(p.urls["development"])
    fill_old(p.urls["staging"])

    result = monarch.copy_db(p.config(), "development", "staging")

    assert result.backup is None and "legacy.things" in result.dropped
    assert contents(p.urls["staging"]) == contents(p.urls["development"])
    assert same_schema(p, "staging", "development")
    assert monarch.list_backups(p.config()) == []
    (entry,) = monarch.list_history(p.config(), "staging").entries
    assert entry.summary == "copied environment development into it (5 tables)"


def test_copy_db_keep_backup_also_stores_a_listed_backup(sql_project: SQLProject) -> None:
    p = sql_project
    lite_fill(p.lite(), rows=30)

    result = monarch.copy_db(p.config(), "lite", "lite_copy", keep_backup=True)

    assert result.backup is not None
    assert [b.name for b in monarch.list_backups(p.config(), "lite")] == [result.backup.name]
    assert lite_contents(p.lite("lite_copy")) == lite_contents(p.lite())


def test_the_same_database_under_two_names_is_never_copied(
    local_project: SQLProject, tmp_path: Path
) -> None:
    p = local_project
    fill_rich(p.urls["development"], customers=5)
    lite_fill(p.lite(), rows=5)
    (tmp_path / "link.db").symlink_to(p.lite())
    cfg = p.config_path
    cfg.write_text(cfg.read_text() + '\n[environments.link]\nurl = "sqlite:///link.db"\n')
    before = lite_contents(p.lite())
    dev = engine_for(p.config().environment("development"))
    twin = engine_for(p.config().environment("twin"))
    staging = engine_for(p.config().environment("staging"))
    try:
        assert dev.same_database(twin) and not dev.same_database(staging)
    finally:
        for engine in (dev, twin, staging):
            engine.close()

    with pytest.raises(UsageError, match="same database"):
        monarch.copy_db(p.config(), "development", "twin")
    with pytest.raises(UsageError, match="same database"):
        monarch.copy_db(p.config(), "lite", "link")

    assert lite_contents(p.lite()) == before


def test_query_sets_are_refused_for_sql_engines(local_project: SQLProject) -> None:
    p = local_project
    lite_fill(p.lite(), rows=5)
    (p.root / "querysets").mkdir()
    (p.root / "querysets" / "small.py").write_text("QUERIES = {}\n")

    with pytest.raises(MonarchError, match="query set"):
        monarch.backup(p.config(), "lite", query_set="small")
    with pytest.raises(MonarchError, match="query set"):
        monarch.copy_db(p.config(), "lite", "lite_copy", query_set="small")

    assert monarch.list_backups(p.config()) == []


def test_a_protected_target_needs_its_name(local_project: SQLProject) -> None:
    p = local_project
    fill_rich(p.urls["development"], customers=5)
    made = monarch.backup(p.config(), "development")

    with pytest.raises(ConfirmationRequired):
        monarch.restore(p.config(), made.name, "production")
    monarch.restore(p.config(), made.name, "production", confirm="production")

    assert contents(p.urls["production"]) == contents(p.urls["development"])


def test_prune_and_delete_backup_remove_sql_backups(local_project: SQLProject) -> None:
    p = local_project
    lite_fill(p.lite(), rows=5)
    first = monarch.backup(p.config(), "lite", label="one")
    second = monarch.backup(p.config(), "lite", label="two")

    pruned = monarch.prune(p.config(), keep_last=1)
    monarch.delete_backup(p.config(), second.name)

    assert [b.name for b in pruned.removed] == [first.name]
    assert monarch.list_backups(p.config()) == []
    assert [o.key for o in p.store().list()] == []


def test_migrate_with_backup_first_backs_up_a_sqlite_environment(
    local_project: SQLProject,
) -> None:
    p = local_project
    lite_fill(p.lite(), rows=5)
    (p.root / "migrations").mkdir()
    (p.root / "migrations" / "20240101000001_first.sql").write_text("CREATE TABLE t (x int);\n")

    monarch.migrate(p.config(), "lite", backup=True)

    (made,) = monarch.list_backups(p.config(), "lite")
    assert made.label == "pre-migrate" and made.manifest.collection("t") is None


def test_cli_backs_up_lists_verifies_and_restores_postgres(local_project: SQLProject) -> None:
    p = local_project
    fill_rich(p.urls["development"])
    fill_old(p.urls["staging"])

    made = p.process("backup", "development", "-q")
    listed = p.process("list_backups", "--json")
    name = made.stdout.strip()
    verified = p.process("verify", name)
    restored = p.process("restore", f"{name}:staging")
    refused = p.process("restore", f"{name}:lite")

    assert made.code == 0, made.output
    assert [b["name"] for b in json.loads(listed.stdout)] == [name]
    assert verified.code == 0 and verified.stdout.startswith("OK"), verified.output
    assert restored.code == 0 and "legacy.things" in restored.stdout, restored.output
    assert refused.code != 0 and "Error:" in refused.stderr
    assert contents(p.urls["staging"]) == contents(p.urls["development"])


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
def test_sigkill_during_backup_never_leaves_a_listed_backup(
    local_project: SQLProject, delay: float
) -> None:
    p = local_project
    bulk_fill(p.urls["development"], 300_000)
    child = subprocess.Popen(
        [sys.executable, "-m", "monarch", "--config", str(p.config_path), "backup",
         "development", "-q"],
        cwd=p.root, env=environ(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(delay)
    os.killpg(child.pid, signal.SIGKILL)  # monarch and its pg_dump
    out, _ = child.communicate(timeout=30)

    listed = monarch.list_backups(p.config())
    if child.returncode == 0:  # finished before the kill: then it must be whole
        assert [b.name for b in listed] == [out.decode().strip()]
        assert monarch.verify(p.config(), listed[0].name).ok
    else:
        assert listed == []


def test_a_sqlite_backup_is_consistent_while_the_application_writes(
    local_project: SQLProject,
) -> None:
    p = local_project
    conn = sqlite3.connect(p.lite(), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE pairs (a INTEGER, b INTEGER)")
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\n"
         "for i in range(100000):\n"
         "    c.execute('BEGIN'); c.execute('INSERT INTO pairs VALUES (?, 0)', (i,))\n"
         "    c.execute('INSERT INTO pairs VALUES (?, 1)', (i,)); c.execute('COMMIT')\n",
         str(p.lite())],
    )
    try:
        time.sleep(0.3)
        made = monarch.backup(p.config(), "lite")
    finally:
        writer.kill()
        writer.wait()
        conn.close()
    monarch.restore(p.config(), made.name, "lite_copy")

    copy = sqlite3.connect(p.lite("lite_copy"))
    try:
        counts = copy.execute("SELECT count(*), sum(b) FROM pairs").fetchone()
    finally:
        copy.close()
    assert counts[0] > 0 and counts[0] == 2 * counts[1]  # every transaction whole


def test_sql_backups_speak_of_tables_and_rows_not_collections_and_documents(
    local_project: SQLProject,
) -> None:
    p = local_project
    lite_fill(p.lite(), rows=50)
    fill_rich(p.urls["development"], customers=5)
    lite = p.process("backup", "lite")
    pg = p.process("backup", "development")
    name = monarch.list_backups(p.config(), "development")[0].name

    listed = p.process("list_backups")
    checked = p.process("verify", name)
    restored = p.process("restore", f"{name}:staging")

    outputs = [lite, pg, listed, checked, restored]
    assert all(r.code == 0 for r in outputs), [r.stderr for r in outputs]
    for result in outputs:
        assert "collection" not in result.stdout + result.stderr
        assert "document" not in result.stdout + result.stderr
    assert "TABLES" in listed.stdout and "ROWS" in listed.stdout
    assert " tables, " in checked.stdout and " rows, " in checked.stdout

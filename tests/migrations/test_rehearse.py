"""``monarch rehearse`` on MongoDB: the pending migrations run on a throwaway copy, are rolled
back and compared, and run again; the environment itself never changes (its fingerprint is
compared before and after every test), and no scratch database is left behind, even by a run
killed with SIGKILL (the next one removes it)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monarch.api.rehearsal import rehearse
from monarch.backups.scratch import PREFIX
from monarch.config import load_config
from monarch.engines import engine_for
from monarch.engines.base import Fingerprint
from monarch.errors import ConfigError, UsageError
from tests.migrations.conftest import Project

USERS = """
self.db.users.update_many({"plan": {"$exists": False}}, {"$set": {"plan": "free"}})
"""
UNDO_USERS = 'self.db.users.update_many({}, {"$unset": {"plan": ""}})'
INDEX = 'self.db.users.create_index("email", unique=True, name="email_1")'
UNDO_INDEX = 'self.db.users.drop_index("email_1")'


def fingerprint(project: Project, env: str = "development") -> dict[str, Fingerprint]:
    engine = engine_for(project.config().environment(env))
    try:
        return engine.fingerprint()
    finally:
        engine.close()


_OTHERS: set[str] = set()  # what other tests of this worker left on the server


def scratches(project: Project) -> list[str]:
    """This test's scratch databases on the server."""
    return [n for n in project.db.client.list_database_names()
            if n.startswith(PREFIX) and n not in _OTHERS]


@pytest.fixture
def shop(project: Project) -> Iterator[Project]:
    """The project with 50 users, one migration applied already; the environment's fingerprint
    and history are checked unchanged, and the server free of scratch databases, afterwards."""
    project.db.users.insert_many([{"_id": i, "email": f"u{i}@example.com"} for i in range(50)])
    project.write("20260101000000_applied", 'self.db.settings.insert_one({"_id": "v", "n": 1})',
                  rollback='self.db.settings.delete_one({"_id": "v"})')
    assert project.cli("migrate", "development").code == 0
    before, history = fingerprint(project), project.records()
    _OTHERS.clear()
    _OTHERS.update(scratches(project))
    yield project
    assert fingerprint(project) == before
    assert project.records() == history
    assert scratches(project) == []


def test_a_clean_rehearsal_reports_each_migrations_writes_and_proves_the_rollback(
    shop: Project, tmp_path: Path,
) -> None:
    shop.write("20260201000000_add_plan", USERS, rollback=UNDO_USERS)
    shop.write("20260202000000_email_index", INDEX, rollback=UNDO_INDEX)
    report = tmp_path / "rehearsal.md"
    result = shop.cli("rehearse", "development", "--json", "--report", str(report))
    assert result.code == 0, result.output
    data = json.loads(result.stdout)
    assert data["exit_code"] == 0 and data["rollback"] == "restored" and data["again"] is True
    assert [s["name"] for s in data["steps"]] == ["20260201000000_add_plan",
                                                  "20260202000000_email_index"]
    plan, index = data["steps"]
    assert plan["migrate"]["state"] == "applied" and plan["migrate"]["seconds"] > 0
    assert plan["migrate"]["accounting"] == [{"target": "users", "matched": 50, "modified": 50}]
    assert index["migrate"]["accounting"] == [{"target": "users", "indexes_created": 1}]
    assert plan["rollback"]["accounting"] == [{"target": "users", "matched": 50,
                                               "modified": 50}]
    assert data["copied"] == {"settings": 1, "users": 50}
    text = report.read_text()
    assert "Rollback check: every migration rolled back" in text
    assert "| `20260201000000_add_plan` |" in text and "users: 50 matched, 50 modified" in text
    table = shop.cli("rehearse", "development")
    assert table.code == 0
    assert "users: 1 index created" in table.stdout
    assert "rolled back to exactly the data before, and ran again cleanly" in table.stdout


def test_a_failing_migration_exits_1_and_names_it(shop: Project) -> None:
    shop.write("20260201000000_add_plan", USERS, rollback=UNDO_USERS)
    shop.write("20260202000000_broken", 'raise ValueError("no such plan")')
    shop.write("20260203000000_later", USERS)
    result = shop.cli("rehearse", "development")
    assert result.code == 1, result.output
    assert "Migration 20260202000000_broken failed: ValueError: no such plan" in result.stderr
    assert "20260203000000_later" in result.stdout  # listed, not run


def test_a_rollback_that_does_not_restore_the_data_exits_4_naming_the_collection(
    shop: Project, tmp_path: Path,
) -> None:
    shop.write("20260201000000_add_plan", USERS, rollback=UNDO_USERS)
    shop.write("20260202000000_rename", 'self.db.users.update_one({"_id": 3}, '
               '{"$set": {"email": "three@example.com"}})', rollback="pass")
    report = tmp_path / "r.md"
    result = shop.cli("rehearse", "development", "--report", str(report))
    assert result.code == 4, result.output
    assert "The rollback did not restore the data: users differ(s)" in result.stderr
    assert "- users: 50 document(s) before and after, but their content" in report.read_text()


def test_a_protected_environment_needs_a_server_named_for_the_copy(shop: Project) -> None:
    refused = shop.cli("rehearse", "production")
    assert refused.code != 0
    assert "will not write on the server of 'production' unasked" in refused.stderr
    assert scratches(shop) == []
    shop.write("20260201000000_add_plan", USERS, rollback=UNDO_USERS)
    assert shop.cli("rehearse", "production", "--into", "development").code == 0


def test_a_rehearsal_from_the_latest_backup_does_not_read_the_environment(
    shop: Project,
) -> None:
    assert shop.cli("backup", "development").code == 0
    shop.db.users.insert_one({"_id": 999, "email": "late@example.com"})  # after the backup
    shop.write("20260201000000_add_plan", USERS, rollback=UNDO_USERS)
    result = shop.cli("rehearse", "development", "--from-backup", "latest", "--json")
    assert result.code == 0, result.output
    data = json.loads(result.stdout)
    assert data["source"].startswith("backup development-")
    assert data["copied"]["users"] == 50
    assert data["steps"][0]["migrate"]["accounting"][0]["matched"] == 50
    shop.db.users.delete_one({"_id": 999})


def test_the_progress_of_filling_the_copy_is_named_after_rehearse_not_copy_db(
    shop: Project,
) -> None:
    shop.write("20260201000000_add_plan", USERS, rollback=UNDO_USERS)
    copied = shop.cli("rehearse", "development")
    assert shop.cli("backup", "development", "-q").code == 0
    restored = shop.cli("rehearse", "development", "--from-backup", "latest")

    assert copied.code == 0 and restored.code == 0, copied.output + restored.output
    assert "rehearse: copying development: 3 collections (~52 documents)" in copied.stderr
    assert "rehearse: restoring development-" in restored.stderr
    for result in (copied, restored):
        assert "copy_db" not in result.stderr and "restore:" not in result.stderr


def test_a_rehearsal_killed_midway_leaves_a_scratch_database_the_next_one_removes(
    shop: Project, tmp_path: Path,
) -> None:
    marker = tmp_path / "running"
    shop.write("20260201000000_add_plan", USERS, rollback=UNDO_USERS)
    shop.write("20260202000000_slow", f"open({str(marker)!r}, 'w').close()\n"
               "import time; time.sleep(60)", rollback="pass")
    child = shop.spawn("--config", str(shop.config_path), "rehearse", "development",
                       env={"MONARCH_SCRATCH_LEASE": "60"})
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    left = scratches(shop)
    assert len(left) == 1
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert scratches(shop) == left  # a killed run cannot clean up
    (shop.migrations / "20260202000000_slow.py").unlink()
    started = time.monotonic()
    result = shop.cli("rehearse", "development", "--json")
    assert result.code == 0, result.output
    # It died on this machine: its scratch goes at once, without waiting for its 60 s lease.
    assert time.monotonic() - started < 30
    assert set(left) <= set(json.loads(result.stdout)["removed"])


def test_a_copy_through_a_query_set_keeps_the_environments_pending_migrations(
    shop: Project,
) -> None:
    (shop.root / "querysets").mkdir()
    (shop.root / "querysets" / "sample.py").write_text(
        'COLLECTIONS = {"users": {"filter": {"_id": {"$lt": 10}}}}\n'
        'EXCLUDE = ["monarch_migrations"]\n')
    shop.write("20260201000000_add_plan", USERS, rollback=UNDO_USERS)
    result = shop.cli("rehearse", "development", "--query-set", "sample", "--json")
    assert result.code == 0, result.output  # the applied migration is not run again
    data = json.loads(result.stdout)
    assert data["source"] == "environment development through query set sample"
    assert data["copied"] == {"settings": 1, "users": 10}
    assert [s["name"] for s in data["steps"]] == ["20260201000000_add_plan"]
    assert data["steps"][0]["migrate"]["accounting"][0]["modified"] == 10


def test_a_rollback_that_raises_exits_4_and_one_without_rollback_skips_the_check(
    shop: Project,
) -> None:
    shop.write("20260201000000_add_plan", USERS, rollback='raise RuntimeError("cannot undo")')
    failed = shop.cli("rehearse", "development", "--json")
    assert failed.code == 4, failed.output
    data = json.loads(failed.stdout)
    assert data["rollback"] == "failed" and "cannot undo" in data["rollback_error"]
    shop.write("20260201000000_add_plan", USERS)  # no rollback at all
    skipped = shop.cli("rehearse", "development")
    assert skipped.code == 0, skipped.output
    assert "the rollback was not rehearsed: 20260201000000_add_plan has (have) no rollback" in (
        skipped.stdout)


def test_a_remote_server_is_never_written_unasked_even_when_not_protected(
    tmp_path: Path,
) -> None:
    (tmp_path / "monarch.toml").write_text(
        '[environments.shared]\nurl = "mongodb://db.example.invalid:27017/app"\n'
        "protected = false\n"
        '[environments.other]\nurl = "sqlite:///other.db"\n'
        '[environments.typo]\nurl = "mongodb://localhost/app"\nrehearse_into = "stagign"\n')
    config = load_config(tmp_path / "monarch.toml")
    assert config.environment("shared").remote_host == "db.example.invalid:27017"
    assert config.environment("typo").rehearse_into == "stagign"
    with pytest.raises(UsageError, match=r"its host db\.example\.invalid:27017 is not local"):
        rehearse(config, "shared")
    with pytest.raises(UsageError, match="a rehearsal needs a server of the same kind"):
        rehearse(config, "shared", into="other")
    with pytest.raises(ConfigError, match="rehearse_into names 'stagign'"):
        rehearse(config, "typo")

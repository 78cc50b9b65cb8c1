"""``monarch restore``, ``monarch copy_db`` end to end: real entry point, database and store."""

from __future__ import annotations

import re
import subprocess
import sys

from monarch import backup
from tests.backups.conftest import environ
from tests.backups.restore_support import (  # noqa: F401 - fixtures
    TwoDbs,
    leftovers,
    run_cli,
    seed,
    snapshot,
    two_dbs_fixture,
)


def test_cli_restore_replaces_the_target_and_says_what_it_did(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    two_dbs.target.stale.insert_one({})
    name = backup(two_dbs.config(), "development").name

    result = run_cli(two_dbs, "restore", f"{name}:staging")

    assert result.code == 0, result.stderr
    assert result.stdout.startswith(f"Restored {name} into staging\n")
    assert "4 collections, 900 documents" in result.stdout
    assert "removed (not in the backup): stale" in result.stdout
    assert "restore: 4 collections" in result.stderr  # progress, on stderr when not a terminal
    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)


def test_cli_restore_into_a_protected_environment_without_confirm_fails_cleanly(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.source)
    seed(two_dbs.target, seed_value=4)
    before = snapshot(two_dbs.target)
    name = backup(two_dbs.config(), "development").name

    result = run_cli(two_dbs, "restore", f"{name}:production")

    assert result.code == 2
    assert "Error: environment 'production' is protected" in result.stderr
    assert "Try: " in result.stderr and "--confirm production" in result.stderr
    assert snapshot(two_dbs.target) == before

    confirmed = run_cli(two_dbs, "restore", f"{name}:production", "--confirm", "production",
                        "--quiet")
    assert confirmed.code == 0 and confirmed.stdout == ""
    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)


def test_cli_restore_of_a_corrupt_archive_prints_one_error_line_and_exits_1(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.target)
    before = snapshot(two_dbs.target)
    junk = two_dbs.root / "junk.archive"
    junk.write_bytes(b"\x1f\x8b" + b"not really gzip" * 20)

    result = run_cli(two_dbs, "restore", f"{junk}:staging")

    assert result.code == 1
    assert re.search(r"^Error: .*gzip", result.stderr, re.MULTILINE), result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(two_dbs.target) == before
    assert leftovers(two_dbs.target) == []


def test_cli_restore_of_an_unknown_backup_suggests_list_backups(two_dbs: TwoDbs) -> None:
    result = run_cli(two_dbs, "restore", "development-20200101T000000Z:staging")

    assert result.code == 1
    assert "Error: no backup 'development-20200101T000000Z'" in result.stderr
    assert "list_backups" in result.stderr


def test_cli_copy_db_with_keep_backup_copies_and_names_the_backup(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)

    result = run_cli(two_dbs, "copy_db", "development:staging", "--keep-backup")

    assert result.code == 0, result.stderr
    assert result.stdout.startswith("Copied development into staging\n")
    kept = re.search(r"kept backup: (development-\d{8}T\d{6}Z)", result.stdout)
    assert kept is not None
    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)
    listed = run_cli(two_dbs, "list_backups")
    assert kept[1] in listed.stdout


def test_cli_copy_db_refuses_the_same_environment_twice(two_dbs: TwoDbs) -> None:
    result = run_cli(two_dbs, "copy_db", "staging:staging")

    assert result.code == 2
    assert "Error: copy_db staging:staging: source and target are the same" in result.stderr


def test_cli_copy_db_refuses_one_database_under_two_names(two_dbs: TwoDbs) -> None:
    result = run_cli(two_dbs, "copy_db", "staging:production", "--confirm", "production")

    assert result.code == 2
    assert "same database" in result.stderr


def test_python_m_monarch_restore_runs_as_its_own_process(two_dbs: TwoDbs) -> None:
    seed(two_dbs.source)
    name = backup(two_dbs.config(), "development").name

    done = subprocess.run(
        [sys.executable, "-m", "monarch", "--config", str(two_dbs.config_path), "restore",
         f"{name}:staging"],
        cwd=two_dbs.root, env=environ(), capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL, check=False,
    )

    assert done.returncode == 0, done.stderr
    assert snapshot(two_dbs.target) == snapshot(two_dbs.source)


def test_cli_recover_with_nothing_interrupted_says_so_and_protected_needs_confirm(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.target)
    before = snapshot(two_dbs.target)

    result = run_cli(two_dbs, "recover", "staging")

    assert result.code == 0, result.stderr
    assert "nothing to do" in result.stdout
    assert snapshot(two_dbs.target) == before

    refused = run_cli(two_dbs, "recover", "production")
    assert refused.code == 2
    assert "--confirm production" in refused.stderr


def test_yes_is_taken_by_every_command_that_replaces_data_and_never_confirms_a_protected_one(
    two_dbs: TwoDbs,
) -> None:
    seed(two_dbs.source)
    name = backup(two_dbs.config(), "development").name

    allowed = [run_cli(two_dbs, *args) for args in (
        ("restore", "-y", f"{name}:staging"), ("copy_db", "--yes", "development:staging"),
        ("recover", "-y", "staging"))]
    before = snapshot(two_dbs.target)
    refused = [run_cli(two_dbs, *args) for args in (
        ("restore", "-y", f"{name}:production"), ("copy_db", "-y", "development:production"),
        ("recover", "--yes", "production"), ("drop_db", "-y", "production"),
        ("migrate", "-y", "production"))]
    after = snapshot(two_dbs.target)
    dropped = run_cli(two_dbs, "drop_db", "--yes", "staging")

    assert [r.code for r in allowed] == [0, 0, 0], [r.stderr for r in allowed]
    assert [r.code for r in refused] == [2] * 5, [r.stderr for r in refused]
    assert all("--confirm production" in r.stderr for r in refused)
    assert after == before  # production (the target database) was untouched
    assert dropped.code == 0, dropped.stderr

"""Backups started together never collide: each process claims its name with the store's
exclusive write, and the ones that lose a second take the next."""

from __future__ import annotations

import subprocess
import sys

from monarch import list_backups
from monarch.backups.naming import claim_key, parse_name
from monarch.backups.writer import claim_name, release_name
from tests.backups.conftest import Project, environ, seed_shop


def test_concurrent_backup_processes_all_succeed_with_distinct_names(
    any_project: Project,
) -> None:
    seed_shop(any_project.db, users=50, orders=50)
    command = [sys.executable, "-m", "monarch", "--config", str(any_project.config_path),
               "backup", "development"]
    processes = [
        subprocess.Popen(command, cwd=any_project.root, env=environ(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        for _ in range(4)
    ]
    outcomes = [(p.wait(timeout=180), *p.communicate()) for p in processes]

    assert [code for code, _, _ in outcomes] == [0] * 4, [err for _, _, err in outcomes]
    names = [b.name for b in list_backups(any_project.config(), "development")]
    assert len(names) == 4 and len(set(names)) == 4
    stamps = {parse_name(n).created for n in names}  # type: ignore[union-attr]
    assert len(stamps) == 4  # one second each: the names keep their documented shape
    assert not [k for k in any_project.store_keys() if k.endswith(".claim")]


def test_a_claimed_name_is_not_given_twice(any_project: Project) -> None:
    store = any_project.store()

    first = claim_name(store, "development", "x")
    second = claim_name(store, "development", "x")
    release_name(store, first)
    release_name(store, second)

    assert first != second
    assert parse_name(second).created > parse_name(first).created  # type: ignore[union-attr]
    assert claim_key(first) not in any_project.store_keys()


def test_a_backup_with_a_label_running_alongside_one_without_keeps_both(
    any_project: Project,
) -> None:
    seed_shop(any_project.db, users=20, orders=20)
    plain = any_project.spawn("backup", "development")
    labelled = any_project.spawn("backup", "development", "--name", "pre-release")

    assert plain.wait(timeout=180) == 0 and labelled.wait(timeout=180) == 0
    names = [b.name for b in list_backups(any_project.config(), "development")]
    assert len(names) == 2 and sum(n.endswith("-pre-release") for n in names) == 1

"""`migrate --backup` and `backup_before_migrate = true`: a backup is made before anything runs,
and its name is kept in the records of that run."""

from __future__ import annotations

import json

import monarch
from tests.migrations.conftest import Project

A, B = "20240101000001_first", "20240101000002_second"


def test_migrate_backup_makes_a_backup_first_and_records_its_name(project: Project) -> None:
    project.db.users.insert_one({"name": "before"})
    project.counting(A)
    result = project.cli("migrate", "development", "--backup")
    assert result.code == 0, result.output
    [made] = monarch.list_backups(project.config(), "development")
    assert made.name.endswith("pre-migrate")
    assert f"backed up 'development' as {made.name}" in result.stderr
    assert f"(backup: {made.name})" in result.stdout
    assert project.records()[A]["backup"] == made.name
    status = json.loads(project.cli("list_migrations", "development", "--json").stdout)
    assert status["migrations"][0]["record"]["backup"] == made.name
    assert f"backup {made.name}" in project.cli("list_migrations", "development").stdout


def test_backup_before_migrate_in_the_config_backs_up_by_default(project: Project) -> None:
    config = project.root / "monarch.toml"
    config.write_text(
        config.read_text().replace(
            "[environments.development]\n",
            "[environments.development]\nbackup_before_migrate = true\n",
        )
    )
    project.counting(A)
    assert project.cli("migrate", "development").code == 0
    assert len(monarch.list_backups(project.config(), "development")) == 1
    project.counting(B)
    assert project.cli("migrate", "development", "--no-backup").code == 0
    assert len(monarch.list_backups(project.config(), "development")) == 1
    assert project.records()[B]["backup"] is None


def test_no_backup_is_made_when_nothing_is_pending(project: Project) -> None:
    assert project.cli("migrate", "development", "--backup").code == 0
    assert monarch.list_backups(project.config(), "development") == []

"""`monarch generate NAME` (alias `create`): the file, its name and its template."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

import monarch
from monarch.errors import UsageError
from monarch.migrations.discovery import load
from monarch.migrations.migration import MongoMigration
from tests.migrations.conftest import Project


def test_generate_writes_a_timestamped_file_with_the_template(project: Project) -> None:
    result = project.cli("generate", "add_indexes_to_user_table")
    assert result.code == 0, result.output
    [path] = project.migrations.glob("*.py")
    assert re.fullmatch(r"\d{14}_add_indexes_to_user_table\.py", path.name)
    assert path.name in result.stdout
    text = path.read_text()
    assert "from monarch import MongoBackedMigration" in text
    assert "class AddIndexesToUserTableMigration(MongoBackedMigration):" in text
    assert "raise NotImplementedError" in text
    loaded = load(path)
    assert loaded.cls.__name__ == "AddIndexesToUserTableMigration"
    assert issubclass(loaded.cls, MongoMigration)
    assert not loaded.cls.has_rollback()


def test_generate_stamps_the_current_utc_time_so_names_sort_in_creation_order(
    project: Project,
) -> None:
    before = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    first = monarch.generate(project.config(), "first")
    second = monarch.generate(project.config(), "second")
    after = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    assert before <= first.name[:14] <= after
    assert sorted([second.name, first.name]) == [first.name, second.name]


def test_create_is_an_alias_of_generate(project: Project) -> None:
    assert project.cli("create", "via_alias").code == 0
    assert [p.name[15:] for p in project.migrations.glob("*.py")] == ["via_alias.py"]


@pytest.mark.parametrize("name", ["AddIndexes", "add-indexes", "1st_migration", "add indexes", ""])
def test_generate_refuses_a_name_that_is_not_a_snake_case_identifier(
    project: Project, name: str
) -> None:
    result = project.cli("generate", name)
    assert result.code == 2
    assert "snake_case" in result.stderr
    assert list(project.migrations.iterdir()) == []


def test_generate_suggests_the_snake_case_spelling(project: Project) -> None:
    result = project.cli("generate", "AddIndexes")
    assert "Try: e.g. monarch generate add_indexes" in result.stderr


def test_generate_refuses_a_second_migration_with_the_same_name(project: Project) -> None:
    first = monarch.generate(project.config(), "add_users", now=datetime(2024, 1, 1, tzinfo=UTC))
    result = project.cli("generate", "add_users")
    assert result.code == 2
    assert "already exists" in result.stderr and first.name in result.stderr
    assert list(project.migrations.iterdir()) == [first]


def test_generate_never_overwrites_and_never_reuses_a_timestamp(project: Project) -> None:
    moment = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    first = monarch.generate(project.config(), "one", now=moment)
    first.write_text("# edited by hand\n")
    second = monarch.generate(project.config(), "two", now=moment)
    assert first.name == "20240501120000_one.py"
    assert second.name == "20240501120001_two.py"
    assert first.read_text() == "# edited by hand\n"


def test_generate_creates_the_migrations_folder_when_missing(project: Project) -> None:
    project.migrations.rmdir()
    path = monarch.generate(project.config(), "first")
    assert path.parent == project.migrations and path.is_file()


def test_generated_migration_fails_until_written(project: Project) -> None:
    monarch.generate(project.config(), "not_written_yet")
    result = project.cli("migrate", "development")
    assert result.code == 1
    assert "NotImplementedError: run() is not written yet" in result.stderr


def test_generate_leaves_no_temporary_file(project: Project, tmp_path: Path) -> None:
    monarch.generate(project.config(), "clean")
    assert [p.name.startswith(".") for p in project.migrations.iterdir()] == [False]


def test_invalid_name_is_a_usage_error_in_the_library(project: Project) -> None:
    with pytest.raises(UsageError):
        monarch.generate(project.config(), "Bad Name")

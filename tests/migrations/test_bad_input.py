"""Broken migration folders and unreachable servers: clear errors, and nothing runs."""

from __future__ import annotations

import socket
import time

import pytest

import monarch
from monarch.errors import MigrationError
from tests.migrations.conftest import Project, project_config

A, B = "20240101000001_first", "20240101000002_second"


def test_syntax_error_names_file_and_line_and_nothing_runs(project: Project) -> None:
    project.counting(A)
    bad = project.migrations / f"{B}.py"
    bad.write_text(
        "from monarch import MongoMigration\n\nclass M(MongoMigration):\n    def run(self)\n"
    )
    result = project.cli("migrate", "development")
    assert result.code == 1
    assert f"{bad}, line 4: syntax error" in result.stderr
    assert "nothing was run" in result.stderr
    assert project.runs() == {}
    assert project.db.list_collection_names() == []


def test_error_while_importing_names_file_and_line(project: Project) -> None:
    bad = project.write(A, header="\nimport no_such_module_here")
    result = project.cli("list_migrations", "development")
    assert result.code == 1
    assert f"{bad}, line 3: the file failed to load: ModuleNotFoundError" in result.stderr


def test_two_migrations_with_the_same_timestamp_are_an_error(project: Project) -> None:
    project.counting(A)
    project.counting("20240101000001_also_first")
    result = project.cli("migrate", "development")
    assert result.code == 1
    assert "two migrations share the timestamp 20240101000001" in result.stderr
    assert "20240101000001_also_first.py" in result.stderr and f"{A}.py" in result.stderr
    assert project.runs() == {}


def test_file_without_a_migration_class_is_named(project: Project) -> None:
    path = project.migrations / f"{A}.py"
    path.write_text("class NotAMigration:\n    def run(self):\n        pass\n")
    result = project.cli("migrate", "development")
    assert result.code == 1
    assert f"{path} defines no migration class" in result.stderr


def test_file_with_two_unrelated_migration_classes_is_refused(project: Project) -> None:
    path = project.write(A, attrs="")
    path.write_text(path.read_text() + "\nclass Other(MongoMigration):\n    pass\n")
    with pytest.raises(MigrationError, match="several migration classes"):
        monarch.list_migrations(project.config(), "development")


def test_misnamed_python_file_is_an_error_but_helpers_and_settings_are_ignored(
    project: Project,
) -> None:
    project.counting(A)
    (project.migrations / "_helpers.py").write_text("VALUE = 1\n")
    (project.migrations / "settings.py").write_text("ENVIRONMENTS = {}\n")
    (project.migrations / "__init__.py").write_text("")
    (project.migrations / "notes.txt").write_text("not python")
    assert project.cli("migrate", "development").code == 0
    (project.migrations / "2024_add_x.py").write_text("")
    result = project.cli("migrate", "development")
    assert result.code == 1
    assert "2024_add_x.py: not a migration file name" in result.stderr


def test_a_migration_can_import_a_helper_module_from_its_folder(project: Project) -> None:
    (project.migrations / "_shared.py").write_text("COLLECTION = 'from_helper'\n")
    project.write(A, 'self.db[_shared.COLLECTION].insert_one({"ok": 1})', header="import _shared")
    assert project.cli("migrate", "development").code == 0, "helper import failed"
    assert project.db.from_helper.count_documents({}) == 1


def test_missing_migrations_folder_is_a_config_error(project: Project) -> None:
    project.migrations.rmdir()
    result = project.cli("migrate", "development")
    assert result.code == 2
    assert "migrations folder" in result.stderr and "does not exist" in result.stderr


def test_unknown_environment_is_a_config_error(project: Project) -> None:
    result = project.cli("migrate", "staging")
    assert result.code == 2
    assert "unknown environment 'staging'" in result.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server_fails_within_seconds_naming_the_host_not_the_password(
    project: Project,
) -> None:
    port = _closed_port()
    password = "pa55-w0rd-never-shown"
    url = f"mongodb://deploy:{password}@127.0.0.1:{port}/app"
    (project.root / "monarch.toml").write_text(project_config(url, project.root))
    project.counting(A)
    started = time.monotonic()
    result = project.cli("migrate", "development")
    elapsed = time.monotonic() - started
    assert result.code == 1
    assert elapsed < 15, f"took {elapsed:.1f} s"
    assert f"cannot reach MongoDB at 127.0.0.1:{port}" in result.stderr
    assert password not in result.output

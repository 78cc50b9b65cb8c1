"""Protected environments: migrate, migrate_one, rollback and unlock need the name typed (on a
terminal) or `--confirm ENVNAME`; a refusal changes nothing."""

from __future__ import annotations

import pytest

import monarch
from monarch.errors import ConfirmationRequired
from tests.migrations.conftest import Project

A = "20240101000001_first"

COMMANDS = [
    ["migrate", "production"],
    ["migrate", "production", "--yes"],
    ["migrate_one", A, "production"],
    ["rollback", "production"],
    ["unlock", "production", "--yes"],
]


@pytest.fixture
def applied(project: Project) -> Project:
    project.counting(A)
    assert project.cli("migrate", "development").code == 0
    project.counting("20240101000002_second")
    return project


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_without_a_terminal_a_protected_environment_is_refused(
    applied: Project, command: list[str]
) -> None:
    before = applied.snapshot()
    result = applied.cli(*command)
    assert result.code == 2
    assert "environment 'production' is protected" in result.stderr
    assert "Try: run it on a terminal and type the name, or pass --confirm production" in (
        result.stderr
    )
    assert applied.snapshot() == before


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_wrong_confirm_is_refused(applied: Project, command: list[str]) -> None:
    before = applied.snapshot()
    result = applied.cli(*command, "--confirm", "prod")
    assert result.code == 2
    assert "does not match the protected environment 'production'" in result.stderr
    assert applied.snapshot() == before


def test_confirm_with_the_name_runs(applied: Project) -> None:
    result = applied.cli("migrate", "production", "--confirm", "production")
    assert result.code == 0, result.output
    assert set(applied.runs()) == {A, "20240101000002_second"}


def test_on_a_terminal_typing_the_name_runs(applied: Project) -> None:
    result = applied.cli("migrate", "production", input="production\n", tty=True)
    assert result.code == 0, result.output
    assert "Type its name to migrate" in result.output
    assert "20240101000002_second" in applied.runs()


def test_on_a_terminal_typing_another_name_is_refused(applied: Project) -> None:
    before = applied.snapshot()
    result = applied.cli("rollback", "production", input="development\n", tty=True)
    assert result.code == 2
    assert applied.snapshot() == before


def test_dry_run_of_a_protected_environment_needs_no_confirmation(applied: Project) -> None:
    result = applied.cli("migrate", "production", "--dry-run")
    assert result.code == 0, result.output
    assert "would run 1 migration(s) on production" in result.stdout


def test_library_refuses_before_connecting(project: Project) -> None:
    project.counting(A)
    with pytest.raises(ConfirmationRequired):
        monarch.migrate(project.config(), "production")
    with pytest.raises(ConfirmationRequired):
        monarch.unlock(project.config(), "production", confirm="staging")
    assert project.db.list_collection_names() == []
    assert monarch.migrate(project.config(), "production", confirm="production").ran == [A]


def test_unprotected_unlock_without_terminal_needs_yes(project: Project) -> None:
    result = project.cli("unlock", "development")
    assert result.code == 2
    assert "pass --yes" in result.stderr
    assert project.cli("unlock", "development", "--yes").code == 0

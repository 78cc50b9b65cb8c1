"""The monarch command end to end: init, list_environments, aliases, errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monarch import __version__


def monarch(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "MONARCH_CONFIG"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "monarch", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def test_version_is_printed(tmp_path: Path) -> None:
    result = monarch("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"monarch {__version__}"


def test_init_writes_config_and_folders_then_refuses_to_overwrite(tmp_path: Path) -> None:
    first = monarch("init", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "monarch.toml").is_file()
    assert (tmp_path / "migrations").is_dir() and (tmp_path / "querysets").is_dir()
    assert "Next:" in first.stdout
    (tmp_path / "monarch.toml").write_text("# mine\n")
    second = monarch("init", cwd=tmp_path)
    assert second.returncode == 2
    assert "already exists" in second.stderr and "Try: pass --force" in second.stderr
    assert (tmp_path / "monarch.toml").read_text() == "# mine\n"
    forced = monarch("init", "--force", cwd=tmp_path)
    assert forced.returncode == 0
    assert "[environments.development]" in (tmp_path / "monarch.toml").read_text()


def test_list_environments_shows_name_engine_host_database_protected(tmp_path: Path) -> None:
    (tmp_path / "monarch.toml").write_text(
        '[environments.development]\nurl = "mongodb://localhost:27017/app_dev"\n'
        '[environments.production]\nurl = "${PROD_URL}"\n'
    )
    env = {"PROD_URL": "mongodb://admin:hunter22@db.example.com:27017/app"}
    result = monarch("list_environments", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ENGINE", "HOST", "DATABASE", "PROTECTED"]
    assert lines[2].split()[:5] == ["development", "mongo", "localhost:27017", "app_dev", "no"]
    assert lines[3].split()[:5] == ["production", "mongo", "db.example.com:27017", "app", "yes"]
    as_json = monarch("list-environments", "--json", cwd=tmp_path, env=env)
    rows = json.loads(as_json.stdout)
    assert rows[1]["url"] == "mongodb://admin:**redacted**@db.example.com:27017/app"
    assert "hunter22" not in result.stdout + result.stderr + as_json.stdout + as_json.stderr


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        ("[environments.dev\n", {}, r"invalid TOML"),
        (
            '[environments.dev]\nurl = "mongodb://x/a"\nprotect = true\n',
            {},
            "did you mean 'environments.dev.protected'",
        ),
        ('[environments.dev]\nurl = "mysql://x/a"\n', {}, "monarch supports MongoDB"),
        ('[environments.dev]\nurl = "redis://x/a"\n', {}, "unknown URL scheme 'redis://'"),
    ],
)
def test_bad_config_gets_error_and_exit_2(
    tmp_path: Path, toml: str, env: dict[str, str], expected: str
) -> None:
    (tmp_path / "monarch.toml").write_text(toml)
    result = monarch("list_environments", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("Error: ")
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_says_to_run_init(tmp_path: Path) -> None:
    result = monarch("list_environments", cwd=tmp_path)
    assert result.returncode == 2
    assert "Try: run `monarch init`" in result.stderr


def test_unknown_environment_lists_known_ones(tmp_path: Path) -> None:
    (tmp_path / "monarch.toml").write_text(
        '[environments.development]\nurl = "mongodb://localhost/a"\n'
    )
    result = monarch("migrate", "staging", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown environment 'staging'; known environments: development" in result.stderr


def test_traceback_flag_shows_the_traceback_then_the_error_with_its_exit_code(
    tmp_path: Path,
) -> None:
    result = monarch("--traceback", "list_environments", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    after = result.stderr.partition("monarch.errors.ConfigError")[2]
    assert "\nError: no monarch.toml found" in after
    assert "\nTry: run `monarch init`" in after


def test_relative_monarch_config_is_reported_as_monarch_config(tmp_path: Path) -> None:
    result = monarch("list_environments", cwd=tmp_path, env={"MONARCH_CONFIG": "conf.toml"})
    assert result.returncode == 2
    assert f"config file {tmp_path / 'conf.toml'} (from MONARCH_CONFIG) does not exist" in (
        result.stderr
    )
    (tmp_path / "conf.toml").write_text('[environments.dev]\nurl = "mongodb://localhost/a"\n')
    found = monarch("list_environments", cwd=tmp_path, env={"MONARCH_CONFIG": "conf.toml"})
    assert found.returncode == 0, found.stderr


def test_config_option_naming_a_folder_says_so(tmp_path: Path) -> None:
    (tmp_path / "monarch.toml").write_text('[environments.dev]\nurl = "mongodb://localhost/a"\n')
    result = monarch("--config", str(tmp_path), "list_environments", cwd=tmp_path)
    assert result.returncode == 2
    assert f"Error: {tmp_path} (from --config) is a folder, not a config file" in result.stderr
    assert f"Try: point --config at the file inside it: {tmp_path / 'monarch.toml'}" in (
        result.stderr
    )


def test_a_missing_production_secret_blocks_only_commands_on_production(
    tmp_path: Path, mongo_url: str
) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "monarch.toml").write_text(
        f'[environments.development]\nurl = "{mongo_url}"\n'
        "[environments.production]\n"
        'url = "mongodb://app:${PROD_PASSWORD}@db.example.com:27017/shop"\n'
    )
    listed = monarch("list_environments", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "production" in listed.stdout
    assert "Note: production needs ${PROD_PASSWORD}, which is not set here" in listed.stdout
    rows = json.loads(monarch("list_environments", "--json", cwd=tmp_path).stdout)
    assert rows[1]["missing_variables"] == ["PROD_PASSWORD"]
    status = monarch("list_migrations", "development", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    migrated = monarch("migrate", "development", cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    refused = monarch("list_migrations", "production", cwd=tmp_path)
    assert refused.returncode == 2
    assert "environments.production.url uses ${PROD_PASSWORD}" in refused.stderr
    assert "Try: export PROD_PASSWORD=..." in refused.stderr


def test_legacy_project_works_and_says_once_how_to_convert(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "settings.py").write_text(
        "ENVIRONMENTS = {'development': {'host': 'localhost', 'port': 27017, 'db_name': 'd',"
        " 'username': 'u', 'password': 'hunter22'}}\n"
    )
    result = monarch("list_environments", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("init --from-settings") == 1
    assert "hunter22" not in result.stdout + result.stderr


@pytest.mark.parametrize("spelling", ["list_environments", "list-environments"])
def test_original_and_dashed_command_names_both_work(tmp_path: Path, spelling: str) -> None:
    (tmp_path / "monarch.toml").write_text('[environments.dev]\nurl = "mongodb://localhost/a"\n')
    assert monarch(spelling, cwd=tmp_path).returncode == 0


def test_help_lists_the_original_command_names(tmp_path: Path) -> None:
    result = monarch("--help", cwd=tmp_path)
    for name in (
        "init",
        "generate",
        "list_migrations",
        "migrate",
        "migrate_one",
        "backup",
        "list_backups",
        "restore",
        "copy_db",
        "list_environments",
    ):
        assert name in result.stdout

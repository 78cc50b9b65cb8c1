"""Loading monarch.toml: environments, ${VAR} expansion, paths, and every bad-input case."""

from __future__ import annotations

from pathlib import Path

import pytest

from monarch.config import find_config, load_config
from monarch.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(
        tmp_path / "monarch.toml",
        """
migrations = "db/migrations"
backups = "file://backups"

[environments.development]
url = "mongodb://localhost:27017/app_dev"

[environments.production]
url = "${PROD_URL}"
protected = true
""",
    )
    return tmp_path


def test_environments_are_loaded_with_engine_host_and_database(project: Path) -> None:
    config = load_config(
        project / "monarch.toml", environ={"PROD_URL": "mongodb://db.example:27017/app"}
    )
    dev = config.environment("development")
    assert (dev.engine, dev.host, dev.database, dev.protected) == (
        "mongo",
        "localhost:27017",
        "app_dev",
        False,
    )
    prod = config.environment("production")
    assert (prod.host, prod.database, prod.protected) == ("db.example:27017", "app", True)


def test_relative_paths_are_relative_to_the_config_file(project: Path) -> None:
    config = load_config(project / "monarch.toml", environ={"PROD_URL": "mongodb://h/app"})
    assert config.migrations_dir == project / "db" / "migrations"
    assert config.backups.url == f"file://{project / 'backups'}"
    assert config.querysets_dir == project / "querysets"


def test_config_is_found_by_searching_upward(project: Path) -> None:
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    assert find_config(deep) == project / "monarch.toml"


def test_monarch_config_variable_points_at_the_file(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.setenv("MONARCH_CONFIG", str(project / "monarch.toml"))
    assert find_config(tmp_path_factory.mktemp("elsewhere")) == project / "monarch.toml"


def test_explicit_path_that_does_not_exist_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as info:
        find_config(tmp_path, tmp_path / "nope.toml")
    assert info.value.exit_code == 2


def test_missing_config_says_to_run_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONARCH_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=r"no monarch\.toml found") as info:
        load_config(start=tmp_path)
    assert "monarch init" in (info.value.hint or "")


def test_unset_variable_is_named(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"\$\{PROD_URL\}.*PROD_URL is not set") as info:
        load_config(project / "monarch.toml", environ={})
    assert "export PROD_URL" in (info.value.hint or "")


def test_variable_default_is_used_when_unset(tmp_path: Path) -> None:
    path = write(
        tmp_path / "monarch.toml",
        '[environments.dev]\nurl = "mongodb://${HOST:-localhost}:27017/app"\n',
    )
    assert load_config(path, environ={}).environment("dev").host == "localhost:27017"


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "monarch.toml", '[environments.dev]\nurl = "mongodb://x/app"\nprotected = \n'
    )
    with pytest.raises(ConfigError, match=r"monarch\.toml: invalid TOML: .*line 3"):
        load_config(path, environ={})


@pytest.mark.parametrize(
    ("text", "bad", "suggestion"),
    [
        ('migration = "m"\n', "'migration'", "'migrations'"),
        (
            '[environments.dev]\nurl = "mongodb://x/a"\nprotect = true\n',
            "'environments.dev.protect'",
            "'environments.dev.protected'",
        ),
        (
            '[backups]\nurl = "s3://b/p"\nregoin = "eu-west-1"\n',
            "'backups.regoin'",
            "'backups.region'",
        ),
    ],
)
def test_unknown_key_is_named_with_the_closest_valid_one(
    tmp_path: Path, text: str, bad: str, suggestion: str
) -> None:
    path = write(tmp_path / "monarch.toml", text)
    with pytest.raises(ConfigError, match=f"unknown key {bad}") as info:
        load_config(path, environ={})
    assert suggestion in (info.value.hint or "")


def test_unknown_url_scheme_lists_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "monarch.toml", '[environments.dev]\nurl = "mongo://x/app"\n')
    with pytest.raises(ConfigError, match=r"unknown URL scheme 'mongo://'.*mongodb://") as info:
        load_config(path, environ={})
    assert "mongodb" in (info.value.hint or "")


def test_unknown_environment_lists_known_ones(project: Path) -> None:
    config = load_config(project / "monarch.toml", environ={"PROD_URL": "mongodb://h/app"})
    with pytest.raises(ConfigError, match="known environments: development, production") as info:
        config.environment("prodution")
    assert "production" in (info.value.hint or "")


def test_url_without_database_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path / "monarch.toml", '[environments.dev]\nurl = "mongodb://u:hunter22@x:27017"\n'
    )
    with pytest.raises(ConfigError, match="names no database") as info:
        load_config(path, environ={})
    assert "hunter22" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "url", "protected"),
    [
        ("production", "mongodb://localhost/app", True),
        ("prod", "mongodb://localhost/app", True),
        ("staging", "mongodb://db.internal:27017/app", True),
        ("staging", "mongodb://127.0.0.1:27017/app", False),
        ("dev", "mongodb://[::1]:27017/app", False),
        ("dev", "mongodb://localhost:1,db2.example:2/app", True),
    ],
)
def test_protection_is_judged_by_name_or_remote_host_when_unset(
    tmp_path: Path, name: str, url: str, protected: bool
) -> None:
    path = write(tmp_path / "monarch.toml", f'[environments.{name}]\nurl = "{url}"\n')
    assert load_config(path, environ={}).environment(name).protected is protected


def test_explicit_protected_false_wins_over_the_name(tmp_path: Path) -> None:
    path = write(
        tmp_path / "monarch.toml",
        '[environments.production]\nurl = "mongodb://x/a"\nprotected = false\n',
    )
    assert load_config(path, environ={}).environment("production").protected is False


def test_sqlite_and_postgres_urls_are_recognised(tmp_path: Path) -> None:
    path = write(
        tmp_path / "monarch.toml",
        '[environments.lite]\nurl = "sqlite:///data/app.db"\n'
        '[environments.abs]\nurl = "sqlite:////srv/app.db"\n'
        '[environments.pg]\nurl = "postgres://app@localhost:5432/app"\n',
    )
    config = load_config(path, environ={})
    assert config.environment("lite").database == str(tmp_path / "data" / "app.db")
    assert config.environment("abs").database == "/srv/app.db"
    assert config.environment("pg").engine == "postgres"


def test_s3_backup_options_keep_secrets_secret(tmp_path: Path) -> None:
    path = write(
        tmp_path / "monarch.toml",
        '[backups]\nurl = "s3://bucket/prefix"\nregion = "eu-west-1"\n'
        'aws_access_key_id = "AKIAEXAMPLE"\naws_secret_access_key = "${SECRET}"\n',
    )
    config = load_config(path, environ={"SECRET": "s3cr3t-value"})
    assert config.backups.url == "s3://bucket/prefix"
    assert config.backups.options["region"] == "eu-west-1"
    secret = config.backups.options["aws_secret_access_key"]
    assert "s3cr3t-value" not in repr(config) and "s3cr3t-value" not in str(secret)

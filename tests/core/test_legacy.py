"""Projects of the original 0.0.x tool keep working from migrations/settings.py."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from monarch.config import load_config
from monarch.errors import ConfigError
from monarch.project import init_project

SETTINGS = """
ENVIRONMENTS = {
    'development': {'host': 'localhost', 'port': 27017, 'db_name': 'app_dev',
                    'username': None, 'password': None},
    'production': {'host': 'db.example.com', 'port': 27018, 'db_name': 'app',
                   'username': 'admin', 'password': 'p@ss:w0rd!'},
}
BACKUPS = {'S3': {'bucket_name': 'acme-backups', 'aws_access_key_id': 'AKIAEXAMPLE',
                  'aws_secret_access_key': 'sEcReTkEy123'}}
"""


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "settings.py").write_text(SETTINGS, encoding="utf-8")
    return tmp_path


def test_legacy_settings_are_read_when_there_is_no_monarch_toml(legacy: Path) -> None:
    config = load_config(start=legacy, environ={})
    assert config.source == "legacy"
    assert any("init --from-settings" in n for n in config.notices)
    prod = config.environment("production")
    assert (prod.host, prod.database, prod.protected) == ("db.example.com:27018", "app", True)
    assert prod.url.reveal() == "mongodb://admin:p%40ss%3Aw0rd%21@db.example.com:27018/app"
    assert "p%40ss" not in prod.display_url
    assert config.migrations_dir == legacy / "migrations"
    assert config.backups.url == "s3://acme-backups"
    assert "sEcReTkEy123" not in repr(config)


def test_local_backup_dir_becomes_a_file_store(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "settings.py").write_text(
        "ENVIRONMENTS = {'dev': {'db_name': 'd'}}\nBACKUPS = {'LOCAL': {'backup_dir': 'bk'}}\n"
    )
    config = load_config(start=tmp_path, environ={})
    assert config.backups.url == f"file://{tmp_path / 'bk'}"
    assert config.environment("dev").url.reveal() == "mongodb://localhost:27017/d"


def test_settings_with_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "settings.py").write_text("ENVIRONMENTS = {\n  'dev': {\n")
    with pytest.raises(ConfigError, match=r"settings\.py, line \d+: syntax error"):
        load_config(start=tmp_path, environ={})


def test_init_from_settings_writes_toml_without_passwords(legacy: Path) -> None:
    result = init_project(legacy, from_settings=True)
    text = result.config_path.read_text()
    assert "p@ss" not in text and "p%40ss" not in text and "sEcReTkEy123" not in text
    assert set(result.variables) == {
        "MONARCH_PRODUCTION_PASSWORD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
    data = tomllib.loads(text)
    assert data["environments"]["production"]["url"] == (
        "mongodb://admin:${MONARCH_PRODUCTION_PASSWORD}@db.example.com:27018/app"
    )
    config = load_config(
        result.config_path,
        environ={
            "MONARCH_PRODUCTION_PASSWORD": "p%40ss%3Aw0rd%21",
            "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "sEcReTkEy123",
        },
    )
    assert config.source == "toml"
    assert config.environment("production").url.reveal().startswith("mongodb://admin:p%40ss")

"""Projects of the original 0.0.x tool keep working from migrations/settings.py."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from monarch.config import load_config
from monarch.errors import ConfigError
from monarch.project import init_project
from tests.core.test_cli_project import monarch

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
    password = "p@ss:w0rd!"  # the variable holds the password as it is: monarch encodes it
    config = load_config(
        result.config_path,
        environ={
            "MONARCH_PRODUCTION_PASSWORD": password,
            "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "sEcReTkEy123",
        },
    )
    assert config.source == "toml"
    prod = config.environment("production")
    assert prod.url.reveal() == "mongodb://admin:p%40ss%3Aw0rd%21@db.example.com:27018/app"


# settings.py as the original `init` wrote it, then filled in: host:port, a replica-set list,
# a CA file, and credentials the original put into the URL unencoded.
ORIGINAL = """\
ENVIRONMENTS = {
    'development': {
        'host': '%(dev_host)s',
        'db_name': '%(dev_db)s',
        'username': None,
        'password': None,
    },
    'production': {
        'host': 'db1.example.com:27017,db2.example.com:27017',
        'db_name': 'legacy_app',
        'username': 'app@corp',
        'password': 'Le@k:/#Me9x',
        'sslCAFile': 'certs/ca.pem',
    },
}

BACKUPS = {
    'LOCAL': {
        'backup_dir': 'backups',
    }
}
"""
PASSWORD = "Le@k:/#Me9x"


def original_project(root: Path, dev_host: str = "localhost:27017", dev_db: str = "dev") -> Path:
    (root / "migrations").mkdir()
    (root / "migrations" / "__init__.py").write_text("# this file makes migrations a package\n")
    (root / "migrations" / "settings.py").write_text(
        ORIGINAL % {"dev_host": dev_host, "dev_db": dev_db}, encoding="utf-8"
    )
    return root


def test_host_with_its_port_and_a_replica_set_list_are_used_as_written(tmp_path: Path) -> None:
    config = load_config(start=original_project(tmp_path), environ={})
    dev = config.environment("development")
    assert dev.url.reveal() == "mongodb://localhost:27017/dev"
    assert (dev.host, dev.protected) == ("localhost:27017", False)
    prod = config.environment("production")
    assert prod.hosts == ("db1.example.com:27017", "db2.example.com:27017")
    assert prod.database == "legacy_app" and prod.protected


def test_credentials_with_reserved_characters_are_encoded_and_never_shown(tmp_path: Path) -> None:
    prod = load_config(start=original_project(tmp_path), environ={}).environment("production")
    url = prod.url.reveal()
    assert url.startswith("mongodb://app%40corp:Le%40k%3A%2F%23Me9x@db1.example.com:27017,")
    assert PASSWORD in prod.secret_values()
    for shown in (prod.display_url, repr(prod), prod.scrub(f"oops {PASSWORD} {url}")):
        assert "Le@k" not in shown and "Me9x" not in shown and "Le%40k" not in shown


def test_ssl_ca_file_turns_on_tls_with_the_file_from_the_project_root(tmp_path: Path) -> None:
    prod = load_config(start=original_project(tmp_path), environ={}).environment("production")
    query = prod.url.reveal().partition("?")[2]
    assert query == f"tls=true&tlsCAFile={tmp_path / 'certs' / 'ca.pem'}"


@pytest.mark.parametrize(
    ("entry", "url"),
    [
        ("{'host': 'db.local', 'port': 27018, 'db_name': 'd'}", "mongodb://db.local:27018/d"),
        ("{'host': 'a,b', 'port': '27018', 'db_name': 'd'}", "mongodb://a:27018,b:27018/d"),
        ("{'host': 'db.local', 'db_name': 'd'}", "mongodb://db.local/d"),
        ("{'db_name': 'd'}", "mongodb://localhost:27017/d"),
        ("{'host': '[::1]:27017', 'db_name': 'd'}", "mongodb://[::1]:27017/d"),
    ],
)
def test_a_separate_port_is_appended_only_where_the_host_has_none(
    tmp_path: Path, entry: str, url: str
) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "settings.py").write_text(f"ENVIRONMENTS = {{'dev': {entry}}}\n")
    assert load_config(start=tmp_path, environ={}).environment("dev").url.reveal() == url


@pytest.mark.parametrize(
    ("entry", "message", "hint"),
    [
        (
            "{'host': 'localhost:27017', 'port': 27017, 'db_name': 'd'}",
            "sets both 'port' (27017) and a port in 'host' ('localhost:27017')",
            "remove 'port'",
        ),
        (
            "{'host': 'localhost:27017', 'db_name': 'd', 'replicaSet': 'rs0'}",
            "has the key 'replicaSet', which monarch cannot carry over",
            "remove it from settings.py",
        ),
        (
            "{'host': 'mongodb://localhost:27017', 'db_name': 'd'}",
            "'host' must be host:port or a comma-separated list of them",
            "'host': 'db.example.com:27017'",
        ),
        (
            "{'host': 'localhost', 'db_name': 'd', 'password': 'hunter22'}",
            "has a 'password' but no 'username'",
            "username",
        ),
        ("{'host': 'localhost', 'port': 'abc', 'db_name': 'd'}", "port 'abc'", "numeric port"),
        ("{'host': 'localhost', 'db_name': 'my.db'}", "cannot be a MongoDB database name", "my_db"),
    ],
)
def test_settings_monarch_cannot_carry_over_are_refused_clearly(
    tmp_path: Path, entry: str, message: str, hint: str
) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "settings.py").write_text(f"ENVIRONMENTS = {{'dev': {entry}}}\n")
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load_config(start=tmp_path, environ={})
    assert hint in (info.value.hint or "")
    assert "hunter22" not in str(info.value)


def test_unknown_backup_settings_are_refused_not_dropped(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "settings.py").write_text(
        "ENVIRONMENTS = {'dev': {'db_name': 'd'}}\n"
        "BACKUPS = {'S3': {'bucket_name': 'b', 'region': 'eu-west-1'}}\n"
    )
    with pytest.raises(ConfigError, match=r"BACKUPS\['S3'\] has the key 'region'"):
        load_config(start=tmp_path, environ={})


def test_init_from_settings_keeps_hosts_and_tls_and_the_password_works_through_a_variable(
    tmp_path: Path,
) -> None:
    result = init_project(original_project(tmp_path), from_settings=True)
    text = result.config_path.read_text()
    for part in ("Le@k", "Le%40k", "Me9x", "%23Me9x"):
        assert part not in text
    data = tomllib.loads(text)
    assert data["environments"]["production"]["url"] == (
        "mongodb://app%40corp:${MONARCH_PRODUCTION_PASSWORD}"
        "@db1.example.com:27017,db2.example.com:27017/legacy_app?tls=true&tlsCAFile=certs/ca.pem"
    )
    assert data["environments"]["development"]["url"] == "mongodb://localhost:27017/dev"
    assert result.variables == ("MONARCH_PRODUCTION_PASSWORD",)
    config = load_config(result.config_path, environ={"MONARCH_PRODUCTION_PASSWORD": PASSWORD})
    legacy = load_config(tmp_path / "migrations" / "settings.py", environ={})
    prod = config.environment("production")
    assert (
        prod.url.reveal().partition("?")[0]
        == (legacy.environment("production").url.reveal().partition("?")[0])
    )
    assert prod.hosts == ("db1.example.com:27017", "db2.example.com:27017")


def test_init_in_a_legacy_project_points_at_from_settings_and_writes_nothing(
    tmp_path: Path,
) -> None:
    original_project(tmp_path)
    with pytest.raises(ConfigError, match=r"original monarch 0\.0\.x") as info:
        init_project(tmp_path)
    assert "monarch init --from-settings" in (info.value.hint or "")
    assert not (tmp_path / "monarch.toml").exists()
    assert not (tmp_path / "querysets").exists()


def test_init_in_a_legacy_project_from_the_command_line(tmp_path: Path) -> None:
    original_project(tmp_path)
    refused = monarch("init", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "Try: run `monarch init --from-settings`" in refused.stderr
    assert not (tmp_path / "monarch.toml").exists()
    converted = monarch("init", "--from-settings", cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    assert "export MONARCH_PRODUCTION_PASSWORD=..." in converted.stdout
    assert "Me9x" not in converted.stdout + converted.stderr


def test_legacy_project_runs_commands_on_a_real_server_with_host_and_port(
    tmp_path: Path, mongo_url: str
) -> None:
    netloc, _, database = mongo_url.partition("://")[2].partition("/")
    original_project(tmp_path, dev_host=netloc, dev_db=database)
    listed = monarch("list_environments", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith("dev"))
    assert row[:5] == ["development", "mongo", netloc, database, "no"]
    status = monarch("list_migrations", "development", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    for output in (listed, status):
        assert "Le@k" not in output.stdout + output.stderr
        assert "Me9x" not in output.stdout + output.stderr

"""Loading monarch.toml: environments, ${VAR} expansion, paths, and every bad-input case."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest

from monarch.config import find_config, load_config
from monarch.errors import ConfigError
from monarch.stores import open_store


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


def test_unset_variable_is_named_when_its_environment_is_used(project: Path) -> None:
    config = load_config(project / "monarch.toml", environ={})
    assert config.environment("development").database == "app_dev"
    with pytest.raises(ConfigError, match=r"\$\{PROD_URL\}.*PROD_URL is not set") as info:
        config.environment("production")
    assert "export PROD_URL" in (info.value.hint or "")
    assert info.value.exit_code == 2


def test_environment_with_an_unset_password_still_shows_what_is_known(tmp_path: Path) -> None:
    path = write(
        tmp_path / "monarch.toml",
        '[environments.production]\nurl = "mongodb://admin:${PROD_PASSWORD}@db.example:27017/app"\n',
    )
    env = load_config(path, environ={}).environments["production"]
    assert (env.engine, env.host, env.database, env.missing) == (
        "mongo",
        "db.example:27017",
        "app",
        ("PROD_PASSWORD",),
    )
    assert env.protected


def test_an_unset_backup_credential_stops_only_commands_that_open_the_store(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "monarch.toml",
        '[backups]\nurl = "s3://bucket/p"\naws_secret_access_key = "${AWS_SECRET_ACCESS_KEY}"\n'
        '[environments.dev]\nurl = "mongodb://localhost/app"\n',
    )
    config = load_config(path, environ={})
    assert config.environment("dev").database == "app"
    with pytest.raises(ConfigError, match=r"backups\.aws_secret_access_key uses"):
        open_store(config.backups)


@pytest.mark.parametrize(
    "password", ["p@ss:w/rd#1", "Le@k:/#Me9x", "a b+c%41?x=1&y", "100%", "ünï@cøde"]
)
def test_variable_in_the_password_is_percent_encoded(tmp_path: Path, password: str) -> None:
    path = write(
        tmp_path / "monarch.toml",
        '[environments.prod]\nurl = "mongodb://app:${DB_PASSWORD}@db.example:27017/shop"\n',
    )
    env = load_config(path, environ={"DB_PASSWORD": password}).environment("prod")
    assert (env.host, env.database) == ("db.example:27017", "shop")
    assert env.url.reveal() == f"mongodb://app:{quote(password, safe='')}@db.example:27017/shop"
    assert password in env.secret_values()
    assert password not in env.scrub(f"driver said {password} and {quote(password, safe='')}")


def test_variable_in_the_user_is_percent_encoded_and_elsewhere_kept_as_is(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "monarch.toml",
        '[environments.prod]\nurl = "postgresql://${DB_USER}:${DB_PW:-x@y}@${DB_HOST}/${DB}"\n',
    )
    environ = {"DB_USER": "me@corp", "DB_HOST": "h1:5432", "DB": "shop"}
    env = load_config(path, environ=environ).environment("prod")
    assert env.url.reveal() == "postgresql://me%40corp:x%40y@h1:5432/shop"
    assert "x@y" in env.secret_values() and "me@corp" not in env.secret_values()


def test_a_whole_url_from_a_variable_is_used_as_written(tmp_path: Path) -> None:
    path = write(tmp_path / "monarch.toml", '[environments.prod]\nurl = "${PROD_URL}"\n')
    url = "mongodb://admin:p%40ss@db.example:27017/app?authSource=admin"
    env = load_config(path, environ={"PROD_URL": url}).environment("prod")
    assert env.url.reveal() == url
    assert {"p%40ss", "p@ss"} <= set(env.secret_values())


@pytest.mark.parametrize(
    ("url", "message", "hint"),
    [
        ("mongodb://localhost:abc/app", "port 'abc' of host 'localhost' is not a number", "27017"),
        ("mongodb://localhost:99999/app", "is not a number from 1 to 65535", "host:port"),
        ("postgresql://h1:5432,h2:x/app", "port 'x' of host 'h2'", "numeric port"),
        ("mongodb://localhost/my.db", "'my.db' cannot be a MongoDB database name", "'my_db'"),
        ("mongodb://localhost/a%24b", "'a$b' cannot be a MongoDB database name", "'a_b'"),
        ("mongodb://localhost/" + "x" * 64, "MongoDB allows at most 63", "shorter"),
    ],
)
def test_bad_port_or_database_name_is_a_config_error_with_a_hint(
    tmp_path: Path, url: str, message: str, hint: str
) -> None:
    path = write(tmp_path / "monarch.toml", f'[environments.dev]\nurl = "{url}"\n')
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load_config(path, environ={})
    assert hint in (info.value.hint or "")
    assert info.value.exit_code == 2


def test_a_dotted_database_name_is_fine_on_postgresql(tmp_path: Path) -> None:
    path = write(tmp_path / "monarch.toml", '[environments.dev]\nurl = "postgresql://h/my.db"\n')
    assert load_config(path, environ={}).environment("dev").database == "my.db"


def test_an_unsupported_engine_is_not_offered_another_engine(tmp_path: Path) -> None:
    path = write(tmp_path / "monarch.toml", '[environments.dev]\nurl = "mysql://h/app"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "monarch supports MongoDB (mongodb://, mongodb+srv://)" in str(info.value)
    assert "PostgreSQL (postgresql://, postgres://); SQLite (sqlite://)" in str(info.value)
    assert info.value.hint == "monarch works with MongoDB, PostgreSQL and SQLite only"


def test_a_folder_given_as_config_says_it_is_a_folder(tmp_path: Path) -> None:
    write(tmp_path / "monarch.toml", "")
    with pytest.raises(ConfigError, match="is a folder, not a config file") as info:
        find_config(tmp_path, tmp_path)
    assert str(tmp_path / "monarch.toml") in (info.value.hint or "")


def test_relative_monarch_config_is_named_and_resolved_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MONARCH_CONFIG", "conf/monarch.toml")
    with pytest.raises(ConfigError, match=r"from MONARCH_CONFIG\) does not exist") as info:
        find_config(tmp_path / "elsewhere")
    assert str(tmp_path / "conf" / "monarch.toml") in str(info.value)
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf" / "monarch.toml", "")
    assert find_config(tmp_path / "elsewhere") == tmp_path / "conf" / "monarch.toml"


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


def test_username_and_password_keys_are_encoded_into_the_url(tmp_path: Path) -> None:
    path = write(
        tmp_path / "monarch.toml",
        '[environments.prod]\nurl = "postgresql://db.example:5432/shop"\n'
        'username = "app@corp"\npassword = "${DB_PASSWORD}"\n',
    )
    env = load_config(path, environ={"DB_PASSWORD": "Le@k:/#Me9x"}).environment("prod")
    assert env.url.reveal() == "postgresql://app%40corp:Le%40k%3A%2F%23Me9x@db.example:5432/shop"
    assert env.display_url == "postgresql://app%40corp:**redacted**@db.example:5432/shop"
    assert "Le@k:/#Me9x" in env.secret_values()
    unset = load_config(path, environ={}).environments["prod"]
    assert (unset.host, unset.database, unset.missing) == (
        "db.example:5432",
        "shop",
        ("DB_PASSWORD",),
    )
    with pytest.raises(ConfigError, match=r"environments\.prod\.password uses \$\{DB_PASSWORD\}"):
        load_config(path, environ={}).environment("prod")


@pytest.mark.parametrize(
    ("url", "keys", "message"),
    [
        ("mongodb://me@h/app", 'password = "x"', "the url has a user already"),
        ("mongodb://h/app", 'password = "x"', "`password` is set but `username` is not"),
        ("sqlite:///app.db", 'username = "me"', "need a MongoDB or PostgreSQL url"),
    ],
)
def test_username_and_password_keys_that_cannot_apply_are_refused(
    tmp_path: Path, url: str, keys: str, message: str
) -> None:
    path = write(tmp_path / "monarch.toml", f'[environments.dev]\nurl = "{url}"\n{keys}\n')
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path, environ={})


def test_a_config_that_is_not_utf8_text_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "monarch.toml"
    path.write_bytes(b'[environments.dev]\nurl = "mongodb://h/\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8 text") as info:
        load_config(path, environ={})
    assert info.value.hint == "save the file as UTF-8"


def test_a_home_folder_of_no_user_is_kept_as_written(tmp_path: Path) -> None:
    path = write(tmp_path / "monarch.toml", 'backups = "~no-such-user-here/bk"\n')
    config = load_config(path, environ={})
    assert config.backups.url == f"file://{tmp_path / '~no-such-user-here' / 'bk'}"


def test_a_url_with_an_unencoded_slash_in_its_password_is_refused_without_showing_it(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "monarch.toml", '[environments.prod]\nurl = "${PROD_URL}"\n')
    url = "mongodb://app:Le@k:/#Me9x@db.example:27017/shop"
    with pytest.raises(ConfigError, match="has an '@' after its host") as info:
        load_config(path, environ={"PROD_URL": url})
    shown = f"{info.value} {info.value.hint}"
    assert "Le@k" not in shown and "Me9x" not in shown and "#Me" not in shown
    assert "%2F" in shown

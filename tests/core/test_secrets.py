"""Secrets print as **redacted**; URLs are shown without passwords."""

from __future__ import annotations

import logging
import pickle
import traceback
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

import monarch
from monarch.config import config_from_dict, load_config
from monarch.errors import MonarchError
from monarch.secrets import (
    REDACTED,
    Secret,
    redact_exception,
    redact_text,
    redact_url,
    url_secrets,
)
from tests.core.test_cli_project import monarch as run_monarch


def test_secret_never_shows_its_value() -> None:
    secret = Secret("hunter22")
    for shown in (str(secret), repr(secret), f"{secret}", f"{secret!r}", str([secret])):
        assert "hunter22" not in shown
    assert secret.reveal() == "hunter22"


def test_secret_refuses_to_be_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret("hunter22"))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mongodb://bob:hunter22@db:27017/app", f"mongodb://bob:{REDACTED}@db:27017/app"),
        ("mongodb://bob@db/app", "mongodb://bob@db/app"),
        (
            "mongodb://a:p%40ss@h1,h2/app?replicaSet=rs",
            f"mongodb://a:{REDACTED}@h1,h2/app?replicaSet=rs",
        ),
        (
            "postgresql://u@h/app?password=hunter22&sslmode=require",
            f"postgresql://u@h/app?password={REDACTED}&sslmode=require",
        ),
        ("mongodb://db/app", "mongodb://db/app"),
    ],
)
def test_redact_url_strips_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_removes_plain_and_quoted_forms() -> None:
    text = "failed for p@ss:word and p%40ss%3Aword"
    assert redact_text(text, ["p@ss:word"]) == f"failed for {REDACTED} and {REDACTED}"


def test_environment_repr_and_logs_hold_no_password(caplog: pytest.LogCaptureFixture) -> None:
    config = config_from_dict(
        {"environments": {"prod": {"url": "mongodb://bob:hunter22@db.example/app"}}}, None, {}
    )
    env = config.environment("prod")
    with caplog.at_level(logging.INFO):
        logging.getLogger("monarch.test").info("using %s / %r / %s", env, env, config)
    assert "hunter22" not in caplog.text
    assert "hunter22" not in env.display_url


PASSWORD = "Le@k:/#Me9x"
# Every piece of the password a broken URL could split it into, raw or percent-encoded.
PIECES = ("Le@k", "Le%40k", "Me9x", "%23Me9x", PASSWORD, quote(PASSWORD, safe=""))


def chain(exc: BaseException | None) -> list[BaseException]:
    """The exception and every one it chains, through __cause__ and __context__."""
    found: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        todo += [current.__cause__, current.__context__]
    return found


def test_url_secrets_are_the_password_as_written_and_decoded() -> None:
    url = "postgresql://u:Le%40k%3A%2F%23Me9x@h/db?sslpassword=k%2By&sslmode=require"
    assert url_secrets(url) == ["Le%40k%3A%2F%23Me9x", PASSWORD, "k%2By", "k+y"]
    assert url_secrets("mongodb://h/db") == []


def test_redact_exception_scrubs_the_whole_chain_in_place() -> None:
    def fail() -> None:
        try:
            raise ValueError(f"bad URI: mongodb://u:{quote(PASSWORD, safe='')}@h/db")
        except ValueError as inner:
            raise MonarchError(f"wrapped {PASSWORD}", hint=f"not {PASSWORD}") from inner

    with pytest.raises(MonarchError) as info:
        fail()
    redact_exception(info.value, [PASSWORD])
    text = "".join(traceback.format_exception(info.value))
    assert REDACTED in text
    for piece in PIECES:
        assert piece not in text
        assert piece not in (info.value.hint or "")


@pytest.fixture
def malformed_postgres(tmp_path: Path) -> Path:
    """A project whose PostgreSQL URL libpq cannot parse (an unclosed ``[``), with a password
    from ${PG_PASSWORD}: libpq quotes such a URL whole in its error."""
    (tmp_path / "migrations").mkdir()
    (tmp_path / "monarch.toml").write_text(
        '[environments.staging]\nurl = "postgresql://app:${PG_PASSWORD}@[localhost/app"\n'
    )
    return tmp_path


def test_malformed_postgres_url_never_shows_the_password_to_python_callers(
    malformed_postgres: Path,
) -> None:
    config = load_config(malformed_postgres / "monarch.toml", environ={"PG_PASSWORD": PASSWORD})
    with pytest.raises(MonarchError) as info:
        monarch.list_migrations(config, "staging")
    assert "[localhost" in str(info.value)
    for exc in chain(info.value):
        shown = f"{exc} {exc!r} {exc.args!r}"
        for piece in PIECES:
            assert piece not in shown
    printed = "".join(traceback.format_exception(info.value))
    assert not [piece for piece in PIECES if piece in printed]


def test_traceback_of_a_malformed_postgres_url_never_prints_the_password(
    malformed_postgres: Path,
) -> None:
    result = run_monarch(
        "--traceback",
        "list_migrations",
        "staging",
        cwd=malformed_postgres,
        env={"PG_PASSWORD": PASSWORD},
    )
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "\nError: PostgreSQL at [localhost" in result.stderr
    output = result.stdout + result.stderr
    assert not [piece for piece in PIECES if piece in output]


def test_a_failed_migration_keeps_no_decoded_password_in_its_history(
    tmp_path: Path, postgres_url: str
) -> None:
    # The test server trusts every local connection, so any password gets in.
    scheme, _, rest = postgres_url.partition("://")
    user, _, hosts = rest.rpartition("@")
    user = user.partition(":")[0] or "postgres"
    if not hosts:
        user, hosts = "postgres", rest
    (tmp_path / "migrations").mkdir()
    (tmp_path / "monarch.toml").write_text(
        f'[environments.development]\nurl = "{scheme}://{user}:${{PG_PASSWORD}}@{hosts}"\n'
    )
    (tmp_path / "migrations" / "20260101000000_leaky.py").write_text(
        "import os\n\nfrom monarch import PostgresMigration\n\n\n"
        "class Leaky(PostgresMigration):\n"
        "    def run(self):\n"
        "        raise RuntimeError('cannot log in with ' + os.environ['PG_PASSWORD'])\n"
    )
    result = run_monarch("migrate", "development", cwd=tmp_path, env={"PG_PASSWORD": PASSWORD})
    assert result.returncode == 1
    assert "cannot log in with **redacted**" in result.stderr
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT * FROM monarch_migrations").fetchall()
    stored = repr(rows)
    assert "cannot log in with" in stored
    assert not [piece for piece in PIECES if piece in stored + result.stdout + result.stderr]

"""Bad input for the PostgreSQL engine: wrong or missing passwords, unreachable servers, missing
databases, missing or outdated client tools. Errors are clear, quick, and never show a secret."""

from __future__ import annotations

import io
import os
import stat
import time
from pathlib import Path

import psycopg
import pytest

from monarch.engines.base import Engine
from monarch.errors import BackupError, ConnectionFailed
from monarch.secrets import REDACTED
from tests.engines.conftest import PasswordServer, new_engine
from tests.engines.stream_helpers import copy_through_pipe
from tests.servers import PostgresServer
from tests.servers.ports import free_port

SECRET = "hunter2-Secret-42"


def fake_tool(folder: Path, name: str, body: str) -> Path:
    """An executable shell script ``folder/name``."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_an_unreachable_server_fails_within_seconds_naming_host_and_database() -> None:
    port = free_port()  # nothing listens there
    engine = new_engine(f"postgresql://app:{SECRET}@127.0.0.1:{port}/shop")
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as caught:
        engine.server_info()
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "'shop'" in message
    assert "Connection refused" in message
    assert SECRET not in message and SECRET not in str(caught.value.hint)
    assert "server is running" in str(caught.value.hint)


def test_a_database_that_does_not_exist_is_named_with_how_to_create_it(
    postgres_server: PostgresServer,
) -> None:
    engine = new_engine(postgres_server.database_url("no_such_db"))
    with pytest.raises(ConnectionFailed, match="database 'no_such_db' does not exist") as caught:
        engine.history().records()
    assert "createdb" in str(caught.value.hint) and "no_such_db" in str(caught.value.hint)


def test_a_wrong_password_is_refused_without_showing_it(password_server: PasswordServer) -> None:
    engine = new_engine(password_server.url(SECRET))
    with pytest.raises(ConnectionFailed, match="refused the credentials") as caught:
        engine.server_info()
    assert SECRET not in str(caught.value) and SECRET not in str(caught.value.hint)
    assert "password" in str(caught.value.hint)


def test_a_missing_password_is_reported_as_a_credentials_problem(
    password_server: PasswordServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    url = password_server.url().replace(f":{password_server.password}@", "@")
    with pytest.raises(ConnectionFailed, match="refused the credentials"):
        new_engine(url).server_info()


def test_a_password_from_a_pgpassfile_serves_the_engine_and_pg_dump(
    password_server: PasswordServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    passfile = tmp_path / "pgpass"
    server = password_server
    passfile.write_text(f"{server.host}:{server.port}:*:{server.user}:{server.password}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    engine = new_engine(server.url().replace(f":{server.password}@", "@"))
    try:
        assert engine.server_info().engine == "postgres"
        out = io.BytesIO()
        engine.dump(out)
        assert out.getvalue().startswith(b"PGDMP")
    finally:
        engine.close()


def test_pg_dump_and_pg_restore_get_the_password_in_their_environment_never_argv(
    password_server: PasswordServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = password_server
    bin_dir = tmp_path / "bin"
    for tool in ("pg_dump", "pg_restore"):
        fake_tool(
            bin_dir,
            tool,
            f'printf "%s\\n" "$0" "$@" >> {tmp_path}/argv\n'
            f'printf "%s\\n" "$PGPASSWORD" >> {tmp_path}/passwords\n'
            f'exec {server.bin_dir}/{tool} "$@"\n',
        )
    monkeypatch.setenv("MONARCH_PG_BIN", str(bin_dir))
    with psycopg.connect(server.url(), autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS pw_source WITH (FORCE)")
        admin.execute("DROP DATABASE IF EXISTS pw_target WITH (FORCE)")
        admin.execute("CREATE DATABASE pw_source")
    with psycopg.connect(server.url(database="pw_source"), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)")
    source = new_engine(server.url(database="pw_source"))
    target = new_engine(server.url(database="pw_target"))
    try:
        out = io.BytesIO()
        source.dump(out)
        target.restore(io.BytesIO(out.getvalue()))
        copy_through_pipe(source, target)
    finally:
        source.close()
        target.close()
    with psycopg.connect(server.url(database="pw_target")) as conn:
        assert conn.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,)]
    argv = (tmp_path / "argv").read_text()
    assert "pg_dump" in argv and "pg_restore" in argv
    assert server.password not in argv
    assert set((tmp_path / "passwords").read_text().split()) == {server.password}


def test_a_missing_pg_dump_is_reported_with_what_to_install(
    pg: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MONARCH_PG_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackupError, match="pg_dump is not installed") as caught:
        pg.dump(io.BytesIO())
    assert "postgresql-client-15" in str(caught.value.hint)
    assert "MONARCH_PG_BIN" in str(caught.value.hint)


def test_monarch_pg_bin_without_the_tool_is_an_error(
    pg: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MONARCH_PG_BIN", str(tmp_path))
    with pytest.raises(BackupError, match=f"MONARCH_PG_BIN is {tmp_path}, which holds no"):
        pg.dump(io.BytesIO())


def test_a_pg_dump_older_than_the_server_is_refused_with_what_to_install(
    pg: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_tool(tmp_path, "pg_dump", 'echo "pg_dump (PostgreSQL) 11.22"\n')
    monkeypatch.setenv("MONARCH_PG_BIN", str(tmp_path))
    out = io.BytesIO()
    with pytest.raises(BackupError, match="older than the server") as caught:
        pg.dump(out)
    assert "postgresql-client-15" in str(caught.value.hint)
    assert out.getvalue() == b""


def test_a_failing_pg_dump_is_an_error_with_its_stderr_scrubbed_of_secrets(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_tool(
        tmp_path,
        "pg_dump",
        f'[ "$1" = --version ] && exec {postgres_server.bin_dir}/pg_dump --version\n'
        'printf "PGDMP partial output"\n'
        'echo "pg_dump: error: something broke for password $PGPASSWORD" >&2\n'
        "exit 1\n",
    )
    monkeypatch.setenv("MONARCH_PG_BIN", str(tmp_path))
    # The shared server trusts everyone: the password is only there to be kept secret.
    url = postgres_server.uri.replace("postgres@", f"postgres:{SECRET}@")
    engine = new_engine(url)
    try:
        with pytest.raises(BackupError, match="pg_dump failed") as caught:
            engine.dump(io.BytesIO())
    finally:
        engine.close()
    message = str(caught.value)
    assert "exit status 1" in message and "something broke" in message
    assert SECRET not in message and REDACTED in message


def test_no_secret_reaches_the_environment_of_the_test_process(
    password_server: PasswordServer,
) -> None:
    # The engine passes passwords to children only: monarch's own environment is untouched.
    engine = new_engine(password_server.url())
    try:
        engine.server_info()
    finally:
        engine.close()
    assert password_server.password not in "".join(os.environ.values())

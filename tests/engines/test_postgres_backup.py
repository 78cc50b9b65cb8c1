"""PostgreSQL dump, restore and copy (dump piped into restore) against the real server: exact
round trips, and a target that stays as it was whenever a restore cannot finish."""

from __future__ import annotations

import io
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from monarch.engines.base import RestoreStats, StreamCheck
from monarch.engines.postgres.lock import advisory_key
from monarch.engines.postgres.swap import leftover_prefix
from monarch.errors import BackupError, RestoreBusy, UsageError
from monarch.history import APPLIED, LockOwner, Record
from monarch.progress import Item
from tests.engines.conftest import environment, new_engine
from tests.engines.pg_helpers import contents, databases, execute, fill_old, fill_rich, schema_dump
from tests.engines.stream_helpers import Counter, copy_through_pipe
from tests.servers import PostgresServer


@pytest.fixture
def make_db(postgres_server: PostgresServer) -> Iterator[Any]:
    """``make_db()`` creates a fresh database and returns its URL; all are dropped afterwards."""
    names: list[str] = []

    def make(create: bool = True) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        names.append(name)
        if create:
            return postgres_server.create_database(name)
        return postgres_server.database_url(name)

    yield make
    for name in names:
        postgres_server.drop_database(name)


def dump_of(url: str) -> bytes:
    out = io.BytesIO()
    engine = new_engine(url)
    progress = Counter()
    try:
        engine.dump(out, progress=progress)
    finally:
        engine.close()
    database = engine.environment.database
    assert progress.bytes[database] == len(out.getvalue()) > 0
    return out.getvalue()


def restore(url: str, data: bytes, **options: Any) -> RestoreStats:
    engine = new_engine(url)
    try:
        return engine.restore(io.BytesIO(data), **options)
    finally:
        engine.close()


def tables(result: RestoreStats) -> tuple[str, ...]:
    return tuple(c.name for c in result.collections)


def test_restore_gives_the_target_exactly_the_backup(
    make_db: Any, postgres_server: PostgresServer
) -> None:
    source, target = make_db(), make_db()
    fill_rich(source)
    fill_old(target)
    result = restore(target, dump_of(source))
    assert contents(target) == contents(source)
    assert schema_dump(postgres_server.bin_dir, target) == schema_dump(
        postgres_server.bin_dir, source
    )
    # What only the old target had is gone: its schema, table, function.
    assert "legacy.things" in result.dropped
    assert execute(target, "SELECT to_regnamespace('legacy'), to_regproc('public.legacy_fn')") == [
        (None, None)
    ]
    # "dropped" names what the target held before: it existed, and was not created.
    assert "shop.orders" in tables(result) and result.dropped
    assert not [name for name in databases(postgres_server.uri) if "__monarch_" in name]


def test_copy_makes_the_target_an_exact_copy(make_db: Any, postgres_server: PostgresServer) -> None:
    source, target = make_db(), make_db()
    fill_rich(source)
    fill_old(target)
    result = copy_through_pipe(new_engine(source), new_engine(target))
    assert "legacy.things" in result.dropped
    assert contents(target) == contents(source)
    assert schema_dump(postgres_server.bin_dir, target) == schema_dump(
        postgres_server.bin_dir, source
    )


def test_restore_into_a_database_that_does_not_exist_creates_it(
    make_db: Any, postgres_server: PostgresServer
) -> None:
    source, target = make_db(), make_db(create=False)
    fill_rich(source)
    name = target.rsplit("/", 1)[1]
    assert name not in databases(postgres_server.uri)
    result = restore(target, dump_of(source))
    assert name in databases(postgres_server.uri) and result.dropped == ()
    assert contents(target) == contents(source)


def test_restore_keeps_the_targets_own_settings_grants_owner_and_comment(make_db: Any) -> None:
    source, target = make_db(), make_db()
    name = target.rsplit("/", 1)[1]
    role = f"reader_{uuid.uuid4().hex[:8]}"
    fill_rich(source)
    execute(target, f'CREATE ROLE "{role}"')
    try:
        execute(target, f"ALTER DATABASE \"{name}\" SET work_mem = '8MB'")
        execute(target, f'ALTER DATABASE "{name}" SET search_path = "$user", public, shop')
        execute(target, f'ALTER ROLE "{role}" IN DATABASE "{name}" SET statement_timeout = 5000')
        execute(target, f"COMMENT ON DATABASE \"{name}\" IS 'the app''s database'")
        execute(target, f'GRANT CONNECT, TEMPORARY ON DATABASE "{name}" TO "{role}"')
        execute(target, f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC')
        execute(target, f'ALTER DATABASE "{name}" CONNECTION LIMIT 50')
        query = (
            "SELECT d.datacl::text, d.datconnlimit, shobj_description(d.oid, 'pg_database'), "
            "(SELECT array_agg(coalesce(r.rolname, '-') || ':' || s.setconfig::text ORDER BY 1) "
            " FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole "
            " WHERE s.setdatabase = d.oid), pg_get_userbyid(d.datdba), d.datcollate "
            "FROM pg_database d WHERE d.datname = %s"
        )
        before = execute(source, query, (name,))
        restore(target, dump_of(source))
        assert execute(source, query, (name,)) == before
        assert execute(target, "SHOW search_path") == [('"$user", public, shop',)]
    finally:
        execute(source, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        execute(source, f'DROP ROLE "{role}"')


def test_restore_ends_other_sessions_on_the_target(make_db: Any) -> None:
    source, target = make_db(), make_db()
    fill_rich(source)
    app = psycopg.connect(target, autocommit=True)
    try:
        restore(target, dump_of(source))
        with pytest.raises(psycopg.OperationalError):
            app.execute("SELECT 1")
    finally:
        app.close()
    assert contents(target) == contents(source)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"not a dump at all" * 100, id="garbage"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_a_restore_that_fails_leaves_the_target_as_it_was(
    make_db: Any, postgres_server: PostgresServer, damage: Any
) -> None:
    source, target = make_db(), make_db()
    fill_rich(source, customers=500)
    fill_old(target)
    before = contents(target), schema_dump(postgres_server.bin_dir, target)
    with pytest.raises(BackupError, match="pg_restore"):
        restore(target, damage(dump_of(source)))
    assert (contents(target), schema_dump(postgres_server.bin_dir, target)) == before
    assert not [name for name in databases(postgres_server.uri) if "__monarch_" in name]


def test_a_second_restore_into_the_same_database_is_refused(
    make_db: Any, postgres_server: PostgresServer
) -> None:
    source, target = make_db(), make_db()
    fill_rich(source)
    fill_old(target)
    before = contents(target)
    name = target.rsplit("/", 1)[1]
    with psycopg.connect(postgres_server.uri, autocommit=True) as running:
        running.execute("SELECT pg_advisory_lock(%s)", (advisory_key(f"restore/{name}"),))
        with pytest.raises(RestoreBusy, match="another restore"):
            restore(target, dump_of(source))
    assert contents(target) == before


def test_databases_a_killed_restore_left_are_dropped_by_the_next(
    make_db: Any, postgres_server: PostgresServer
) -> None:
    source, target = make_db(), make_db()
    fill_rich(source)
    prefix = leftover_prefix(target.rsplit("/", 1)[1])
    left = {f"{prefix}restore_0badc0de", f"{prefix}old_0badc0de"}
    for name in left:
        postgres_server.create_database(name)
    engine = new_engine(target)
    try:
        message = engine.recover_restore()
        assert message is not None and all(name in message for name in left)
        assert engine.recover_restore() is None
    finally:
        engine.close()
    for name in left:
        postgres_server.create_database(name)
    result = restore(target, dump_of(source))
    assert result.recovered is not None
    assert not left & databases(postgres_server.uri)


def test_the_history_travels_with_a_dump_and_lock_rows_do_not(make_db: Any) -> None:
    source, target = make_db(), make_db()
    engine = new_engine(source)
    try:
        engine.history().save(Record(name="m1", state=APPLIED, checksum="a"))
        holder = LockOwner("t", "u", "h", 1, "migrate", "0")
        assert engine.migration_lock().try_acquire(holder, 60).acquired
        restore(target, dump_of(source))
    finally:
        engine.close()
    copy = new_engine(target)
    try:
        assert list(copy.history().records()) == ["m1"]
        assert copy.migration_lock().holder() is None
    finally:
        copy.close()


def test_restore_without_privileges_skips_the_dumps_grants(make_db: Any) -> None:
    source, target = make_db(), make_db()
    role = f"grantee_{uuid.uuid4().hex[:8]}"
    execute(source, f'CREATE ROLE "{role}"')
    try:
        execute(source, f'CREATE TABLE t (x int); GRANT SELECT ON t TO "{role}"')
        data = dump_of(source)
        restore(target, data, privileges=False)
        assert execute(target, "SELECT relacl FROM pg_class WHERE relname = 't'") == [(None,)]
        restore(target, data)
        acl = execute(target, "SELECT relacl::text FROM pg_class WHERE relname = 't'")
        assert role in acl[0][0]
    finally:
        execute(source, f'DROP DATABASE IF EXISTS "{target.rsplit("/", 1)[1]}" WITH (FORCE)')
        execute(source, f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')


def test_a_copy_from_another_engine_is_refused_and_the_target_stays_as_it_was(
    make_db: Any, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    # copy_db refuses two engines before any byte moves (tests/backups); below it, the target's
    # restore refuses a stream that is not its own format, and leaves the target as it was.
    target = make_db()
    fill_old(target)
    before = contents(target)
    lite = tmp_path / "x.db"
    with sqlite3.connect(lite) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    conn.close()
    with pytest.raises(BackupError, match="pg_restore"):
        copy_through_pipe(new_engine(f"sqlite:///{lite}"), new_engine(target))
    assert contents(target) == before
    assert not [name for name in databases(postgres_server.uri) if "__monarch_" in name]


def test_a_dump_names_its_format_and_versions(make_db: Any) -> None:
    url = make_db()
    fill_rich(url)
    engine = new_engine(url)
    progress = Counter()
    try:
        out = io.BytesIO()
        result = engine.dump(out, progress=progress, action="copy_db")
        server = engine.server_info()
    finally:
        engine.close()
    assert out.getvalue().startswith(b"PGDMP")
    assert engine.backup_format == "pg_dump-custom" and "PostgreSQL" in result.tool_version
    assert result.database == environment(url).database
    assert result.server == server
    # Every table, with the planner's statistics, as a table of an opaque stream.
    orders = {c.name: c for c in result.collections}["shop.orders"]
    assert (orders.type, orders.crc64) == ("table", 0)
    database = environment(url).database
    assert progress.started == [("copy_db", [Item(database, None, None, unit="database")])]
    assert progress.bytes == {database: len(out.getvalue())}
    assert progress.finished_items == [database] and not progress.finished


def test_a_dump_refuses_a_query_set(make_db: Any) -> None:
    engine = new_engine(make_db())
    out = io.BytesIO()
    with pytest.raises(UsageError, match="query set"):
        engine.dump(out, query_set=object())  # type: ignore[arg-type]
    assert out.getvalue() == b""


def test_a_restore_reads_only_a_byte_stream(make_db: Any) -> None:
    engine = new_engine(make_db())
    with pytest.raises(UsageError, match="byte stream"):
        engine.restore([b"PGDMP"])  # type: ignore[arg-type]


def test_restore_reports_the_bytes_it_reads_and_the_tables_it_holds(make_db: Any) -> None:
    source, target = make_db(), make_db()
    fill_rich(source)
    data = dump_of(source)
    progress = Counter()
    result = restore(target, data, progress=progress)
    database = environment(target).database
    assert progress.started == [("restore", [Item(database, None, None, unit="database")])]
    assert progress.bytes == {database: len(data)}
    assert progress.finished_items == [database] and not progress.finished
    assert result.database == database
    assert {c.type for c in result.collections} == {"table"}
    assert list(tables(result)) == sorted(tables(result)) and "shop.orders" in tables(result)


def test_before_swap_runs_once_all_is_loaded_and_raising_there_changes_nothing(
    make_db: Any, postgres_server: PostgresServer
) -> None:
    source, target = make_db(), make_db()
    fill_rich(source)
    fill_old(target)
    before = contents(target)
    seen: list[set[str]] = []

    def refuse() -> None:
        seen.append({name for name in databases(postgres_server.uri) if "__monarch_" in name})
        raise RuntimeError("not now")

    with pytest.raises(RuntimeError, match="not now"):
        restore(target, dump_of(source), before_swap=refuse)
    assert len(seen) == 1 and len(seen[0]) == 1  # called once, the scratch database loaded
    assert contents(target) == before
    assert not [name for name in databases(postgres_server.uri) if "__monarch_" in name]
    called: list[bool] = []
    restore(target, dump_of(source), before_swap=lambda: called.append(True))
    assert called == [True] and contents(target) == contents(source)


def test_check_reads_a_dump_with_pg_restore(make_db: Any) -> None:
    source = make_db()
    fill_rich(source)
    data = dump_of(source)
    engine = new_engine(source)
    sound = engine.check(io.BytesIO(data))
    assert sound == StreamCheck((), None, "pg_restore reading it")
    damaged = engine.check(io.BytesIO(data[: len(data) // 2]))
    assert damaged.checked == "pg_restore reading it" and damaged.collections is None
    assert len(damaged.problems) == 1 and "pg_restore cannot read" in damaged.problems[0]


def test_same_database_asks_the_server(make_db: Any, tmp_path: Path) -> None:
    url = make_db()
    engine = new_engine(url)
    assert engine.same_database(new_engine(url.replace("127.0.0.1", "localhost")))
    assert not engine.same_database(new_engine(make_db()))
    assert not engine.same_database(new_engine(f"sqlite:///{tmp_path / 'x.db'}"))

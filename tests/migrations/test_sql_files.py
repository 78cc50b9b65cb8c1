""".sql migration files without a database: sections and directives, statements cut the way
psql and SQLite cut them, and `generate` choosing the template from the environments' engine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import monarch
from monarch.config import config_from_dict
from monarch.engines.postgres.sql import split_postgres
from monarch.engines.sqlite.sql import split_sqlite
from monarch.engines.sqltext import has_sql
from monarch.errors import MigrationError, UsageError
from monarch.migrations.discovery import discover, load
from monarch.migrations.migration import Migration
from monarch.migrations.sqlfiles import SQLFileMigration, parse
from tests.migrations.driver import Driver

PG_URL = "postgresql://app@127.0.0.1:1/app"  # never connected to: generate only reads config


def texts(statements: list[object]) -> list[str]:
    return [s.text for s in statements]  # type: ignore[attr-defined]


def test_postgres_statements_end_at_semicolons_outside_quotes_comments_and_bodies() -> None:
    script = """
        -- a comment; not a statement
        CREATE TABLE t (a text DEFAULT 'x;y', "odd;name" int);  /* a /* nested; */ comment */
        INSERT INTO t VALUES (E'it\\'s; fine', 1);
        CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$
            BEGIN RETURN 1; END;
        $body$;
        DO $$ BEGIN PERFORM 1; END $$;
        CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC
            SELECT 1; SELECT CASE WHEN true THEN 2 END;
        END;
        CREATE RULE r AS ON INSERT TO t DO ALSO (NOTIFY a; NOTIFY b);
        SELECT $q$x;y$q$ = 'x' AS a$b$c;;
        SELECT 'last one has no semicolon'
    """
    found = texts(split_postgres(script))
    assert [s.split()[0] for s in found] == [
        "CREATE",
        "INSERT",
        "CREATE",
        "DO",
        "CREATE",
        "CREATE",
        "SELECT",
        "SELECT",
    ]
    assert found[0].endswith("int);")
    assert "RETURN 1; END;\n        $body$;" in found[2]
    assert found[4].rstrip().endswith("END;")
    assert found[5].endswith("NOTIFY b);")
    assert found[-1] == "SELECT 'last one has no semicolon'"


def test_statement_offsets_point_into_the_script() -> None:
    script = "-- intro\n\nSELECT 1;\n  /* c */ SELECT\n2;"
    for statement in split_postgres(script) + split_sqlite(script):
        assert script[statement.start :].startswith(statement.text)
    assert [s.start for s in split_postgres(script)] == [10, 30]


def test_sqlite_statements_follow_sqlites_own_tokenizer() -> None:
    script = """
        CREATE TABLE t (a TEXT DEFAULT 'x;y'); -- trailing; comment
        CREATE TRIGGER tr AFTER INSERT ON t BEGIN
            UPDATE t SET a = a || ';';
            SELECT CASE WHEN 1 THEN 2 END;
        END;
        ;
        SELECT "semi;colon" FROM t
    """
    found = texts(split_sqlite(script))
    assert len(found) == 3
    assert found[1].startswith("CREATE TRIGGER") and found[1].endswith("END;")
    assert found[2] == 'SELECT "semi;colon" FROM t'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", False),
        ("  -- only a comment\n/* and another */\n", False),
        ("-- c\nSELECT 1", True),
    ],
)
def test_has_sql_ignores_blanks_and_comments(text: str, expected: bool) -> None:
    assert has_sql(text) is expected


@pytest.mark.parametrize(
    ("statement", "controls"),
    [
        ("BEGIN;", True),
        ("commit", True),
        ("ROLLBACK;", True),
        ("ROLLBACK TO SAVEPOINT s;", False),
        ("SAVEPOINT s;", False),
        ("START TRANSACTION;", True),
        ("END;", True),
        ("CREATE TABLE begin_here (x int);", False),
    ],
)
def test_transaction_control_is_recognised(statement: str, controls: bool) -> None:
    [found] = split_postgres(statement)
    assert found.controls_transaction is controls


def test_a_file_is_split_at_its_rollback_line(tmp_path: Path) -> None:
    text = "-- header\nCREATE TABLE a (x int);\n\n  --  monarch:rollback  \nDROP TABLE a;\n"
    script = parse(tmp_path / "m.sql", text.encode())
    assert script.up.text == "-- header\nCREATE TABLE a (x int);\n\n"
    assert script.down is not None and script.down.text.strip() == "DROP TABLE a;"
    assert script.line_of(script.down.offset + script.down.text.index("DROP")) == 5
    assert script.transactional


def test_directives_are_found_in_a_file_with_windows_line_endings(tmp_path: Path) -> None:
    text = "-- monarch:transactional=false\r\nCREATE TABLE a (x int);\r\n-- monarch:rollback\r\n"
    script = parse(tmp_path / "m.sql", (text + "DROP TABLE a;\r\n").encode())
    assert not script.transactional
    assert script.down is not None and script.down.text.strip() == "DROP TABLE a;"


def test_transactional_false_is_read_from_its_directive(tmp_path: Path) -> None:
    script = parse(tmp_path / "m.sql", b"-- monarch:transactional=false\nVACUUM;\n")
    assert not script.transactional and script.down is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT 1;\n-- monarch: rollback below\n", "line 2: unknown monarch directive"),
        ("-- monarch:rolback\n", "line 1: unknown monarch directive '-- monarch:rolback'"),
        ("-- monarch:transactional=maybe\n", "unknown monarch directive"),
        ("-- monarch:rollback\n-- monarch:rollback\n", "line 2: a second `-- monarch:rollback`"),
        ("-- monarch:rollback\n-- monarch:transactional=false\n", "must come before"),
    ],
)
def test_malformed_directives_are_errors_naming_the_line(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(MigrationError, match=re.escape(message)):
        parse(tmp_path / "m.sql", text.encode())


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="not UTF-8"):
        parse(tmp_path / "m.sql", b"SELECT '\xff';")


def test_a_file_holding_a_nul_character_is_refused_naming_the_line(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match=r"m.sql, line 2: a NUL character.*nothing was run"):
        parse(tmp_path / "m.sql", b"SELECT 1;\nSELECT '\x00';\n")


def test_sql_files_are_discovered_in_order_with_the_python_ones(tmp_path: Path) -> None:
    (tmp_path / "20240101000002_b.sql").write_text("SELECT 1;\n-- monarch:rollback\n")
    (tmp_path / "20240101000001_a.py").write_text(
        "from monarch import SQLiteMigration\nclass M(SQLiteMigration):\n    pass\n"
    )
    (tmp_path / "20240101000003_c.sql").write_text("SELECT 1;\n-- monarch:rollback\nSELECT 2;")
    (tmp_path / "_helper.sql").write_text("not a migration")
    files = discover(tmp_path)
    assert [f.name for f in files] == ["20240101000001_a", "20240101000002_b", "20240101000003_c"]
    sql = files[1].cls
    assert issubclass(sql, SQLFileMigration) and sql.transactional
    assert sql.runs_on("postgres") and sql.runs_on("sqlite") and not sql.runs_on("mongo")
    assert not sql.has_rollback(), "a rollback section without statements is no rollback"
    assert files[2].cls.has_rollback()
    assert files[0].cls.runs_on("sqlite") and not files[0].cls.runs_on("postgres")


def test_a_misnamed_sql_file_is_an_error_and_shares_the_timestamp_rule(tmp_path: Path) -> None:
    (tmp_path / "schema.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"schema\.sql: not a migration file name"):
        discover(tmp_path)
    (tmp_path / "schema.sql").unlink()
    (tmp_path / "20240101000001_a.py").write_text("")
    (tmp_path / "20240101000001_a.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share the timestamp"):
        discover(tmp_path)


def _config(tmp_path: Path, **urls: str) -> monarch.Config:
    environments = {name: {"url": url} for name, url in urls.items()}
    data = {"migrations": "migrations", "environments": environments}
    return config_from_dict(data, tmp_path / "monarch.toml", {}, root=tmp_path)


@pytest.mark.parametrize(
    ("url", "base"),
    [
        (PG_URL, "PostgresMigration"),
        ("sqlite:///app.db", "SQLiteMigration"),
        ("mongodb://127.0.0.1:1/app", "MongoBackedMigration"),
    ],
)
def test_generate_writes_the_template_of_the_environments_engine(
    tmp_path: Path, url: str, base: str
) -> None:
    config = _config(tmp_path, development=url, production=url)
    path = monarch.generate(config, "add_users")
    assert f"class AddUsersMigration({base}):" in path.read_text()
    loaded = load(path)
    assert loaded.cls.__name__ == "AddUsersMigration" and not loaded.cls.has_rollback()


def test_generate_with_mixed_engines_needs_engine(tmp_path: Path) -> None:
    config = _config(tmp_path, production=PG_URL, local="sqlite:///app.db")
    with pytest.raises(UsageError, match="different engines") as caught:
        monarch.generate(config, "add_users")
    assert caught.value.hint == "pass --engine (postgres | sqlite)"
    path = monarch.generate(config, "add_users", engine="sqlite")
    assert "SQLiteMigration" in path.read_text()


def test_generate_sql_writes_a_sql_file_with_a_rollback_section(tmp_path: Path) -> None:
    config = _config(tmp_path, production=PG_URL, local="sqlite:///app.db")
    path = monarch.generate(config, "add_users", sql=True)
    assert re.fullmatch(r"\d{14}_add_users\.sql", path.name)
    text = path.read_text()
    assert "\n-- monarch:rollback\n" in text
    script = parse(path, path.read_bytes())
    assert not has_sql(script.up.text) and script.transactional
    loaded = load(path)
    assert not loaded.cls.has_rollback()


def test_generate_sql_is_refused_for_mongodb(tmp_path: Path) -> None:
    config = _config(tmp_path, development="mongodb://127.0.0.1:1/app")
    with pytest.raises(UsageError, match="other environments: development \\(MongoDB\\)"):
        monarch.generate(config, "add_users", sql=True)
    with pytest.raises(UsageError, match="not on MongoDB"):
        monarch.generate(config, "add_users", engine="mongo", sql=True)
    assert not (tmp_path / "migrations").exists() or not list((tmp_path / "migrations").iterdir())


def test_cli_generate_takes_engine_and_sql(tmp_path: Path) -> None:
    class Here(Driver):
        root = tmp_path
        spawned = []  # noqa: RUF012 - one throwaway instance

    (tmp_path / "monarch.toml").write_text(
        f'[environments.a]\nurl = "{PG_URL}"\n[environments.b]\nurl = "sqlite:///b.db"\n'
    )
    refused = Here().cli("generate", "first")
    assert refused.code == 2
    assert "different engines (PostgreSQL: a; SQLite: b)" in refused.stderr
    assert "Try: pass --engine (postgres | sqlite)" in refused.stderr
    made = Here().cli("generate", "first", "--engine", "postgres")
    assert made.code == 0, made.output
    assert "PostgresMigration" in next((tmp_path / "migrations").glob("*_first.py")).read_text()
    made = Here().cli("generate", "--sql", "second")
    assert made.code == 0, made.output
    assert re.search(r"created .*\d{14}_second\.sql", made.stdout)


def test_migration_kinds_name_their_base_class() -> None:
    class Plain(Migration):
        pass

    assert Plain.kind() == "a migration" and Plain.runs_on("mongo")
    assert monarch.PostgresMigration.kind() == "a PostgresMigration"
    assert SQLFileMigration.kind() == "an SQL migration"

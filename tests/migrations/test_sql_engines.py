"""Migrations on PostgreSQL and SQLite, through the CLI, against the test command's PostgreSQL
server and real SQLite files: Python and SQL migrations, one transaction per migration with its
record, failures, migrate_one, rollback, dry runs, protected environments, drift, out of order,
the lock, and refusals of migrations written for another engine."""

from __future__ import annotations

import json

import pytest

from monarch.engines import engine_for
from monarch.history import LockOwner
from monarch.migrations.discovery import checksum
from tests.migrations.conftest import Project, SQLProject

A, B, C, D = (
    "20240101000001_first",
    "20240101000002_second",
    "20240101000003_third",
    "20240101000004_fourth",
)


def applied_lines(output: str) -> list[str]:
    return [line.split()[1] for line in output.splitlines() if line.startswith("applied")]


def test_migrate_runs_python_and_sql_migrations_in_order_each_once(
    sql_project: SQLProject,
) -> None:
    sql_project.counting(C)
    sql_project.counting_sql(B)
    sql_project.counting(A)
    result = sql_project.cli("migrate", "development")
    assert result.code == 0, result.output
    assert applied_lines(result.stdout) == [A, B, C]
    assert sql_project.runs() == {A: 1, B: 1, C: 1}
    again = sql_project.cli("migrate", "development")
    assert again.code == 0 and "up to date" in again.stdout
    assert sql_project.runs() == {A: 1, B: 1, C: 1}


def test_each_migration_is_recorded_in_the_monarch_migrations_table(
    sql_project: SQLProject,
) -> None:
    path = sql_project.counting_sql(A)
    assert sql_project.cli("migrate", "development").code == 0
    record = sql_project.records()[A]
    assert record["state"] == "applied" and record["action"] == "migrate"
    assert record["checksum"] == checksum(path.read_bytes())
    assert record["run_count"] == 1 and record["error"] is None
    assert record["user"] and record["host"] and record["pid"] > 0
    assert record["started_at"] and record["finished_at"] and record["applied_at"]
    assert bool(record["transactional"]) is True


def test_migration_gets_conn_env_name_and_a_logger(sql_project: SQLProject) -> None:
    p = sql_project.param
    sql_project.write(
        A,
        f"""
        self.log.info("hello from %s", self.name)
        self.conn.execute("CREATE TABLE seen (env text, name text, logger text)")
        self.conn.execute("INSERT INTO seen VALUES ({p}, {p}, {p})",
                          (self.env, self.name, self.log.name))
        """,
    )
    result = sql_project.cli("migrate", "development")
    assert result.code == 0, result.output
    assert f"hello from {A}" in result.stderr
    assert sql_project.query("SELECT * FROM seen") == [("development", A, f"monarch.migration.{A}")]


def test_a_failing_migration_rolls_back_together_with_its_record(sql_project: SQLProject) -> None:
    sql_project.counting(A)
    sql_project.write(
        B,
        """
        self.conn.execute("CREATE TABLE half (x integer)")
        self.conn.execute("INSERT INTO half VALUES (1)")
        raise ValueError("boom after the writes")
        """,
    )
    sql_project.counting(C)
    result = sql_project.cli("migrate", "development")
    assert result.code == 1
    assert f"Error: migration {B} failed: ValueError: boom after the writes" in result.stderr
    assert "1 later migration(s) were not run" in result.stderr
    assert "half" not in sql_project.tables(), "the migration's writes were not rolled back"
    assert sql_project.runs() == {A: 1}
    records = sql_project.records()
    assert records[B]["state"] == "failed"
    assert records[B]["error"].startswith("ValueError: boom after the writes")
    assert C not in records
    sql_project.counting(B)  # the fix
    assert sql_project.cli("migrate", "development").code == 0
    assert sql_project.runs() == {A: 1, B: 1, C: 1}
    assert sql_project.records()[B]["run_count"] == 2


def test_a_sql_syntax_error_names_the_file_and_line_and_applies_nothing_of_it(
    sql_project: SQLProject,
) -> None:
    sql_project.counting(A)
    sql_project.write_sql(
        B,
        """
        CREATE TABLE half (x integer);
        INSERT INTO half VALUES (1);
        CREAT TABLE oops (y integer);
        """,
    )
    result = sql_project.cli("migrate", "development")
    assert result.code == 1
    expected = (
        'syntax error at or near "CREAT"'
        if sql_project.engine == "postgres"
        else 'near "CREAT": syntax error'
    )
    assert f"migration {B} failed: SQLError: {B}.sql, line 3: {expected}" in result.stderr
    assert f"Try: fix {sql_project.migrations / B}.sql" in result.stderr
    assert "half" not in sql_project.tables()
    record = sql_project.records()[B]
    assert record["state"] == "failed" and f"{B}.sql, line 3" in record["error"]
    status = json.loads(sql_project.cli("list_migrations", "development", "--json").stdout)
    [second] = [m for m in status["migrations"] if m["name"] == B]
    assert second["state"] == "failed" and expected in second["detail"]


def test_a_database_error_names_the_statement_that_failed(sql_project: SQLProject) -> None:
    sql_project.write_sql(A, "CREATE TABLE t (x integer);\n\n\nCREATE TABLE t (x integer);")
    result = sql_project.cli("migrate", "development")
    assert result.code == 1
    assert f"{A}.sql, line 4:" in result.stderr and "already exists" in result.stderr
    assert sql_project.app_tables() == []


CONCURRENT_STEPS = {
    # Statements that refuse to run inside a transaction, and what the database then says.
    "postgres": (
        "CREATE TABLE t (x integer);\nCREATE INDEX CONCURRENTLY t_x ON t (x);",
        "cannot run inside a transaction block",
    ),
    "sqlite": ("CREATE TABLE t (x integer);\nCREATE INDEX t_x ON t (x);\nVACUUM;", "VACUUM"),
}


def test_a_non_transactional_sql_file_runs_outside_a_transaction(sql_project: SQLProject) -> None:
    statements, _ = CONCURRENT_STEPS[sql_project.engine]
    sql_project.write_sql(A, statements, header="-- monarch:transactional=false")
    result = sql_project.cli("migrate", "development")
    assert result.code == 0, result.output
    assert "t_x" in sql_project.indexes()
    record = sql_project.records()[A]
    assert record["state"] == "applied" and not record["transactional"]


def test_the_same_statements_in_a_transactional_file_fail_and_leave_nothing(
    sql_project: SQLProject,
) -> None:
    statements, complaint = CONCURRENT_STEPS[sql_project.engine]
    sql_project.write_sql(A, statements)
    result = sql_project.cli("migrate", "development")
    assert result.code == 1
    assert f"{A}.sql, line" in result.stderr and complaint in result.stderr
    assert "t" not in sql_project.tables()


@pytest.mark.parametrize("kind", ["sql", "python"])
def test_a_statement_refused_in_a_transaction_says_how_to_run_without_one(
    sql_project: SQLProject, kind: str
) -> None:
    statements, _ = CONCURRENT_STEPS[sql_project.engine]
    if kind == "sql":
        sql_project.write_sql(A, statements)
        how = "-- monarch:transactional=false"
    else:
        sql_project.write(A, "\n".join(f"self.conn.execute({s!r})"
                                       for s in statements.splitlines()))
        how = "transactional = False"

    result = sql_project.cli("migrate", "development")

    assert result.code == 1
    hint = result.stderr.split("Try:", 1)[1]
    assert "outside a transaction" in hint and how in hint and f"{A}." in hint


def test_a_non_transactional_python_migration_runs_outside_a_transaction(
    sql_project: SQLProject,
) -> None:
    statements, _ = CONCURRENT_STEPS[sql_project.engine]
    body = "\n".join(f"self.conn.execute({s!r})" for s in statements.splitlines())
    sql_project.write(A, body, attrs="transactional = False")
    result = sql_project.cli("migrate", "development")
    assert result.code == 0, result.output
    assert "t_x" in sql_project.indexes()
    assert sql_project.records()[A]["state"] == "applied"


def test_transaction_control_in_a_transactional_sql_file_is_refused_before_it_runs(
    sql_project: SQLProject,
) -> None:
    sql_project.write_sql(A, "CREATE TABLE a (x integer);\nCOMMIT;\nCREATE TABLE b (x integer);")
    result = sql_project.cli("migrate", "development")
    assert result.code == 1
    assert f"{A}.sql, line 2: `COMMIT` would end the transaction" in result.stderr
    assert sql_project.app_tables() == []
    assert sql_project.records()[A]["state"] == "failed"


def test_commit_inside_a_transactional_migration_is_refused_and_nothing_is_applied(
    sql_project: SQLProject,
) -> None:
    sql_project.write(A, 'self.conn.execute("CREATE TABLE a (x integer)")\nself.conn.commit()')
    result = sql_project.cli("migrate", "development")
    assert result.code == 1
    assert "commit()" in result.stderr
    assert sql_project.app_tables() == []
    assert sql_project.records()[A]["state"] == "failed"


@pytest.mark.parametrize("sql_project", ["sqlite"], indirect=True)
def test_executescript_which_would_commit_early_is_refused_in_a_transactional_migration(
    sql_project: SQLProject,
) -> None:
    sql_project.write(
        A,
        'self.conn.execute("CREATE TABLE a (x integer)")\n'
        'self.conn.executescript("CREATE TABLE b (x integer);")',
    )
    result = sql_project.cli("migrate", "development")
    assert result.code == 1
    assert "executescript(), which commits the open transaction first, cannot be used" in (
        result.stderr
    )
    assert sql_project.app_tables() == []
    assert sql_project.records()[A]["state"] == "failed"


def test_a_generated_sql_file_fails_until_it_is_written(sql_project: SQLProject) -> None:
    assert sql_project.cli("generate", "--sql", "add_users").code == 0
    result = sql_project.cli("migrate", "development")
    assert result.code == 1
    assert (
        "add_users.sql has no SQL statements to run yet (before its `-- monarch:rollback` line)"
    ) in result.stderr


def test_a_batched_non_transactional_migration_resumes_after_its_last_checkpoint(
    sql_project: SQLProject,
) -> None:
    with sql_project.connect() as conn:
        conn.execute("CREATE TABLE items (id integer PRIMARY KEY, n integer NOT NULL)")
        for i in range(1, 8):
            conn.execute(f"INSERT INTO items VALUES ({i}, 0)")
    p = sql_project.param
    # The pattern of docs/migrations.md; `n` counts visits, so a batch done twice shows.
    sql_project.write(
        A,
        f"""
        last = (self.load_checkpoint("items") or {{}}).get("id", 0)
        while True:
            rows = self.conn.execute(
                "UPDATE items SET n = n + 1 WHERE id IN "
                "(SELECT id FROM items WHERE id > {p} ORDER BY id LIMIT 2) RETURNING id",
                (last,),
            ).fetchall()
            if not rows:
                break
            last = max(row[0] for row in rows)
            self.save_checkpoint("items", {{"id": last}})
            if last >= 4:  # the first run fails after two batches
                marker = __import__("pathlib").Path({str(sql_project.root / "failed")!r})
                if not marker.exists():
                    marker.touch()
                    raise RuntimeError("stopped after two batches")
        """,
        attrs="transactional = False",
    )
    failed = sql_project.cli("migrate", "development")
    assert failed.code == 1 and "stopped after two batches" in failed.stderr
    assert sql_project.records()[A]["checkpoint"] == [{"key": "items", "id": 4}]
    result = sql_project.cli("migrate", "development")
    assert result.code == 0, result.output
    assert "(resumed from its checkpoint)" in result.stdout
    assert sql_project.query("SELECT id, n FROM items ORDER BY id") == [(i, 1) for i in range(1, 8)]


def test_migrate_one_runs_an_applied_migration_again_and_records_it(
    sql_project: SQLProject,
) -> None:
    sql_project.counting(A)
    sql_project.counting_sql(B)
    assert sql_project.cli("migrate", "development").code == 0
    result = sql_project.cli("migrate_one", "second", "development")
    assert result.code == 0, result.output
    assert sql_project.runs() == {A: 1, B: 2}
    assert sql_project.records()[B]["run_count"] == 2


def test_rollback_runs_sql_rollback_sections_and_rollback_methods_newest_first(
    sql_project: SQLProject,
) -> None:
    sql_project.counting(A)
    sql_project.counting(B)
    sql_project.counting_sql(C)
    assert sql_project.cli("migrate", "development").code == 0
    result = sql_project.cli("rollback", "development", "--steps", "2")
    assert result.code == 0, result.output
    rolled = [line.split()[2] for line in result.stdout.splitlines() if line.startswith("rolled")]
    assert rolled == [C, B]
    assert sql_project.undone() == {C: 1, B: 1}
    states = {name: r["state"] for name, r in sql_project.records().items()}
    assert states == {A: "applied", B: "rolled_back", C: "rolled_back"}
    assert sql_project.cli("migrate", "development").code == 0
    assert sql_project.runs() == {A: 1, B: 2, C: 2}


def test_rollback_is_refused_when_a_sql_file_has_no_rollback_statements(
    sql_project: SQLProject,
) -> None:
    sql_project.counting(A)
    sql_project.write_sql(B, "CREATE TABLE b (x integer);", down="-- nothing to undo yet")
    assert sql_project.cli("migrate", "development").code == 0
    before = sql_project.snapshot()
    result = sql_project.cli("rollback", "development", "--steps", "2")
    assert result.code == 1
    assert f"{B} has no statements after `-- monarch:rollback`; nothing was rolled back" in (
        result.stderr
    )
    assert sql_project.snapshot() == before


def test_a_failed_sql_rollback_keeps_the_migration_applied_in_the_database(
    sql_project: SQLProject,
) -> None:
    sql_project.write_sql(A, "CREATE TABLE a (x integer);", down="DROP TABLE a;\nDROP TABLE nope;")
    assert sql_project.cli("migrate", "development").code == 0
    result = sql_project.cli("rollback", "development")
    assert result.code == 1
    assert f"rollback of migration {A} failed: SQLError: {A}.sql, line 5:" in result.stderr
    assert "a" in sql_project.tables(), "the rollback's first statement was not rolled back"
    record = sql_project.records()[A]
    assert record["state"] == "failed" and record["action"] == "rollback"


def test_dry_run_prints_the_plan_and_changes_nothing(sql_project: SQLProject) -> None:
    sql_project.counting(A)
    sql_project.counting_sql(C)
    assert sql_project.cli("migrate", "development").code == 0
    sql_project.counting_sql(B)
    sql_project.counting(D)
    sql_project.counting(A, extra="pass  # drifted")
    before = sql_project.snapshot()
    result = sql_project.cli("migrate", "development", "--dry-run")
    assert result.code == 0, result.output
    assert "would run 2 migration(s)" in result.stdout
    assert f"migrate {B} (out of order: older than an applied migration; in a transaction)" in (
        result.stdout
    )
    assert f"{A} changed since it was applied" in result.stderr
    rolled = sql_project.cli("rollback", "development", "--steps", "2", "--dry-run")
    assert rolled.code == 0 and f"roll back {C}" in rolled.stdout
    assert sql_project.snapshot() == before


def test_dry_run_on_an_untouched_database_creates_nothing(sql_project: SQLProject) -> None:
    sql_project.counting_sql(A)
    result = sql_project.cli("migrate", "development", "--dry-run")
    assert result.code == 0, result.output
    assert sql_project.cli("list_migrations", "development").code == 0
    if sql_project.engine == "sqlite":
        assert not (sql_project.root / "app.db").exists()
    assert sql_project.tables() == []


PROTECTED = [
    ["migrate", "production"],
    ["migrate_one", A, "production"],
    ["rollback", "production"],
    ["unlock", "production", "--yes"],
]


def test_a_protected_environment_is_refused_without_its_name_and_nothing_changes(
    sql_project: SQLProject,
) -> None:
    sql_project.counting(A)
    assert sql_project.cli("migrate", "development").code == 0
    sql_project.counting_sql(B)
    before = sql_project.snapshot()
    for command in PROTECTED:
        refused = sql_project.cli(*command)
        assert refused.code == 2, command
        assert "environment 'production' is protected" in refused.stderr
        wrong = sql_project.cli(*command, "--confirm", "prod")
        assert wrong.code == 2 and "does not match" in wrong.stderr
    assert sql_project.snapshot() == before
    confirmed = sql_project.cli("migrate", "production", "--confirm", "production")
    assert confirmed.code == 0, confirmed.output
    assert sql_project.runs() == {A: 1, B: 1}


def test_drift_is_a_warning_and_strict_refuses_before_anything_runs(
    sql_project: SQLProject,
) -> None:
    path = sql_project.counting_sql(A)
    assert sql_project.cli("migrate", "development").code == 0
    path.write_text(path.read_text() + "-- edited after it was applied\n")
    sql_project.counting(B)
    strict = sql_project.cli("migrate", "development", "--strict")
    assert strict.code == 1 and "changed since they were applied" in strict.stderr
    assert sql_project.runs() == {A: 1}
    result = sql_project.cli("migrate", "development")
    assert result.code == 0
    assert f"Warning: {A} changed since it was applied" in result.stderr
    assert sql_project.runs() == {A: 1, B: 1}


def test_a_pending_migration_older_than_an_applied_one_runs_out_of_order(
    sql_project: SQLProject,
) -> None:
    sql_project.counting(A)
    sql_project.counting(C)
    assert sql_project.cli("migrate", "development").code == 0
    sql_project.counting_sql(B)
    assert "will run out of order" in sql_project.cli("list_migrations", "development").stdout
    result = sql_project.cli("migrate", "development")
    assert result.code == 0, result.output
    [line] = [line for line in result.stdout.splitlines() if B in line]
    assert "ran out of order" in line
    assert bool(sql_project.records()[B]["out_of_order"]) is True


def test_list_migrations_json_gives_states_records_and_pending(sql_project: SQLProject) -> None:
    sql_project.counting(A)
    sql_project.write_sql(B, "SELECT * FROM no_such_table;")
    sql_project.counting(C)
    assert sql_project.cli("list_migrations", "development", "--check").code == 3
    sql_project.cli("migrate", "development")
    result = sql_project.cli("list_migrations", "development", "--json")
    assert result.code == 0, result.output
    data = json.loads(result.stdout)
    assert data["environment"] == "development" and data["lock"] is None
    assert {m["name"]: m["state"] for m in data["migrations"]} == {
        A: "applied",
        B: "failed",
        C: "pending",
    }
    assert data["pending"] == [B, C]
    first = data["migrations"][0]
    assert first["record"]["run_count"] == 1 and first["record"]["transactional"] is True
    assert data["migrations"][1]["file"] == str(sql_project.migrations / f"{B}.sql")


def test_a_held_lock_blocks_migrate_until_unlock_clears_it(sql_project: SQLProject) -> None:
    sql_project.counting(A)
    ghost = LockOwner("token-ghost", "ghost", "nowhere", 99999, "migrate development", "test")
    engine = engine_for(sql_project.config().environment("development"))
    try:
        assert engine.migration_lock().try_acquire(ghost, 600).acquired
        blocked = sql_project.cli("migrate", "development", "--lock-timeout", "0")
        assert blocked.code == 1
        assert "locked by ghost@nowhere (pid 99999" in blocked.stderr
        listed = sql_project.cli("list_migrations", "development")
        assert "Lock held: ghost@nowhere (pid 99999, `migrate development`)" in listed.stdout
        cleared = sql_project.cli("unlock", "development", "--yes")
        assert cleared.code == 0, cleared.output
        assert "Cleared the migration lock of development, held by ghost@nowhere" in (
            cleared.stdout
        )
        result = sql_project.cli("migrate", "development", "--lock-timeout", "0")
        assert result.code == 0, result.output
    finally:
        engine.close()
    assert sql_project.runs() == {A: 1}


def test_a_migration_of_another_engine_is_refused_before_anything_runs(
    sql_project: SQLProject,
) -> None:
    other = "SQLiteMigration" if sql_project.engine == "postgres" else "PostgresMigration"
    sql_project.counting(A)
    (sql_project.migrations / f"{B}.py").write_text(
        f"from monarch import {other}\n\nclass M({other}):\n    def run(self):\n        pass\n"
    )
    (sql_project.migrations / f"{C}.py").write_text(
        "from monarch import MongoMigration\n\nclass M(MongoMigration):\n    pass\n"
    )
    engine = "PostgreSQL" if sql_project.engine == "postgres" else "SQLite"
    for args in (["migrate", "development"], ["migrate", "development", "--dry-run"]):
        result = sql_project.cli(*args)
        assert result.code == 1
        assert (
            f"{B}.py is a {other}; {C}.py is a MongoMigration, which cannot run on "
            f"environment 'development': it is a {engine} database; nothing was run"
        ) in result.stderr
    assert sql_project.tables() == []


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_sql_migration_on_a_mongodb_environment_is_refused_before_anything_runs(
    project: Project, dry_run: bool
) -> None:
    project.counting(A)
    (project.migrations / f"{B}.sql").write_text("CREATE TABLE t (x integer);\n")
    result = project.cli("migrate", "development", *(["--dry-run"] if dry_run else []))
    assert result.code == 1
    assert (
        f"Error: {B}.sql is an SQL migration, which cannot run on environment 'development': "
        "it is a MongoDB database; nothing was run"
    ) in result.stderr
    assert "Try: write it as a MongoDB migration (`monarch generate --engine mongo NAME`)" in (
        result.stderr
    )
    assert project.runs() == {}
    assert project.db.list_collection_names() == []

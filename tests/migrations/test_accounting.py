"""Write accounting in every ``migrate``: what each migration inserted, matched, modified,
upserted and deleted per collection or table, and the indexes it created or dropped, counted
from the server's replies (MongoDB, on the test's FerretDB) and the statements' row counts
(PostgreSQL, SQLite), kept in its history record and shown by ``list_migrations``."""

from __future__ import annotations

import json
from typing import Any

from monarch.accounting import Accounting, Counts, parse_statement, statement_counts
from monarch.history import Record
from tests.migrations.conftest import Project, SQLProject

A, B, C = "20240101000001_first", "20240101000002_second", "20240101000003_third"


def listed(project: Project | SQLProject) -> dict[str, dict[str, Any]]:
    """``list_migrations --json``'s migrations by name."""
    result = project.cli("list_migrations", "development", "--json")
    assert result.code == 0, result.output
    return {m["name"]: m for m in json.loads(result.stdout)["migrations"]}


def by_target(value: list[dict[str, Any]] | None) -> dict[str, dict[str, int]] | None:
    """The stored list of ``{"target": name, counter: n}`` as ``{name: {counter: n}}``."""
    if value is None:
        return None
    assert all(set(item) - {"target"} for item in value)  # no target without a count
    return {item["target"]: {k: v for k, v in item.items() if k != "target"} for item in value}


def written(project: Project | SQLProject, name: str) -> dict[str, dict[str, int]] | None:
    """What ``list_migrations --json`` says the last run of ``name`` wrote."""
    return by_target(listed(project)[name]["record"]["accounting"])


def migrate(project: Project | SQLProject) -> None:
    result = project.cli("migrate", "development")
    assert result.code == 0, result.output


# MongoDB ---------------------------------------------------------------------------------


def test_inserts_updates_upserts_and_deletes_are_counted_per_collection(project: Project) -> None:
    project.write(
        A,
        """
        self.db.users.insert_many([{"_id": i, "n": i % 3} for i in range(10)])
        self.db.users.insert_one({"_id": 10, "n": 0})
        self.db.users.update_many({"n": 0}, {"$set": {"zero": True}})
        self.db.users.update_many({"n": 1}, {"$set": {"n": 1}})
        self.db.users.update_one({"_id": 99}, {"$set": {"n": 5}}, upsert=True)
        self.db.users.replace_one({"_id": 2}, {"n": 20})
        self.db.users.delete_many({"n": 1})
        self.db.logs.insert_one({"msg": "x"})
        self.db.logs.delete_one({"msg": "x"})
        """,
    )
    migrate(project)
    assert written(project, A) == {
        # matched: 5 with n=0 and 3 with n=1 (which stay the same) by update_many, 1 by
        # replace_one; modified: the 5 given `zero` and the replaced one.
        "users": {"inserted": 11, "matched": 9, "modified": 6, "upserted": 1, "deleted": 3},
        "logs": {"inserted": 1, "deleted": 1},
    }


def test_bulk_write_find_one_and_and_batches_are_counted(project: Project) -> None:
    project.db.items.insert_many([{"_id": i, "v": i} for i in range(25)])
    project.write(
        A,
        """
        self.db.items.bulk_write([
            InsertOne({"_id": 100, "v": 100}),
            UpdateOne({"_id": 1}, {"$set": {"v": -1}}),
            UpdateMany({"v": {"$gte": 20}}, {"$inc": {"v": 1}}),
            ReplaceOne({"_id": 200}, {"v": 200}, upsert=True),
            DeleteOne({"_id": 0}),
            DeleteMany({"v": {"$lt": 0}}),
        ])
        self.db.items.find_one_and_update({"_id": 2}, {"$set": {"v": 2}})
        self.db.items.find_one_and_update({"_id": 300}, {"$set": {"v": 3}}, upsert=True)
        self.db.items.find_one_and_delete({"_id": 3})
        for batch in self.batches("items", {"_id": {"$lt": 100}}, size=7):
            for doc in batch:
                self.db.seen.update_one({"_id": doc["_id"]}, {"$set": {"v": doc["v"]}},
                                        upsert=True)
        """,
        header="from pymongo import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, "
        "UpdateOne",
    )
    migrate(project)
    left = project.db.items.count_documents({"_id": {"$lt": 100}})
    assert left == 22  # 25, less _id 0, 1 (set to -1, then deleted) and 3
    assert written(project, A) == {
        "items": {
            "inserted": 1,
            # UpdateOne 1 + UpdateMany 6 (20..24 and the inserted 100) + find_one_and_update 1
            "matched": 8,
            "modified": 7,
            "upserted": 2,  # ReplaceOne's and find_one_and_update's
            "deleted": 3,  # DeleteOne, DeleteMany (the -1), find_one_and_delete
        },
        "seen": {"upserted": left},
    }


def test_indexes_created_and_dropped_are_counted_and_monarchs_own_writes_are_not(
    project: Project,
) -> None:
    project.write(
        A,
        """
        self.db.people.insert_one({"email": "a@b", "age": 3})
        self.db.people.create_index("email", unique=True)
        self.db.people.create_indexes([IndexModel("age"), IndexModel([("email", 1), ("age", 1)])])
        self.db.people.create_index("email", unique=True)  # exists: nothing created
        self.db.people.drop_index("age_1")
        self.save_checkpoint("people", {"done": 1})
        self.db.create_collection("empty")
        self.db.drop_collection("empty")
        """,
        header="from pymongo import IndexModel",
    )
    migrate(project)
    assert written(project, A) == {
        "people": {"inserted": 1, "indexes_created": 3, "indexes_dropped": 1},
        "empty": {"created": 1, "dropped": 1},
    }


def test_writes_from_the_migrations_own_threads_and_other_databases_count(
    project: Project,
) -> None:
    other = f"{project.db.name}_other"
    project.write(
        A,
        f"""
        def write(n):
            self.db.parallel.insert_one({{"_id": n}})
        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.client[{other!r}].elsewhere.insert_one({{"x": 1}})
        """,
        header="import threading",
    )
    try:
        migrate(project)
        assert written(project, A) == {
            "parallel": {"inserted": 4},
            f"{other}.elsewhere": {"inserted": 1},
        }
    finally:
        project.db.client.drop_database(other)


def test_a_failed_migrations_record_keeps_what_it_wrote_before_failing(project: Project) -> None:
    project.write(A, 'self.db.t.insert_many([{"x": 1}, {"x": 2}])\nraise ValueError("boom")')
    result = project.cli("migrate", "development")
    assert result.code != 0
    record = listed(project)[A]["record"]
    assert record["state"] == "failed"
    assert record["accounting"] == [{"target": "t", "inserted": 2}]


def test_a_rollback_records_what_it_wrote_and_writes_outside_a_run_are_not_counted(
    project: Project,
) -> None:
    project.write(
        A, 'self.db.t.insert_one({"_id": 1})', rollback='self.db.t.delete_one({"_id": 1})'
    )
    project.db.t.insert_one({"_id": "before"})
    migrate(project)
    project.db.t.insert_one({"_id": "after"})
    assert written(project, A) == {"t": {"inserted": 1}}
    rolled = project.cli("rollback", "development", "--yes")
    assert rolled.code == 0, rolled.output
    assert written(project, A) == {"t": {"deleted": 1}}


def test_records_from_before_accounting_still_list(project: Project) -> None:
    project.write(A, "pass")
    project.write(B, 'self.db.t.insert_one({"_id": 1})')
    migrate(project)
    assert written(project, A) == {}
    # As a record written before monarch counted writes looks: no accounting field at all.
    project.db.monarch_migrations.update_one({"_id": A}, {"$unset": {"accounting": ""}})
    assert written(project, A) is None
    text = project.cli("list_migrations", "development", "--verbose")
    assert text.code == 0, text.output
    assert f"{A}: no write accounting (recorded before monarch counted)" in text.stdout
    assert f"{B}: its last run wrote\n    t: 1 inserted" in text.stdout
    assert "development is up to date." in text.stdout
    plain = project.cli("list_migrations", "development")
    assert "Writes" not in plain.stdout


# PostgreSQL and SQLite ---------------------------------------------------------------------


def test_sql_migration_rows_are_counted_per_table(sql_project: SQLProject) -> None:
    sql_project.write_sql(
        A,
        """
        CREATE TABLE items (id integer PRIMARY KEY, v integer);
        INSERT INTO items (id, v) VALUES (1, 1), (2, 2), (3, 3), (4, 4);
        UPDATE items SET v = v + 10 WHERE id <= 3;
        DELETE FROM items WHERE id = 4;
        INSERT INTO items (id, v) VALUES (1, 0), (5, 5) ON CONFLICT (id) DO UPDATE SET v = 0;
        CREATE INDEX items_v ON items (v);
        -- a comment first
        DROP INDEX items_v;
        SELECT count(*) FROM items;
        """,
    )
    migrate(sql_project)
    assert written(sql_project, A) == {
        "items": {"inserted": 4, "matched": 3, "modified": 3, "upserted": 2, "deleted": 1,
                  "indexes_created": 1, "created": 1},
        "": {"indexes_dropped": 1},
    }


def test_python_migration_rows_are_counted_through_its_conn(sql_project: SQLProject) -> None:
    p = sql_project.param
    sql_project.write(
        A,
        f"""
        self.conn.execute("CREATE TABLE people (id integer PRIMARY KEY, name text)")
        self.conn.cursor().executemany(
            "INSERT INTO people (id, name) VALUES ({p}, {p})", [(i, str(i)) for i in range(7)]
        )
        cur = self.conn.cursor()
        cur.execute('UPDATE "people" SET name = {p} WHERE id < 3', ("x",))
        assert cur.rowcount == 3  # what the migration sees is unchanged
        self.conn.execute("DELETE FROM people WHERE id >= 5")
        self.conn.execute("DROP TABLE IF EXISTS nothing_here")
        """,
    )
    migrate(sql_project)
    assert sql_project.query("SELECT count(*) FROM people") == [(5,)]
    assert written(sql_project, A) == {
        "people": {"inserted": 7, "matched": 3, "modified": 3, "deleted": 2, "created": 1},
        "nothing_here": {"dropped": 1},
    }


def test_sql_records_keep_no_accounting_of_a_rolled_back_transaction(
    sql_project: SQLProject,
) -> None:
    sql_project.write_sql(
        A, "CREATE TABLE t (x integer);\nINSERT INTO t VALUES (1);\nINSERT INTO missing VALUES (1);"
    )
    result = sql_project.cli("migrate", "development")
    assert result.code != 0
    record = listed(sql_project)[A]["record"]
    assert record["state"] == "failed" and record["accounting"] is None


def test_sql_records_from_before_accounting_still_list(sql_project: SQLProject) -> None:
    sql_project.counting_sql(A)
    migrate(sql_project)
    with sql_project.connect() as conn:
        conn.execute("UPDATE monarch_migrations SET accounting = NULL")
    assert written(sql_project, A) is None
    text = sql_project.cli("list_migrations", "development", "-v")
    assert text.code == 0, text.output
    assert f"{A}: no write accounting" in text.stdout


def test_sql_list_migrations_json_and_verbose_shape(sql_project: SQLProject) -> None:
    sql_project.counting(A)
    migrate(sql_project)
    assert written(sql_project, A) == {"runs": {"created": 1, "upserted": 1}}
    text = sql_project.cli("list_migrations", "development", "--verbose")
    assert f"{A}: its last run wrote\n    runs: 1 upserted, 1 created" in text.stdout


# The engine-independent value --------------------------------------------------------------


def test_accounting_merges_and_reads_back_what_it_stored() -> None:
    one = Accounting()
    one.add("a", Counts(inserted=2))
    one.add("b", Counts())  # nothing: no target
    two = Accounting()
    two.add("a", Counts(deleted=1, indexes_created=1))
    two.add("c", Counts(upserted=3))
    merged = one.merge(two)
    assert merged.to_json() == [
        {"target": "a", "inserted": 2, "deleted": 1, "indexes_created": 1},
        {"target": "c", "upserted": 3},
    ]
    assert Accounting.from_json(merged.to_json()) == merged
    assert merged.total() == Counts(inserted=2, deleted=1, upserted=3, indexes_created=1)
    assert merged.lines() == ["a: 2 inserted, 1 deleted, 1 index created", "c: 3 upserted"]
    assert Accounting.from_json(None) is None
    assert Accounting.from_json([{"target": "a", "inserted": "x", "future": 2}]) == Accounting()
    assert Accounting.from_json({"a": {"inserted": 1}}) is None  # not a stored form


def test_records_without_accounting_read_as_none_and_round_trip() -> None:
    old = {"name": "m", "state": "applied", "checksum": "c"}
    assert Record.from_dict(old).accounting is None
    record = Record(name="m", state="applied", checksum="c",
                    accounting=Accounting({"t": Counts(inserted=1)}))
    assert record.to_dict()["accounting"] == [{"target": "t", "inserted": 1}]
    assert Record.from_dict(record.to_dict()) == record


def test_statements_are_parsed_simply_for_their_verb_and_table() -> None:
    assert parse_statement('insert into public."Users" (a) values (1)') == (
        "insert", ("public.Users",))
    assert parse_statement("INSERT OR REPLACE INTO t VALUES (1)") == ("upsert", ("t",))
    assert parse_statement("insert or ignore into t values (1)") == ("insert", ("t",))
    assert parse_statement("/* x */ UPDATE ONLY Orders SET a = 1") == ("update", ("orders",))
    assert parse_statement("delete from t") == ("delete", ("t",))
    assert parse_statement("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON s.t (a)") == (
        "create index", ("s.t",))
    assert parse_statement("create index on t (a)") == ("create index", ("t",))
    assert parse_statement("DROP INDEX IF EXISTS a, b") == ("drop index", ("a", "b"))
    assert parse_statement("drop table x, y") == ("drop table", ("x", "y"))
    assert parse_statement("WITH x AS (SELECT 1) DELETE FROM t") is None
    assert parse_statement("select 1") is None
    assert statement_counts("UPDATE t SET a = 1", -1) == [("t", Counts())]

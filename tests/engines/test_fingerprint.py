"""Engine.fingerprint(): each collection's (table's) count and content digest, on every engine.

Equal content gives equal fingerprints whatever order it was written in; one changed field,
one more index, one more row changes the fingerprint of that collection (table) only; monarch's
own bookkeeping (history, lock, audit trail, 0.0.x's history) is never part of it.
"""

from __future__ import annotations

from typing import Any

from monarch.engines.base import differing
from monarch.history import BOOKKEEPING
from tests.engines.conftest import Kit

ROWS = [(1, "apple", 1.5), (2, "pear", 2.25), (3, "plum", None), (4, "fig", 0.5)]


def table_name(kit: Kit, table: str) -> str:
    """The name fingerprint() and inventory() give ``table``."""
    return f"public.{table}" if kit.kind == "postgres" else table


def write(engine: Any, kit: Kit, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Create ``table`` if needed and insert ``rows`` (id, name, price) in the order given."""
    if kit.kind == "mongo":
        engine.db[table].insert_many([{"_id": i, "name": n, "price": p} for i, n, p in rows])
        return
    conn = engine.migration_context()["conn"]
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (id integer PRIMARY KEY, name text, "
                 "price real)")
    marker = "%s" if kit.kind == "postgres" else "?"
    for row in rows:
        conn.execute(f"INSERT INTO {table} VALUES ({marker}, {marker}, {marker})", row)


def execute(engine: Any, kit: Kit, sql: str, mongo: Any) -> None:
    """Run ``sql`` on a SQL engine, or ``mongo(db)`` on MongoDB."""
    if kit.kind == "mongo":
        mongo(engine.db)
    else:
        engine.migration_context()["conn"].execute(sql)


def test_same_content_written_in_another_order_has_the_same_fingerprint(kit: Kit) -> None:
    engine = kit.make()
    write(engine, kit, "items", ROWS)
    write(engine, kit, "others", ROWS[:2])
    before = engine.fingerprint()
    assert set(before) == {table_name(kit, "items"), table_name(kit, "others")}
    assert before[table_name(kit, "items")].count == 4
    execute(engine, kit, "DELETE FROM items", lambda db: db.items.delete_many({}))
    write(engine, kit, "items", list(reversed(ROWS)))
    assert engine.fingerprint() == before
    assert kit.make().fingerprint() == before  # another connection reads the same


def test_one_changed_field_changes_that_tables_digest_only(kit: Kit) -> None:
    engine = kit.make()
    write(engine, kit, "items", ROWS)
    write(engine, kit, "others", ROWS)
    before = engine.fingerprint()
    execute(engine, kit, "UPDATE items SET name = 'Plum' WHERE id = 3",
            lambda db: db.items.update_one({"_id": 3}, {"$set": {"name": "Plum"}}))
    after = engine.fingerprint()
    assert differing(before, after) == [table_name(kit, "items")]
    assert after[table_name(kit, "items")].count == 4
    assert after[table_name(kit, "items")].digest != before[table_name(kit, "items")].digest
    execute(engine, kit, "UPDATE items SET name = 'plum' WHERE id = 3",
            lambda db: db.items.update_one({"_id": 3}, {"$set": {"name": "plum"}}))
    assert engine.fingerprint() == before


def test_an_index_or_a_row_more_changes_the_fingerprint_and_undoing_it_restores_it(
    kit: Kit,
) -> None:
    engine = kit.make()
    write(engine, kit, "items", ROWS)
    before = engine.fingerprint()
    execute(engine, kit, "CREATE INDEX items_name ON items (name)",
            lambda db: db.items.create_index("name", name="items_name"))
    indexed = engine.fingerprint()
    assert differing(before, indexed) == [table_name(kit, "items")]
    assert indexed[table_name(kit, "items")].count == 4
    execute(engine, kit, "DROP INDEX items_name", lambda db: db.items.drop_index("items_name"))
    assert engine.fingerprint() == before
    write(engine, kit, "items", [(5, "kiwi", 3.0)])
    assert engine.fingerprint()[table_name(kit, "items")].count == 5
    write(engine, kit, "extra", [(1, "x", 1.0)])
    assert differing(before, engine.fingerprint()) == sorted(
        [table_name(kit, "items"), table_name(kit, "extra")])


def test_monarchs_bookkeeping_is_never_part_of_the_fingerprint(kit: Kit) -> None:
    engine = kit.make()
    write(engine, kit, "items", ROWS)
    before = engine.fingerprint()
    for name in sorted(BOOKKEEPING):
        write(engine, kit, name, ROWS[:1])
    assert engine.fingerprint() == before
    for name in sorted(BOOKKEEPING):
        write(engine, kit, name, ROWS[1:2])
    assert engine.fingerprint() == before
    assert table_name(kit, "monarch_migrations") in engine.inventory()  # it is there, as data


def test_a_database_that_does_not_exist_holds_nothing(kit: Kit) -> None:
    assert kit.make().fingerprint() == {}

"""A selective PostgreSQL restore: some tables of a dump, replaced in one transaction.

pg_restore's own ``--table`` restores a table's definition and data but not its indexes,
constraints or triggers, which would leave a table without its primary key; so the selection
goes through a scratch copy instead, and pg_dump's selection, which takes a table with all of
that:

1. Under the restore lock, the whole dump is restored into a scratch database beside the
   target (``<db>__monarch_restore_<token>``, exactly as a whole restore does; nothing of the
   target is touched).
2. In the scratch copy, the selected tables are renamed to their target names, with their
   indexes (constraints' included) and owned sequences, whose names PostgreSQL keeps unique
   per schema, so a table restored beside the live one brings no clashing name.
3. ``pg_dump --table`` of exactly those tables (with their indexes, constraints, triggers,
   sequences and grants) is piped into ``pg_restore --single-transaction --clean --if-exists``
   on the target: every selected table is dropped and created again inside **one**
   transaction, so the target holds all old or all new selected tables, never a half-replaced
   one; a failure or a kill (the server rolls back a transaction whose client died) changes
   nothing. Tables outside the selection are never touched.
4. The scratch database is dropped (or, after a kill, by the next restore or ``recover``).

What PostgreSQL itself refuses stops the transaction, target unchanged: a selected table that
an unselected one references by foreign key cannot be dropped (select both), and a table
restored into a schema the target lacks cannot be created.
"""

from __future__ import annotations

import subprocess
import time
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from monarch.engines.base import CollectionRestored, RestoreStats
from monarch.engines.postgres import dbprops
from monarch.engines.postgres.conninfo import child_environment, connect
from monarch.engines.postgres.errors import tool_failed, translated
from monarch.engines.postgres.restore import load_scratch
from monarch.engines.postgres.swap import (
    admin_connection,
    drop_leftovers,
    drop_scratch,
    lock_restore,
    scratch_names,
    unlock_and_close,
)
from monarch.engines.postgres.tools import Tool, find_tool
from monarch.engines.selection import split_qualified
from monarch.errors import UsageError
from monarch.progress import Item, NullProgress

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg

    from monarch.config import Environment
    from monarch.engines.postgres import PostgresEngine
    from monarch.engines.selection import Selection
    from monarch.io import Readable
    from monarch.progress import Progress

_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY 1, 2
"""


def restore_selected(
    engine: PostgresEngine,
    inp: Readable,
    selection: Selection,
    *,
    progress: Progress | None = None,
    before_swap: Callable[[], None] | None = None,
    privileges: bool = True,
) -> RestoreStats:
    """Replace the tables ``selection`` picks (renamed as it says) from the dump read from
    ``inp``, in one transaction; see the module docstring. Returns the target names restored
    (``schema.table``); ``dropped`` is empty."""
    started = time.monotonic()
    env = engine.environment
    db = env.database
    progress = progress or NullProgress()
    progress.start("restore", [Item(db, None, None, unit="database")])
    admin, admin_db = admin_connection(env)
    try:
        with translated(env, "preparing the restore", dbname=admin_db):
            lock_restore(admin, env)
            recovered = drop_leftovers(admin, env)
            props = dbprops.read(admin, db)
            if props is None:
                raise UsageError(
                    f"database {db!r} does not exist; a selective restore replaces tables of "
                    "an existing database, so nothing was done",
                    hint="create it first, or restore the whole backup",
                )
            version = admin.info.server_version
            restore_tool, _ = find_tool("pg_restore", version)
            dump_tool, _ = find_tool("pg_dump", version)
            scratch, _ = scratch_names(db)
        try:
            with translated(env, "preparing the restore", dbname=admin_db):
                admin.execute(dbprops.create_statement(scratch, props))
            load_scratch(env, inp, scratch, restore_tool, progress, privileges=privileges)
            finals = _shape(env, scratch, selection)
            selection.refuse_overwrite(finals, _tables(env, db), f"environment {env.name!r}",
                                       "table")
            if before_swap is not None:
                before_swap()
            _move(env, scratch, sorted(finals.values()), (dump_tool, restore_tool),
                  privileges=privileges)
        finally:
            with suppress(Exception):  # a leftover is dropped by the next restore
                drop_scratch(admin, env, scratch)
    finally:
        unlock_and_close(admin)
    progress.finish_item(db)
    return RestoreStats(
        database=db,
        collections=tuple(CollectionRestored(name, 0, 0, (), "table")
                          for name in sorted(finals.values())),
        recovered=recovered,
        seconds=time.monotonic() - started,
    )


def _tables(env: Environment, dbname: str) -> list[str]:
    conn = connect(env, dbname=dbname, doing="listing tables")
    try:
        with translated(env, "listing tables", dbname=dbname):
            return [f"{s}.{t}" for s, t in conn.execute(_TABLES).fetchall()]
    finally:
        conn.close()


def _shape(env: Environment, scratch: str, selection: Selection) -> dict[str, str]:
    """Pick and rename the tables in the scratch copy; return dump name -> target name."""
    conn = connect(env, dbname=scratch, doing="selecting tables")
    try:
        with translated(env, "selecting tables in the restored copy", dbname=scratch):
            tables = [f"{s}.{t}" for s, t in conn.execute(_TABLES).fetchall()]
            selection.require_matches(tables, "table", "the backup", qualified=True)
            chosen = [t for t in tables if selection.selects(*_table_schema(t))]
            finals = {t: selection.qualified_target(t) for t in chosen}
            renamed = [(t, f) for t, f in finals.items() if t != f]
            with conn.transaction():
                # Unselected tables in the way of a new name step aside (never dropped: a
                # selected table's foreign keys may point at them).
                taken = set(finals.values())
                for index, table in enumerate(t for t in tables if t in taken
                                              and t not in finals):
                    _rename(conn, table, f"{split_qualified(table)[0]}.monarch_aside_{index}")
                for index, (table, _) in enumerate(renamed):
                    _rename(conn, table, f"{split_qualified(table)[0]}.monarch_rename_{index}")
                for index, (table, final) in enumerate(renamed):
                    _rename(conn, f"{split_qualified(table)[0]}.monarch_rename_{index}", final)
    finally:
        conn.close()
    return finals


def _table_schema(qualified: str) -> tuple[str, str | None]:
    schema, table = split_qualified(qualified)
    return table, schema


def _rename(conn: psycopg.Connection[Any], table: str, new: str) -> None:
    """Rename ``table`` (``schema.table``) to ``new``, moving it to ``new``'s schema, and its
    indexes and owned sequences: a name that starts with the table's gets the new table name
    instead of it (``users_pkey`` -> ``users_old_pkey``), any other gets it put in front."""
    from psycopg import sql

    schema, name = split_qualified(table)
    new_schema, new_name = split_qualified(new)
    assert schema is not None and new_schema is not None
    relation = sql.Identifier(schema, name)
    for kind, child in conn.execute(
        "SELECT 'INDEX', i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %s::regclass "
        "UNION ALL SELECT 'SEQUENCE', s.relname FROM pg_depend d "
        "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
        "WHERE d.refobjid = %s::regclass AND d.deptype IN ('a', 'i')",
        (relation.as_string(conn), relation.as_string(conn)),
    ).fetchall():
        current = str(child)
        base = current[len(name):] if current.startswith(name) else f"_{current}"
        conn.execute(sql.SQL("ALTER {} {} RENAME TO {}").format(
            sql.SQL(kind), sql.Identifier(schema, current),
            sql.Identifier(f"{new_name}{base}"[:63])))
    if new_schema != schema:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(new_schema)))
        conn.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
            relation, sql.Identifier(new_schema)))
        relation = sql.Identifier(new_schema, name)
    if new_name != name:
        conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            relation, sql.Identifier(new_name)))


def _move(env: Environment, scratch: str, tables: list[str], tools: tuple[Any, Any], *,
          privileges: bool) -> None:
    """pg_dump ``tables`` of ``scratch`` | pg_restore into the target, in one transaction."""
    dump_tool, restore_tool = tools
    dump_env, dump_db = child_environment(env, scratch)
    selected = [f"--table={_pattern(t)}" for t in tables]
    dump_argv = [str(dump_tool), "--format=custom", "--compress=0", "--no-password",
                 f"--dbname={dump_db}", *selected]
    restore_env, restore_db = child_environment(env)
    restore_argv = [str(restore_tool), "--no-password", "--single-transaction", "--exit-on-error",
                    "--clean", "--if-exists", "--no-owner", f"--dbname={restore_db}"]
    restore_argv += [] if privileges else ["--no-privileges"]
    dumper = Tool(dump_argv, dump_env, stdout=subprocess.PIPE)
    try:
        assert dumper.process.stdout is not None
        loader = Tool(restore_argv, restore_env, stdin=dumper.process.stdout)
        dumper.process.stdout.close()  # pg_restore holds it; pg_dump sees it gone if it dies
        try:
            loaded = loader.wait()
        except BaseException:
            loader.kill()
            raise
        dumped = dumper.wait()
    except BaseException:
        dumper.kill()
        raise
    # pg_restore's error first: it says why, and a pg_dump it stopped reading only broke a pipe.
    if loaded != 0:
        raise tool_failed(env, "pg_restore", loaded, loader.stderr)
    if dumped != 0:
        raise tool_failed(env, "pg_dump", dumped, dumper.stderr)


def _pattern(qualified: str) -> str:
    """A pg_dump ``--table`` pattern naming exactly ``schema.table`` (quoted: no wildcards)."""
    schema, table = split_qualified(qualified)
    return ".".join('"' + part.replace('"', '""') + '"' for part in (schema or "public", table))

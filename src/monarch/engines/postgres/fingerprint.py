"""A PostgreSQL database's fingerprint: each table's definition and its rows, sorted.

One read-only, repeatable-read transaction sees every table at the same moment. A table's
definition is its columns (name, type, NOT NULL, default, in order), its constraints and its
indexes, as the server prints them; its rows are each row's text form (``ROW(t.*)::text``),
sorted byte-wise (``COLLATE "C"``, so no locale changes the order) by the server, which spills
a big sort to disk, and streamed to monarch row by row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from monarch.engines.base import Fingerprint, fingerprint_of
from monarch.engines.postgres.errors import translated
from monarch.history import BOOKKEEPING

if TYPE_CHECKING:
    from collections.abc import Iterator

    import psycopg

    from monarch.config import Environment

TABLES = (
    "SELECT c.oid, n.nspname, c.relname FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname !~ '^pg_toast' AND NOT c.relispartition ORDER BY 2, 3"
)
_COLUMNS = (
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
    "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
    "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
)
_CONSTRAINTS = (
    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE conrelid = %s ORDER BY conname"
)
_INDEXES = (
    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s "
    "ORDER BY indexname"
)


def fingerprint(conn: psycopg.Connection[Any], env: Environment) -> dict[str, Fingerprint]:
    """Each table's fingerprint (``schema.table``), monarch's own left out (see the module
    doc). ``conn`` is an autocommit connection to the database."""
    found = {}
    with translated(env, "reading rows for a fingerprint"), conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for oid, schema, table in conn.execute(TABLES).fetchall():
            if table in BOOKKEEPING:
                continue
            definition = repr((
                conn.execute(_COLUMNS, (oid,)).fetchall(),
                conn.execute(_CONSTRAINTS, (oid,)).fetchall(),
                conn.execute(_INDEXES, (schema, table)).fetchall(),
            )).encode()
            found[f"{schema}.{table}"] = fingerprint_of(definition, _rows(conn, schema, table))
    return found


def _rows(conn: psycopg.Connection[Any], schema: str, table: str) -> Iterator[bytes]:
    from psycopg import sql

    query = sql.SQL(
        'SELECT ROW(monarch_row.*)::text FROM {} AS monarch_row '
        'ORDER BY ROW(monarch_row.*)::text COLLATE "C"'
    ).format(sql.Identifier(schema, table))
    for (text,) in conn.cursor().stream(query):
        yield str(text).encode()

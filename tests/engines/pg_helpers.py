"""Helpers for the PostgreSQL engine tests: sample databases and exact comparisons."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import psycopg

RICH_SCHEMA = """
CREATE SCHEMA shop;
CREATE TYPE shop.status AS ENUM ('new', 'paid', 'shipped');
CREATE TABLE shop.customers (
    id serial PRIMARY KEY,
    email text UNIQUE NOT NULL,
    meta jsonb,
    tags text[],
    created timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE shop.orders (
    id bigserial PRIMARY KEY,
    customer integer REFERENCES shop.customers (id),
    total numeric(12, 2),
    status shop.status NOT NULL DEFAULT 'new',
    blob bytea,
    placed date
);
CREATE INDEX orders_status ON shop.orders (status);
CREATE VIEW shop.big_orders AS SELECT * FROM shop.orders WHERE total > 100;
CREATE MATERIALIZED VIEW shop.totals AS
    SELECT customer, sum(total) AS total FROM shop.orders GROUP BY customer;
CREATE FUNCTION shop.stamp() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN NEW.created := now(); RETURN NEW; END $$;
CREATE TRIGGER stamp BEFORE UPDATE ON shop.customers FOR EACH ROW EXECUTE FUNCTION shop.stamp();
COMMENT ON TABLE shop.orders IS 'every order, ever';
CREATE SEQUENCE public.invoice_numbers START 1000;
CREATE TABLE public.settings (key text PRIMARY KEY, value text);
"""


def fill_rich(url: str, customers: int = 50) -> None:
    """Create the rich sample schema in ``url``'s database, with rows in every table."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RICH_SCHEMA)
        conn.execute(
            "INSERT INTO shop.customers (email, meta, tags) SELECT 'c' || i || '@example.com', "
            "jsonb_build_object('i', i, 'nested', jsonb_build_object('ok', i %% 2 = 0)), "
            "ARRAY['t' || (i %% 3), 'x'] FROM generate_series(1, %s) AS i",
            (customers,),
        )
        conn.execute(
            "INSERT INTO shop.orders (customer, total, status, blob, placed) "
            "SELECT (i %% %s) + 1, i * 3.5, "
            "(ARRAY['new', 'paid', 'shipped'])[i %% 3 + 1]::shop.status, "
            "decode(md5(i::text), 'hex'), date '2024-01-01' + i FROM generate_series(1, %s) AS i",
            (customers, customers * 4),
        )
        conn.execute("REFRESH MATERIALIZED VIEW shop.totals")
        conn.execute("SELECT nextval('public.invoice_numbers') FROM generate_series(1, 7)")
        conn.execute("INSERT INTO public.settings VALUES ('theme', 'dark'), ('quote', 'it''s')")


def fill_old(url: str) -> None:
    """A different database: what a restore must replace entirely."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE SCHEMA legacy; CREATE TABLE legacy.things (id int PRIMARY KEY, name text);"
            "INSERT INTO legacy.things SELECT i, 'thing ' || i FROM generate_series(1, 30) i;"
            "CREATE TABLE public.settings (key text PRIMARY KEY, value text, extra int);"
            "INSERT INTO public.settings VALUES ('theme', 'light', 1);"
            "CREATE FUNCTION public.legacy_fn() RETURNS int LANGUAGE sql AS 'SELECT 1';"
            "CREATE EXTENSION IF NOT EXISTS plpgsql;"
        )


# monarch's own bookkeeping beside the data: the environment's lock, which a restore, copy or drop
# holds like migrate (#12), and the audit events they write. Neither is part of what a backup
# holds or a restore gives back, so contents compared here leave them out.
BOOKKEEPING = frozenset({"monarch_lock", "monarch_events"})


def contents(url: str) -> dict[str, list[str]]:
    """Every table's and materialized view's rows (as sorted JSON) and every sequence's state
    (but monarch's bookkeeping)."""
    with psycopg.connect(url, autocommit=True) as conn:
        relations = conn.execute(
            "SELECT n.nspname, c.relname, c.relkind FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'm', 'S') AND n.nspname NOT IN ('pg_catalog', "
            "'information_schema') AND n.nspname !~ '^pg_toast' ORDER BY 1, 2"
        ).fetchall()
        found: dict[str, list[str]] = {}
        for schema, name, kind in relations:
            if name in BOOKKEEPING:
                continue
            qualified = psycopg.sql.Identifier(schema, name)
            if kind == "S":
                query = psycopg.sql.SQL("SELECT last_value::text, is_called::text FROM {}")
            else:
                query = psycopg.sql.SQL("SELECT row_to_json(t)::text FROM {} AS t")
            rows = conn.execute(query.format(qualified)).fetchall()
            found[f"{schema}.{name}"] = sorted(" ".join(map(str, row)) for row in rows)
    return found


def schema_dump(bin_dir: Path, url: str) -> str:
    """``pg_dump --schema-only`` of ``url`` (but monarch's bookkeeping), without the per-run
    random \\restrict keys."""
    leave_out = [f"--exclude-table={name}" for name in sorted(BOOKKEEPING)]
    result = subprocess.run(
        [str(bin_dir / "pg_dump"), "--schema-only", *leave_out, f"--dbname={url}"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    return "\n".join(line for line in lines if not line.startswith(("\\restrict", "\\unrestrict")))


def databases(server_uri: str) -> set[str]:
    with psycopg.connect(server_uri, autocommit=True) as conn:
        return {str(r[0]) for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


def execute(url: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []

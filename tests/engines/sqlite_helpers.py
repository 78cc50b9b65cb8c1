"""Helpers for the SQLite engine tests: sample databases and exact comparisons."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def fill(path: Path, rows: int = 100, *, wal: bool = False, tag: str = "new") -> None:
    """A database with several tables, an index, a view and a trigger."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if wal:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(
            f"""
            CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT UNIQUE, note BLOB,
                                    score REAL, tag TEXT DEFAULT '{tag}');
            CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customers,
                                 total NUMERIC);
            CREATE INDEX orders_customer ON orders (customer);
            CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
            CREATE TABLE audit (at TEXT, what TEXT);
            CREATE TRIGGER log_order AFTER INSERT ON orders
                BEGIN INSERT INTO audit VALUES ('now', 'order ' || NEW.id); END;
            """
        )
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO customers (email, note, score) VALUES (?, ?, ?)",
            [(f"{tag}{i}@example.com", bytes([i % 256]) * 10, i / 3) for i in range(rows)],
        )
        conn.executemany(
            "INSERT INTO orders (customer, total) VALUES (?, ?)",
            [(i % rows + 1, i * 7.25) for i in range(rows * 3)],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def fill_other(path: Path) -> None:
    """A different database: what a restore must replace entirely."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.executescript(
            """
            CREATE TABLE legacy (id INTEGER PRIMARY KEY, name TEXT);
            INSERT INTO legacy (name) VALUES ('one'), ('two');
            CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT);
            INSERT INTO customers (email) VALUES ('old@example.com');
            """
        )
    finally:
        conn.close()


# monarch's own bookkeeping beside the data: the environment's lock, which a restore, copy or drop
# holds like migrate (#12), and the audit events they write. Neither is part of what a backup
# holds or a restore gives back, so contents compared here leave them out.
BOOKKEEPING = frozenset({"monarch_lock", "monarch_events"})


def contents(path: Path) -> dict[str, object]:
    """The schema (every object's SQL) and every table's rows, sorted (but monarch's
    bookkeeping)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        schema = sorted(
            (str(t), str(n), str(s))
            for t, n, s in conn.execute("SELECT type, name, sql FROM sqlite_master")
            if n not in BOOKKEEPING and not any(f"autoindex_{b}_" in n for b in BOOKKEEPING)
        )
        tables = [n for t, n, _ in schema if t == "table" and not n.startswith("sqlite_")]
        found: dict[str, object] = {"schema": schema}
        for name in tables:
            found[name] = sorted(repr(row) for row in conn.execute(f'SELECT * FROM "{name}"'))
        return found
    finally:
        conn.close()


def journal_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()

"""Scratch databases on a PostgreSQL server: create, remove, and the lock of a live one.

A scratch database's lock cannot live in the database itself: a restore into it swaps in
another database and ends every session on it. So it is a session-level advisory lock taken on
the server's maintenance database (keyed on the scratch database's name): PostgreSQL grants it
to one session at a time and frees it when that session ends, which it does when its process
dies, however (TCP keepalives notice a vanished machine). The holder's session names itself in
``application_name``, so that another process can say who holds it.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from monarch.engines.postgres.errors import translated
from monarch.engines.postgres.lock import advisory_key
from monarch.engines.postgres.swap import (
    admin_connection,
    drop_database,
    drop_leftovers,
    lock_restore,
    unlock_and_close,
)
from monarch.history import Acquisition, LockHolder, LockOwner

if TYPE_CHECKING:
    import psycopg

    from monarch.config import Environment

_NEVER = datetime.max.replace(tzinfo=UTC)  # a live session's lease: it ends with the session
_HOLDER = (
    "SELECT a.pid, a.usename, coalesce(a.client_addr::text, 'local'), a.application_name, "
    "a.backend_start, now() FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.classid = ((%(key)s >> 32) & 4294967295)::oid "
    "AND l.objid = (%(key)s & 4294967295)::oid "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def create(env: Environment) -> bool:
    """``CREATE DATABASE`` (from ``template0``: nothing of ``template1``'s comes along);
    False when it exists."""
    import psycopg.errors as pe
    from psycopg import sql

    admin, admin_db = admin_connection(env)
    try:
        with translated(env, "creating the database", dbname=admin_db):
            try:
                admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
                    sql.Identifier(env.database)))
            except pe.DuplicateDatabase:
                return False
    finally:
        admin.close()
    return True


def remove(env: Environment) -> bool:
    """Drop the database and what an interrupted restore into it left (under the restore
    lock: RestoreBusy while a restore into it runs); False when it did not exist."""
    admin, admin_db = admin_connection(env)
    try:
        with translated(env, "dropping the database", dbname=admin_db):
            lock_restore(admin, env)
            drop_leftovers(admin, env)
            row = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (env.database,)).fetchone()
            if row is not None:
                drop_database(admin, env.database)
    finally:
        unlock_and_close(admin)
    return row is not None


def databases(env: Environment, prefix: str) -> list[str]:
    """The server's databases whose names begin with ``prefix``."""
    admin, admin_db = admin_connection(env)
    try:
        with translated(env, "listing databases", dbname=admin_db):
            rows = admin.execute(
                "SELECT datname FROM pg_database WHERE left(datname, char_length(%s)) = %s",
                (prefix, prefix),
            ).fetchall()
    finally:
        admin.close()
    return sorted(str(row[0]) for row in rows)


class ScratchLock:
    """:class:`~monarch.history.MigrationLock` marking ``env``'s database as a live run's
    scratch database (see the module doc). The lease is the holder's session: ``renew`` only
    checks that it is still there."""

    def __init__(self, env: Environment) -> None:
        self._env = env
        self.key = advisory_key(f"scratch/{env.database}")
        self._held: dict[str, psycopg.Connection[Any]] = {}

    def try_acquire(self, owner: LockOwner, lease: float) -> Acquisition:
        admin, admin_db = admin_connection(self._env)
        try:
            with translated(self._env, "taking the scratch database's lock", dbname=admin_db):
                admin.execute("SELECT set_config('application_name', %s, false)",
                              (f"monarch {owner.who} pid {owner.pid}: {owner.command}"[:63],))
                row = admin.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
                got = bool(row and row[0])
                holder = None if got else self._holder(admin)
        except BaseException:
            admin.close()
            raise
        if not got:
            admin.close()
            return Acquisition(False, holder=holder)
        self._held[owner.token] = admin
        return Acquisition(True)

    def renew(self, owner: LockOwner, lease: float) -> bool:
        conn = self._held.get(owner.token)
        if conn is None:
            return False
        try:
            conn.execute("SELECT 1")
        except Exception:
            return False
        return True

    def release(self, owner: LockOwner) -> None:
        conn = self._held.pop(owner.token, None)
        if conn is not None:
            unlock_and_close(conn)

    def holder(self) -> LockHolder | None:
        admin, admin_db = admin_connection(self._env)
        try:
            with translated(self._env, "reading the scratch database's lock", dbname=admin_db):
                return self._holder(admin)
        finally:
            admin.close()

    def clear(self, by: LockOwner) -> LockHolder | None:
        admin, admin_db = admin_connection(self._env)
        try:
            with translated(self._env, "clearing the scratch database's lock", dbname=admin_db):
                holder = self._holder(admin)
                if holder is not None:
                    admin.execute("SELECT pg_terminate_backend(%s)", (holder.pid,))
        finally:
            admin.close()
        return holder

    def close(self) -> None:
        """Let go of whatever is held (as the process's exit would)."""
        for token in list(self._held):
            with suppress(Exception):
                self._held.pop(token).close()

    def _holder(self, admin: psycopg.Connection[Any]) -> LockHolder | None:
        row = admin.execute(_HOLDER, {"key": self.key}).fetchone()
        if row is None:
            return None
        pid, user, host, application, started, now = row
        return LockHolder(token="", user=str(user or "?"), host=str(host), pid=int(pid),
                          command=str(application or ""), acquired_at=started,
                          expires_at=_NEVER, checked_at=now)

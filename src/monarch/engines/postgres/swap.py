"""The machinery a restore and drop_db share: scratch databases swapped in by renames.

New contents are built in a scratch database beside the target and swapped in by renaming
databases inside one transaction, so the target is at every moment either all old or all new:

- :func:`admin_connection` reaches the server's maintenance database (``postgres``, else
  ``template1``), never the target: renaming a database needs it to have no sessions.
- :func:`lock_restore` takes the restore lock there: an advisory lock keyed on the target's
  name, which PostgreSQL releases if its holder dies; a second restore (or drop) gets
  RestoreBusy. :func:`unlock_and_close` lets go of it.
- :func:`drop_leftovers` drops what a killed run left (``<db>__monarch_restore_<token>``, being
  built; ``<db>__monarch_old_<token>``, swapped out): holding the lock proves them orphans.
- :func:`swap` ends the other sessions on the target and, in one transaction, renames the
  target to the old name, the scratch database to the target's name, and gives it the old
  one's properties (:mod:`.dbprops`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from monarch.engines.postgres import dbprops
from monarch.engines.postgres.conninfo import connect
from monarch.engines.postgres.errors import translated
from monarch.engines.postgres.history import EVENTS_TABLE
from monarch.engines.postgres.lock import advisory_key
from monarch.errors import BackupError, ConnectionFailed, MonarchError, RestoreBusy

if TYPE_CHECKING:
    import psycopg

    from monarch.config import Environment

MAINTENANCE_DATABASES = ("postgres", "template1")
SWAP_ATTEMPTS = 5
_MAX_NAME = 63  # bytes in a PostgreSQL identifier
_LEFTOVER = re.compile(r"(restore|old)_[0-9a-f]{8}")


def leftover_prefix(database: str) -> str:
    """Names of a restore's scratch and old databases start with this."""
    prefix = f"{database}__monarch_"
    if len(prefix.encode()) + len("restore_") + 8 <= _MAX_NAME:
        return prefix
    return f"monarch_{hashlib.sha256(database.encode()).hexdigest()[:16]}_"


def scratch_names(database: str) -> tuple[str, str]:
    """A fresh pair of names beside ``database``: the database filled (or left empty) before
    the swap, and the one the old contents move to. Both are leftovers the next run drops."""
    token = secrets.token_hex(4)
    prefix = leftover_prefix(database)
    return f"{prefix}restore_{token}", f"{prefix}old_{token}"


def admin_connection(env: Environment) -> tuple[psycopg.Connection[Any], str]:
    """A connection to the server's maintenance database (never the target itself)."""
    candidates = [name for name in MAINTENANCE_DATABASES if name != env.database]
    for name in candidates:
        try:
            conn = connect(env, dbname=name, doing="connecting to the maintenance database")
        except ConnectionFailed as exc:
            if "does not exist" in str(exc) and name != candidates[-1]:
                continue
            raise
        # The session idles while pg_restore works: no idle timeout may end it (and the lock).
        with suppress(Exception):
            conn.execute("SET idle_session_timeout = 0")
        return conn, name
    raise AssertionError("unreachable")  # pragma: no cover


def lock_restore(admin: psycopg.Connection[Any], env: Environment) -> None:
    """Take the restore lock of ``env``'s database on ``admin``; RestoreBusy if it is held."""
    row = admin.execute(
        "SELECT pg_try_advisory_lock(%s)", (advisory_key(f"restore/{env.database}"),)
    ).fetchone()
    if not (row and row[0]):
        raise RestoreBusy(
            f"another restore into database {env.database!r} (environment {env.name!r}) is "
            "running; nothing was done",
            hint="wait for it to finish, then run this one again",
        )


def unlock_and_close(admin: psycopg.Connection[Any]) -> None:
    """Release the restore lock and close ``admin``."""
    # Unlocked explicitly: a closing session lets go of its locks a moment later, and a restore
    # that follows at once would find the lock still held.
    with suppress(Exception):
        admin.execute("SELECT pg_advisory_unlock_all()")
    admin.close()


def drop_leftovers(admin: psycopg.Connection[Any], env: Environment) -> str | None:
    """Drop the scratch and old databases an interrupted run left beside ``env``'s database
    (the restore lock held); say which (None: there were none)."""
    prefix = leftover_prefix(env.database)
    rows = admin.execute(
        "SELECT datname FROM pg_database WHERE left(datname, char_length(%s)) = %s",
        (prefix, prefix),
    ).fetchall()
    names = sorted(str(r[0]) for r in rows if _LEFTOVER.fullmatch(str(r[0])[len(prefix) :]))
    for name in names:
        drop_database(admin, name)
    if not names:
        return None
    return f"dropped {len(names)} database(s) an interrupted restore left: {', '.join(names)}"


def _end_sessions(admin: psycopg.Connection[Any], names: list[str]) -> None:
    import psycopg

    pids = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
        (names,),
    ).fetchall()
    for (pid,) in pids:
        # Sessions we may not end make the rename fail below, with a clear message.
        with suppress(psycopg.errors.InsufficientPrivilege):
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def swap(
    admin: psycopg.Connection[Any],
    env: Environment,
    scratch: str,
    old: str,
    props: dbprops.DatabaseProps | None,
) -> None:
    """Put ``scratch`` in the place of ``env``'s database, which becomes ``old`` (``props``:
    its properties, given to the new one; None: there was no database to move away)."""
    import psycopg.errors as pe
    from psycopg import sql

    db = env.database
    last: pe.ObjectInUse | None = None
    for _ in range(SWAP_ATTEMPTS):
        _end_sessions(admin, [db, scratch])
        try:
            with admin.transaction():
                if props is not None:
                    admin.execute(
                        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                            sql.Identifier(db), sql.Identifier(old)
                        )
                    )
                admin.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(scratch), sql.Identifier(db)
                    )
                )
                if props is not None:
                    dbprops.apply(admin, db, props)
            return
        except pe.ObjectInUse as exc:
            last = exc  # sessions came back before the rename: end them again
    raise BackupError(
        f"could not swap the restored database in: sessions on {db!r} (environment "
        f"{env.name!r}) kept coming back or could not be ended ({_why(last)})",
        hint="stop the applications that use it during the restore, or give the restoring role "
        "pg_signal_backend so that it may end their sessions",
    ) from last


def _why(error: Exception | None) -> str:
    import psycopg

    if isinstance(error, psycopg.Error) and error.diag.message_detail:
        return error.diag.message_detail
    return str(error)


def drop_database(admin: psycopg.Connection[Any], name: str) -> None:
    """Drop database ``name`` if it exists, ending its sessions first."""
    import psycopg.errors as pe
    from psycopg import sql

    for attempt in range(SWAP_ATTEMPTS):
        _end_sessions(admin, [name])
        try:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            return
        except pe.ObjectInUse:
            if attempt == SWAP_ATTEMPTS - 1:
                raise
            # An ended session (pg_restore's, just killed) takes a moment to go away.
            time.sleep(0.1 * (attempt + 1))


def drop_scratch(admin: psycopg.Connection[Any], env: Environment, name: str) -> None:
    """Drop scratch database ``name`` after a failure or an interrupt. An interrupt can leave
    ``admin`` inside a command it cannot finish ("another command is already in progress"):
    then the drop goes through a new session."""
    try:
        drop_database(admin, name)
    except Exception:
        fresh, _ = admin_connection(env)
        try:
            drop_database(fresh, name)
        finally:
            fresh.close()


def list_tables(env: Environment, dbname: str) -> tuple[str, ...] | None:
    """``schema.name`` of the tables, views and foreign tables of ``dbname`` (not the audit
    trail's table: it is the environment's, not data); None if unknown."""
    try:
        conn = connect(env, dbname=dbname, doing="listing tables")
    except MonarchError:
        return None  # only for the report: not worth failing the restore over
    try:
        with translated(env, "listing tables", dbname=dbname):
            rows = conn.execute(
                "SELECT n.nspname || '.' || c.relname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname !~ '^pg_toast' AND c.relname <> %s ORDER BY 1",
                (EVENTS_TABLE,),
            ).fetchall()
        return tuple(str(r[0]) for r in rows)
    except MonarchError:
        return None
    finally:
        conn.close()

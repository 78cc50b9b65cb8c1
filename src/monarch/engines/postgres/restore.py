"""Restoring a custom-format dump, or copying another database, into a PostgreSQL database.

The new contents are built beside the target and swapped in by renaming databases inside one
transaction, so the target is at every moment either all old or all new:

1. The restore lock: an advisory lock, in the server's maintenance database (``postgres``, else
   ``template1``), keyed on the target's name. A second restore into the same database gets
   RestoreBusy. PostgreSQL releases it if the restoring process dies.
2. Databases left by a restore that was killed (``<db>__monarch_restore_<token>``, being built;
   ``<db>__monarch_old_<token>``, swapped out) are dropped: holding the lock proves them orphans.
3. ``CREATE DATABASE <db>__monarch_restore_<token>`` with the target's encoding, locale and
   tablespace; ``pg_restore --exit-on-error --no-owner`` into it (objects end up owned by the
   restoring role, as on a server where the dump's owners may not exist).
4. Only if pg_restore (and, for a copy, pg_dump) exited 0 and read the whole dump: the swap.
   Other sessions on the target are ended (``pg_terminate_backend``: renaming a database needs
   it to have none; applications must reconnect, and see the new contents). Then, in one
   transaction: rename the target to ``<db>__monarch_old_<token>``, the scratch database to the
   target's name, and give it the old one's owner, GRANTs, settings and comment (see
   :mod:`.dbprops`).
5. The old database is dropped.

A failure or a kill before the swap commits leaves the target untouched (the scratch database is
dropped then, or by the next restore); a kill after it leaves only the old copy, dropped by the
next restore or :func:`recover`. The restoring role needs CREATEDB, and to own the target.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from monarch.engines.postgres import dbprops
from monarch.engines.postgres.conninfo import child_environment, connect
from monarch.engines.postgres.dump import DumpResult, dump_command
from monarch.engines.postgres.errors import tool_failed, translated
from monarch.engines.postgres.lock import advisory_key
from monarch.engines.postgres.tools import CHUNK, Tool, find_tool
from monarch.errors import BackupError, ConnectionFailed, MonarchError, RestoreBusy
from monarch.io import Readable

if TYPE_CHECKING:
    import psycopg

    from monarch.config import Environment
    from monarch.engines.postgres import PostgresEngine

__all__ = ["DumpResult", "RestoreResult", "copy", "recover", "restore"]

MAINTENANCE_DATABASES = ("postgres", "template1")
SWAP_ATTEMPTS = 5
_MAX_NAME = 63  # bytes in a PostgreSQL identifier
_LEFTOVER = re.compile(r"(restore|old)_[0-9a-f]{8}")


@dataclass(frozen=True)
class RestoreResult:
    """What a restore or copy did to ``database``.

    ``bytes``: size of the dump read (None for a copy, whose dump never passes through
    monarch). ``tables``: the tables (``schema.name``) the database holds now; ``dropped``: those
    it had before and the dump did not. ``created``: the database did not exist before.
    ``recovered``: what an earlier, interrupted restore had left and this one removed.
    """

    database: str
    bytes: int | None
    seconds: float
    tables: tuple[str, ...]
    dropped: tuple[str, ...]
    created: bool
    recovered: str | None
    tool_version: str


def restore(engine: PostgresEngine, inp: Readable, *, privileges: bool = True) -> RestoreResult:
    """Replace ``engine``'s database with the dump read from ``inp`` (see the module doc)."""

    def pump(sink: IO[bytes]) -> tuple[int, bool]:
        size = 0
        try:
            while chunk := inp.read(CHUNK):
                sink.write(chunk)
                size += len(chunk)
            sink.close()
        except BrokenPipeError:
            # pg_restore stopped reading; its exit status tells whether that was an error.
            return size, False
        return size, True

    return _restore(engine, stdin=subprocess.PIPE, pump=pump, privileges=privileges)


def copy(source: PostgresEngine, target: object, *, privileges: bool = True) -> RestoreResult:
    """Make ``target`` an exact copy of ``source``: ``pg_dump | pg_restore``, no temp file."""
    from monarch.engines.postgres import PostgresEngine

    if not isinstance(target, PostgresEngine):
        kind = getattr(target, "name", type(target).__name__)
        raise BackupError(
            f"cannot copy a PostgreSQL database into a {kind} environment",
            hint="copy_db works between environments of the same engine",
        )
    # Uncompressed: the bytes go straight from one tool to the other.
    argv, env, _ = dump_command(source, compress=0)
    dumper = Tool(argv, env, stdout=subprocess.PIPE)

    def check_source(restored: bool) -> None:
        status = dumper.wait()
        if status == 0 or (not restored and status == -signal.SIGPIPE):
            return  # a broken pipe is only the consequence of pg_restore's own failure
        raise tool_failed(source.environment, "pg_dump", status, dumper.stderr)

    try:
        assert dumper.process.stdout is not None
        return _restore(
            target,
            stdin=dumper.process.stdout,
            pump=None,
            privileges=privileges,
            check_source=check_source,
        )
    finally:
        dumper.kill()


def recover(engine: PostgresEngine) -> str | None:
    """Drop what interrupted restores into ``engine``'s database left; None if nothing."""
    env = engine.environment
    admin, admin_db = _admin(env)
    try:
        with translated(env, "recovering an interrupted restore", dbname=admin_db):
            _lock(admin, env)
            return _drop_leftovers(admin, env)
    finally:
        _unlock_and_close(admin)


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


def _restore(
    engine: PostgresEngine,
    *,
    stdin: int | IO[bytes],
    pump: Callable[[IO[bytes]], tuple[int, bool]] | None,
    privileges: bool,
    check_source: Callable[[bool], None] | None = None,
) -> RestoreResult:
    started = time.monotonic()
    env = engine.environment
    db = env.database
    engine.disconnect()  # our own sessions on the target would only be ended by the swap
    admin, admin_db = _admin(env)
    try:
        with translated(env, "preparing the restore", dbname=admin_db):
            _lock(admin, env)
            recovered = _drop_leftovers(admin, env)
            props = dbprops.read(admin, db)
            tool_path, version = find_tool("pg_restore", admin.info.server_version)
            scratch, old = scratch_names(db)
        try:
            # Inside the try: an interrupt during CREATE DATABASE may find it done after all.
            with translated(env, "preparing the restore", dbname=admin_db):
                admin.execute(dbprops.create_statement(scratch, props))
            child_env, dbname = child_environment(env, scratch)
            argv = [str(tool_path), "--no-password", "--exit-on-error", "--no-owner"]
            argv += [] if privileges else ["--no-privileges"]
            tool = Tool([*argv, f"--dbname={dbname}"], child_env, stdin=stdin)
            if not isinstance(stdin, int):
                stdin.close()  # pg_restore has its own copy; ours would keep pg_dump waiting
            size: int | None = None
            complete = True
            try:
                if pump is not None and tool.process.stdin is not None:
                    size, complete = pump(tool.process.stdin)
                status = tool.wait()
            except BaseException:
                tool.kill()
                raise
            if check_source is not None:
                check_source(status == 0)
            if status != 0:
                raise tool_failed(env, "pg_restore", status, tool.stderr)
            if not complete:
                raise BackupError(
                    f"pg_restore ended before reading all of the dump for database {db!r}; "
                    "the dump may be corrupt, so the target was left as it was"
                )
            tables = _tables(env, scratch) or ()
            before = _tables(env, db) if props is not None else ()
            with translated(env, "swapping in the restored database", dbname=admin_db):
                _swap(admin, env, scratch, old, props)
        except BaseException:
            with suppress(Exception):
                _drop(admin, scratch)
            raise
        with suppress(Exception):  # a leftover is dropped by the next restore
            _drop(admin, old)
    finally:
        _unlock_and_close(admin)
    return RestoreResult(
        database=db,
        bytes=size,
        seconds=time.monotonic() - started,
        tables=tables,
        dropped=tuple(sorted(set(before or ()) - set(tables))),
        created=props is None,
        recovered=recovered,
        tool_version=version,
    )


def _admin(env: Environment) -> tuple[psycopg.Connection[Any], str]:
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


def _lock(admin: psycopg.Connection[Any], env: Environment) -> None:
    row = admin.execute(
        "SELECT pg_try_advisory_lock(%s)", (advisory_key(f"restore/{env.database}"),)
    ).fetchone()
    if not (row and row[0]):
        raise RestoreBusy(
            f"another restore into database {env.database!r} (environment {env.name!r}) is "
            "running; nothing was done",
            hint="wait for it to finish, then run this one again",
        )


def _unlock_and_close(admin: psycopg.Connection[Any]) -> None:
    # Unlocked explicitly: a closing session lets go of its locks a moment later, and a restore
    # that follows at once would find the lock still held.
    with suppress(Exception):
        admin.execute("SELECT pg_advisory_unlock_all()")
    admin.close()


def _drop_leftovers(admin: psycopg.Connection[Any], env: Environment) -> str | None:
    prefix = leftover_prefix(env.database)
    rows = admin.execute(
        "SELECT datname FROM pg_database WHERE left(datname, char_length(%s)) = %s",
        (prefix, prefix),
    ).fetchall()
    names = sorted(str(r[0]) for r in rows if _LEFTOVER.fullmatch(str(r[0])[len(prefix) :]))
    for name in names:
        _drop(admin, name)
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


def _swap(
    admin: psycopg.Connection[Any],
    env: Environment,
    scratch: str,
    old: str,
    props: dbprops.DatabaseProps | None,
) -> None:
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


def _drop(admin: psycopg.Connection[Any], name: str) -> None:
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


def _tables(env: Environment, dbname: str) -> tuple[str, ...] | None:
    """``schema.name`` of the tables, views and foreign tables of ``dbname``; None if unknown."""
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
                "AND n.nspname !~ '^pg_toast' ORDER BY 1"
            ).fetchall()
        return tuple(str(r[0]) for r in rows)
    except MonarchError:
        return None
    finally:
        conn.close()

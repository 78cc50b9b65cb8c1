"""Restoring a custom-format dump into a PostgreSQL database, by a swap (see :mod:`.swap`).

1. The restore lock is taken, and databases a killed restore left are dropped.
2. ``CREATE DATABASE <db>__monarch_restore_<token>`` with the target's encoding, locale and
   tablespace; ``pg_restore --exit-on-error --no-owner`` into it (objects end up owned by the
   restoring role, as on a server where the dump's owners may not exist).
3. The target's audit trail is copied into the scratch database (it belongs to the
   environment: :func:`.history.carry_events`), and the caller's entry for this restore is
   added to it (``audit``): the swap ends the session of the caller's environment lock, so an
   entry written after it could land behind a migration that took the lock at once; written
   here, it arrives with the data, or not at all.
4. Only if pg_restore exited 0 and read the whole dump, and the caller's ``before_swap`` did not
   raise: the swap. Other sessions on the target are ended (``pg_terminate_backend``: renaming a
   database needs it to have none; applications must reconnect, and see the new contents).
   Then, in one transaction: rename the target to ``<db>__monarch_old_<token>``, the scratch
   database to the target's name, and give it the old one's owner, GRANTs, settings and comment
   (see :mod:`.dbprops`).
5. The old database is dropped.

A failure or a kill before the swap commits leaves the target untouched (the scratch database is
dropped then, or by the next restore); a kill after it leaves only the old copy, dropped by the
next restore or :func:`recover`. The restoring role needs CREATEDB, and to own the target.
"""

from __future__ import annotations

import subprocess
import time
from contextlib import suppress
from typing import TYPE_CHECKING

from monarch.engines.base import CollectionRestored, RestoreStats
from monarch.engines.postgres import dbprops
from monarch.engines.postgres.conninfo import child_environment
from monarch.engines.postgres.errors import tool_failed, translated
from monarch.engines.postgres.history import add_entry, carry_events
from monarch.engines.postgres.swap import (
    admin_connection,
    drop_database,
    drop_leftovers,
    drop_scratch,
    list_tables,
    lock_restore,
    scratch_names,
    swap,
    unlock_and_close,
)
from monarch.engines.postgres.tools import CHUNK, Tool, find_tool
from monarch.errors import BackupError
from monarch.progress import Item, NullProgress

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import IO

    from monarch.config import Environment
    from monarch.engines.postgres import PostgresEngine
    from monarch.history import AuditEntry
    from monarch.io import Readable
    from monarch.progress import Progress


def restore(
    engine: PostgresEngine,
    inp: Readable,
    *,
    progress: Progress | None = None,
    before_swap: Callable[[], None] | None = None,
    privileges: bool = True,
    audit: AuditEntry | None = None,
) -> RestoreStats:
    """Replace ``engine``'s database with the dump read from ``inp`` (see the module doc).

    ``progress`` hears ``start("restore", ...)`` with one item, the database, advanced by the
    bytes read, and its ``finish_item`` once the swap is done.
    """
    started = time.monotonic()
    env = engine.environment
    db = env.database
    progress = progress or NullProgress()
    progress.start("restore", [Item(db, None, None, unit="database")])
    engine.disconnect()  # our own sessions on the target would only be ended by the swap
    admin, admin_db = admin_connection(env)
    try:
        with translated(env, "preparing the restore", dbname=admin_db):
            lock_restore(admin, env)
            recovered = drop_leftovers(admin, env)
            props = dbprops.read(admin, db)
            tool_path, _ = find_tool("pg_restore", admin.info.server_version)
            scratch, old = scratch_names(db)
        try:
            # Inside the try: an interrupt during CREATE DATABASE may find it done after all.
            with translated(env, "preparing the restore", dbname=admin_db):
                admin.execute(dbprops.create_statement(scratch, props))
            load_scratch(env, inp, scratch, tool_path, progress, privileges=privileges)
            tables = list_tables(env, scratch) or ()
            before = list_tables(env, db) if props is not None else ()
            if props is not None:
                carry_events(env, db, scratch)
            if audit is not None:
                add_entry(engine, scratch, audit, len(tables))
            if before_swap is not None:
                before_swap()
            with translated(env, "swapping in the restored database", dbname=admin_db):
                swap(admin, env, scratch, old, props)
        except BaseException:
            with suppress(Exception):
                drop_scratch(admin, env, scratch)
            raise
        with suppress(Exception):  # a leftover is dropped by the next restore
            drop_database(admin, old)
    finally:
        unlock_and_close(admin)
    progress.finish_item(db)
    return RestoreStats(
        database=db,
        collections=tuple(CollectionRestored(name, 0, 0, (), "table") for name in tables),
        dropped=tuple(sorted(set(before or ()) - set(tables))),
        recovered=recovered,
        seconds=time.monotonic() - started,
    )


def load_scratch(env: Environment, inp: Readable, scratch: str, tool_path: Path,
                 progress: Progress, *, privileges: bool) -> None:
    """pg_restore the dump read from ``inp`` into the (new, empty) database ``scratch``.

    Raises unless pg_restore exited 0 having read the whole dump; ``progress`` hears the
    bytes read under the target's name.
    """
    db = env.database
    child_env, dbname = child_environment(env, scratch)
    argv = [str(tool_path), "--no-password", "--exit-on-error", "--no-owner"]
    argv += [] if privileges else ["--no-privileges"]
    tool = Tool([*argv, f"--dbname={dbname}"], child_env, stdin=subprocess.PIPE)
    try:
        assert tool.process.stdin is not None
        complete = _pump(inp, tool.process.stdin, progress, db)
        status = tool.wait()
    except BaseException:
        tool.kill()
        raise
    if status != 0:
        raise tool_failed(env, "pg_restore", status, tool.stderr)
    if not complete:
        raise BackupError(
            f"pg_restore ended before reading all of the dump for database {db!r}; "
            "the dump may be corrupt, so the target was left as it was"
        )


def _pump(inp: Readable, sink: IO[bytes], progress: Progress, item: str) -> bool:
    """Copy ``inp`` into pg_restore's stdin; False if pg_restore stopped reading first."""
    try:
        while chunk := inp.read(CHUNK):
            sink.write(chunk)
            progress.advance(item, 0, len(chunk))
        sink.close()
    except BrokenPipeError:
        # pg_restore stopped reading; its exit status tells whether that was an error.
        return False
    return True


def recover(engine: PostgresEngine) -> str | None:
    """Drop what interrupted restores into ``engine``'s database left; None if nothing."""
    env = engine.environment
    admin, admin_db = admin_connection(env)
    try:
        with translated(env, "recovering an interrupted restore", dbname=admin_db):
            lock_restore(admin, env)
            return drop_leftovers(admin, env)
    finally:
        unlock_and_close(admin)

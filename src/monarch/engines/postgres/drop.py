"""drop_db on PostgreSQL: the database is replaced by a new, empty one.

Dropping it outright would leave the environment pointing at nothing: the next migrate or
restore would fail to connect, and the database's owner, GRANTs, settings and comment would be
lost. So drop_db does what a restore of an empty dump would do, with the same machinery
(:mod:`.swap`): under the restore lock, ``CREATE DATABASE`` a scratch database like the
target (encoding, locale, tablespace; from ``template0``), copy the environment's audit trail
into it and add the caller's entry for this drop (``audit``), swap it in by renames in one
transaction (ending other sessions, as a restore does), give it the old one's properties, and
drop the old one. A failure before the swap leaves the database as it was, its audit trail
without the entry. The entry goes in before the swap for the reason a restore's does
(:func:`.history.add_entry`): the swap ends the session of the caller's environment lock.
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING

from monarch.engines.base import Dropped
from monarch.engines.postgres import dbprops
from monarch.engines.postgres.errors import translated
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

if TYPE_CHECKING:
    from monarch.engines.postgres import PostgresEngine
    from monarch.history import AuditEntry


def drop(engine: PostgresEngine, audit: AuditEntry | None = None) -> Dropped:
    """Replace ``engine``'s database by an empty one like it (see the module doc); ``audit``
    makes the drop's audit entry from the number of tables removed."""
    env = engine.environment
    db = env.database
    engine.disconnect()  # our own session would only be ended by the swap
    admin, admin_db = admin_connection(env)
    try:
        with translated(env, "preparing to drop the database", dbname=admin_db):
            lock_restore(admin, env)
            recovered = drop_leftovers(admin, env)
            props = dbprops.read(admin, db)
        if props is None:
            return Dropped(db, existed=False, recovered=recovered)
        tables = list_tables(env, db) or ()
        scratch, old = scratch_names(db)
        try:
            with translated(env, "creating the empty database", dbname=admin_db):
                admin.execute(dbprops.create_statement(scratch, props))
            carry_events(env, db, scratch)  # the audit trail is the environment's
            if audit is not None:
                add_entry(engine, scratch, audit, len(tables))
            with translated(env, "swapping in the empty database", dbname=admin_db):
                swap(admin, env, scratch, old, props)
        except BaseException:
            with suppress(Exception):
                drop_scratch(admin, env, scratch)
            raise
        with suppress(Exception):  # a leftover is dropped by the next restore or drop
            drop_database(admin, old)
    finally:
        unlock_and_close(admin)
    how = "replaced it by an empty database with the same owner, grants and settings"
    return Dropped(db, True, tables, how, recovered)

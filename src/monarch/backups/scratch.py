"""Scratch databases: a throwaway database on an environment's server, removed afterwards.

``with scratch(home) as s:`` gives :class:`Scratch`: a database that did not exist before, on
``home``'s server (SQLite: a file in ``home``'s folder, or in ``folder``), with an unconnected
engine aimed at it. Fill it (``s.engine.restore(...)``, a copy, migrations), read it, compare
it; when the block ends it is removed, whether the block returned, raised, or was interrupted
(Ctrl-C, or SIGTERM as :class:`~monarch.errors.Terminated`). ``keep=True`` leaves it for
inspection.

The guarantees, and how they are kept:

- **Never an existing database.** Names are ``monarch_scratch_<UTC time>_<random>``; the
  server's databases with the prefix are listed first and a listed name is never taken, the
  scratch lock is taken before the database is created, and the creation itself fails on an
  existing database where the server can say so (PostgreSQL, SQLite).
- **Live runs are marked.** While the block runs, the scratch database's lock
  (:meth:`~monarch.engines.base.Engine.scratch_lock`) is held, its lease renewed by
  :class:`~monarch.migrations.lease.Lease`'s heartbeat. The lock outlives a restore into the
  database, and its holder's death frees it (PostgreSQL and SQLite at once; MongoDB at once
  for a holder of this machine whose process is gone, by the rule of the environment's lock,
  :mod:`monarch.engines.mongo.lock`, else when the lease, ``MONARCH_SCRATCH_LEASE`` seconds,
  default 30, runs out).
- **Leftovers are removed, never a live run's.** A run killed with SIGKILL cannot clean up.
  :func:`remove_leftovers` (run first by every :func:`scratch`, and by ``monarch recover``)
  takes the lock of each scratch database on the server; one it can take belongs to no live
  run and is removed, one it cannot is left alone.
- ``keep=True`` databases are named ``monarch_kept_<time>_<random>``: no leftover, never
  removed by monarch (drop them with the server's own tools, or delete the file).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from monarch.engines import engine_for, registry
from monarch.errors import MonarchError
from monarch.history import LockOwner
from monarch.migrations.lease import Lease, current_owner
from monarch.migrations.progress import LoggingReporter

if TYPE_CHECKING:
    from monarch.config import Environment
    from monarch.engines.base import Engine

log = logging.getLogger("monarch.backups")

PREFIX = "monarch_scratch_"
KEPT_PREFIX = "monarch_kept_"
_NAME = re.compile(rf"^(?:{PREFIX}|{KEPT_PREFIX})(\d{{8}}T\d{{6}}Z)_[0-9a-f]{{8}}$")
_LEASE_VARIABLE = "MONARCH_SCRATCH_LEASE"
DEFAULT_LEASE = 30.0


@dataclass(frozen=True)
class Scratch:
    """A scratch database in use (see the module doc).

    ``engine`` is aimed at it (unconnected until used; closed when the block ends);
    ``environment`` is that engine's, named after the database and never protected. ``removed``:
    the leftovers of killed runs removed before it was made. ``kept``: it stays afterwards.
    """

    name: str
    environment: Environment
    engine: Engine
    removed: tuple[str, ...] = ()
    kept: bool = False


@contextmanager
def scratch(
    home: Environment,
    *,
    folder: str | os.PathLike[str] | None = None,
    keep: bool = False,
    purpose: str = "scratch",
    lease: float | None = None,
) -> Iterator[Scratch]:
    """A new scratch database on ``home``'s server, removed when the block ends (see the
    module doc).

    ``home`` is only used for its server and credentials: its own database is not touched
    (for SQLite, the scratch file goes in ``folder``, default the folder of ``home``'s file).
    Deciding whether ``home``'s server may be written to at all is the caller's part.
    ``purpose`` names the work in the lock (``who`` holds it, for messages). ``lease``: the
    MongoDB lock's lease in seconds (default ``$MONARCH_SCRATCH_LEASE``, else 30). Raises
    :class:`~monarch.errors.MonarchError` when the server cannot be reached or refuses.
    A failure to remove the database at the end is logged and raised only when the block
    itself succeeded; the next run removes it.
    """
    owner = current_owner(purpose)
    seconds = lease if lease is not None else _default_lease()
    removed = remove_leftovers(home, folder=folder, owner=owner, lease=seconds)
    lister = engine_for(_aimed(home, PREFIX, folder))
    try:
        taken = set(lister.databases(KEPT_PREFIX if keep else PREFIX))
    finally:
        lister.close()
    name = new_name(keep)
    while name in taken:  # pragma: no cover - a clash of 32 random bits in the same second
        name = new_name(keep)
    environment = _aimed(home, name, folder)
    engine = engine_for(environment)
    try:
        with Lease(engine.scratch_lock(), owner, environment=name, lease=seconds, timeout=0,
                   reporter=LoggingReporter()):
            try:
                if not engine.create():
                    raise MonarchError(f"scratch database {name!r} appeared on the server "
                                       "before monarch created it; it was left alone",
                                       hint="run again (a new name is drawn)")
                yield Scratch(name, environment, engine, tuple(removed), keep)
            except BaseException:
                if not keep:
                    _remove_quietly(engine, name)
                raise
            if not keep:
                engine.remove()
    finally:
        engine.close()


def remove_leftovers(
    home: Environment,
    *,
    folder: str | os.PathLike[str] | None = None,
    owner: LockOwner | None = None,
    lease: float | None = None,
) -> list[str]:
    """Remove the scratch databases killed runs left on ``home``'s server (SQLite: in
    ``folder``, default ``home``'s folder); return their names. A live run's (its lock held)
    is left alone, as are kept ones; one that cannot be removed now is logged and left for
    next time."""
    owner = owner or current_owner("remove scratch leftovers")
    seconds = lease if lease is not None else _default_lease()
    lister = engine_for(_aimed(home, PREFIX, folder))
    try:
        names = [n for n in lister.databases(PREFIX) if _NAME.fullmatch(n)]
    finally:
        lister.close()
    removed = []
    for name in names:
        engine = engine_for(_aimed(home, name, folder))
        try:
            lock = engine.scratch_lock()
            if not lock.try_acquire(owner, seconds).acquired:
                continue  # a live run's
            try:
                engine.remove()
            finally:
                lock.release(owner)
            removed.append(name)
        except MonarchError as error:
            log.warning("could not remove scratch database %r a killed run left (%s); the "
                        "next run tries again", name, error)
        finally:
            engine.close()
    return removed


def new_name(keep: bool = False) -> str:
    """A fresh scratch database name: the prefix, the UTC time, 32 random bits."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{KEPT_PREFIX if keep else PREFIX}{stamp}_{secrets.token_hex(4)}"


def is_scratch(name: str) -> bool:
    """Whether ``name`` is a scratch database's name (kept or not)."""
    return _NAME.fullmatch(name) is not None


def _aimed(home: Environment, name: str, folder: str | os.PathLike[str] | None) -> Environment:
    row = registry.by_name(home.engine)
    if row is not None and row.file_url:
        where = folder if folder is not None else Path(home.database).parent
        aimed = home.in_folder(where, name)
    else:
        aimed = home.with_database(name)
    return replace(aimed, name=name, protected=False, protected_reason="",
                   backup_before_migrate=False, description=f"scratch database on {home.name}")


def _remove_quietly(engine: Engine, name: str) -> None:
    """Remove after a failure or an interrupt: a second failure must not hide the first."""
    try:
        engine.remove()
    except Exception as error:
        log.warning("could not remove scratch database %r (%s); the next run, or "
                    "`monarch recover`, removes it", name, error)


def _default_lease() -> float:
    try:
        return max(float(os.environ.get(_LEASE_VARIABLE, DEFAULT_LEASE)), 1.0)
    except ValueError:
        return DEFAULT_LEASE

"""The migration lock in PostgreSQL: a session-level advisory lock, described by a table row.

The lock itself is ``pg_try_advisory_lock(key)``, ``key`` derived from the lock's name, taken on
a connection of its own that stays open for the whole run. PostgreSQL grants it to one session at
a time, which makes :meth:`PostgresLock.try_acquire` atomic, and releases it when that session
ends: a holder that is killed, or whose machine vanishes (TCP keepalives are set on the
connection), frees the lock without waiting for its lease.

A row in ``monarch_lock`` names the holder (user, host, pid, command) and its lease, so that
``list_migrations`` and a waiting process can say who holds the lock. How the protocol's lease
maps onto the advisory lock:

- The holder renews its lease by updating its row on its own connection; a renewal fails once
  that connection is gone (the lock went with it) or the row names someone else.
- A row whose session no longer holds the advisory lock belongs to a holder that died: the next
  acquirer takes over at once and reports it as ``previous`` (its lease shown as ended).
- A holder that still holds the advisory lock but stopped renewing (stuck, suspended) is taken
  over once its lease expires by ending its session with ``pg_terminate_backend``, the same as
  ``clear()`` (``monarch unlock``) does at any time. Both need the same role as the holder, or
  membership in ``pg_signal_backend``; without it the lock stays held and the error says so.
"""

from __future__ import annotations

import hashlib
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from monarch.engines.postgres.conninfo import connect
from monarch.engines.postgres.errors import translated
from monarch.engines.postgres.history import ensure_table
from monarch.errors import ConnectionFailed, LockError, MonarchError, ServerBusy
from monarch.history import LOCK_NAME, Acquisition, LockHolder, LockOwner

if TYPE_CHECKING:
    import psycopg

    from monarch.engines.postgres import PostgresEngine

LOCK_TABLE = LOCK_NAME
_COLUMNS = {
    "name": "text PRIMARY KEY",
    "token": "text NOT NULL",
    "user": "text NOT NULL DEFAULT ''",
    "host": "text NOT NULL DEFAULT ''",
    "pid": "bigint NOT NULL DEFAULT 0",
    "command": "text NOT NULL DEFAULT ''",
    "version": "text NOT NULL DEFAULT ''",
    "backend_pid": "integer",
    "acquired_at": "timestamptz NOT NULL",
    "expires_at": "timestamptz NOT NULL",
    "released_at": "timestamptz",
    "released_by": "text",
}
# Session settings of the lock's connection: notice a vanished client or server within a
# minute, and never let an idle timeout end the session (it holds the lock between renewals).
_SESSION = (
    "SET tcp_keepalives_idle = 15",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 4",
    "SET idle_session_timeout = 0",  # PostgreSQL 14+; older servers have no such timeout
)
TERMINATE_WAIT = 5.0


def advisory_key(name: str) -> int:
    """The signed 64-bit advisory lock key of the lock ``name`` (stable across versions)."""
    digest = hashlib.sha256(f"monarch:lock:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class _State:
    row: dict[str, Any] | None
    session: int | None  # backend pid that holds the advisory lock, if any
    now: datetime

    @property
    def live_row(self) -> bool:
        return self.row is not None and self.row["released_at"] is None

    @property
    def row_is_holders(self) -> bool:
        """Whether the row describes the session that holds the lock right now."""
        return (
            self.live_row
            and self.session is not None
            and self.row is not None
            and (self.row["backend_pid"] == self.session)
        )


class PostgresLock:
    """:class:`~monarch.history.MigrationLock` named ``name`` (see the module doc)."""

    def __init__(self, engine: PostgresEngine, name: str = "migrate") -> None:
        self._engine = engine
        self.name = name
        self.key = advisory_key(name)
        self._held: dict[str, psycopg.Connection[Any]] = {}  # owner token -> its session
        self._spare: psycopg.Connection[Any] | None = None  # holds nothing; reused to probe

    def try_acquire(self, owner: LockOwner, lease: float) -> Acquisition:
        conn = self._probe()
        try:
            return self._try_acquire(conn, owner, lease)
        except ConnectionFailed as error:
            raise self._session_lost(conn, error) from error

    def _try_acquire(
        self, conn: psycopg.Connection[Any], owner: LockOwner, lease: float
    ) -> Acquisition:
        env = self._engine.environment
        with translated(env, "taking the migration lock"):
            got = self._try_lock(conn)
            previous = None
            if not got:
                state = self._state(conn)
                if not (state.row_is_holders and _expired(state)):
                    self._spare = conn
                    return Acquisition(False, holder=_holder(state))
                # A live session whose lease ran out: it is stuck. End it and take over.
                previous = _holder(state)
                got = self._terminate(conn, state.session) and self._wait_lock(conn)
                if not got:
                    self._spare = conn
                    return Acquisition(False, holder=_holder(self._state(conn)))
        try:
            with translated(env, "taking the migration lock"):
                ensure_table(conn, LOCK_TABLE, _COLUMNS)
                if previous is None:
                    state = self._state(conn)
                    # Our session holds the lock, so a live row is a dead session's.
                    previous = _holder(state, ended=True) if state.live_row else None
                self._write(conn, owner, lease)
        except BaseException:
            conn.close()  # ends the session, which frees the advisory lock
            raise
        self._held[owner.token] = conn
        return Acquisition(True, previous=previous)

    def renew(self, owner: LockOwner, lease: float) -> bool:
        import psycopg

        conn = self._held.get(owner.token)
        if conn is None:
            return False
        try:
            cursor = conn.execute(
                f'UPDATE "{LOCK_TABLE}" SET expires_at = clock_timestamp() + %s * interval '
                "'1 second' WHERE name = %s AND token = %s AND released_at IS NULL",
                (lease, self.name, owner.token),
            )
        except (psycopg.OperationalError, psycopg.InterfaceError):
            # The session is gone, and the advisory lock with it.
            self._forget(owner.token)
            return False
        except psycopg.Error:
            with translated(self._engine.environment, "renewing the migration lock"):
                raise
        if cursor.rowcount != 1:  # cleared by `monarch unlock`, or taken over
            self._forget(owner.token)
            return False
        return True

    def release(self, owner: LockOwner) -> None:
        import psycopg

        conn = self._held.pop(owner.token, None)
        if conn is None:
            return
        try:
            conn.execute(
                f'UPDATE "{LOCK_TABLE}" SET released_at = clock_timestamp(), '
                "expires_at = clock_timestamp() WHERE name = %s AND token = %s "
                "AND released_at IS NULL",
                (self.name, owner.token),
            )
            conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except (psycopg.OperationalError, psycopg.InterfaceError):
            pass  # the session is gone, and the advisory lock with it
        except psycopg.Error:
            with translated(self._engine.environment, "releasing the migration lock"):
                raise
        finally:
            conn.close()

    def holder(self) -> LockHolder | None:
        conn = self._probe()
        try:
            with translated(self._engine.environment, "reading the migration lock"):
                state = self._state(conn)
        except ConnectionFailed as error:
            raise self._session_lost(conn, error) from error
        self._spare = conn
        if not state.live_row:
            return None
        return _holder(state, ended=state.session is None)

    def clear(self, by: LockOwner) -> LockHolder | None:
        conn = self._probe()
        with translated(self._engine.environment, "clearing the migration lock"):
            state = self._state(conn)
            ours = [t for t, c in self._held.items() if _backend_pid(c) == state.session]
            for token in ours:
                self._forget(token)
            if state.session is not None and not ours and not self._terminate(conn, state.session):
                holder = _holder(state)
                who = holder.describe() if holder else f"server session {state.session}"
                raise LockError(
                    f"could not end the session of the migration lock's holder, {who}",
                    hint="stop that process, or run `monarch unlock` as a role that may end "
                    "its session (the same role, or a member of pg_signal_backend)",
                )
            if state.live_row and state.row is not None:
                # Only the row we saw: a waiter may have taken the lock since.
                conn.execute(
                    f'UPDATE "{LOCK_TABLE}" SET released_at = clock_timestamp(), '
                    "expires_at = clock_timestamp(), released_by = %s "
                    "WHERE name = %s AND token = %s AND released_at IS NULL",
                    (by.who, self.name, state.row["token"]),
                )
        self._spare = conn
        return _holder(state, ended=True) if state.live_row else None

    def close(self) -> None:
        """Close every connection of this lock (which releases any lock still held)."""
        for token in list(self._held):
            self._forget(token)
        if self._spare is not None:
            self._spare.close()
            self._spare = None

    # -- internals

    def _session_lost(self, conn: psycopg.Connection[Any], error: ConnectionFailed) -> MonarchError:
        """``error`` as a moment's trouble (ServerBusy, retried by the waiting caller) when it
        only ended the session that was probing: a restore or drop_db ends every session on the
        database when it swaps the new one in, a waiting process's too."""
        if isinstance(error, ServerBusy) or not (conn.closed or conn.broken):
            return error
        conn.close()
        if self._spare is conn:
            self._spare = None
        return ServerBusy(
            f"the session probing the lock of environment {self._engine.environment.name!r} "
            f"was ended ({error.message})",
            hint="a restore or drop_db swapping the database in ends every session; run again",
        )

    def _probe(self) -> psycopg.Connection[Any]:
        """A connection of this lock that holds nothing (a fresh one if needed)."""
        conn, self._spare = self._spare, None
        if conn is not None and not conn.closed:
            return conn
        conn = connect(self._engine.environment, doing="connecting for the migration lock")
        import psycopg

        for statement in _SESSION:
            with suppress(psycopg.Error):
                conn.execute(statement)
        return conn

    def _try_lock(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        return bool(row and row[0])

    def _state(self, conn: psycopg.Connection[Any]) -> _State:
        from psycopg.rows import dict_row

        high, low = (self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF
        found = conn.execute(
            "SELECT pid, clock_timestamp() FROM pg_locks WHERE locktype = 'advisory' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid::int8 = %s AND objid::int8 = %s AND objsubid = 1 AND granted",
            (high, low),
        ).fetchone()
        now_row = found or conn.execute("SELECT NULL, clock_timestamp()").fetchone()
        assert now_row is not None
        row = None
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (LOCK_TABLE,)).fetchone()
        if exists and exists[0]:
            with conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute(
                    f'SELECT * FROM "{LOCK_TABLE}" WHERE name = %s', (self.name,)
                ).fetchone()
        session = int(found[0]) if found else None
        return _State(row=row, session=session, now=_utc(now_row[1]))

    def _terminate(self, conn: psycopg.Connection[Any], session: int | None) -> bool:
        """End server session ``session``; True once it no longer holds the lock."""
        import psycopg

        if session is None:
            return True
        try:
            row = conn.execute("SELECT pg_terminate_backend(%s)", (session,)).fetchone()
        except psycopg.errors.InsufficientPrivilege:
            return False
        if not (row and row[0]):
            return False
        deadline = time.monotonic() + TERMINATE_WAIT
        while time.monotonic() < deadline:
            if self._state(conn).session != session:
                return True
            time.sleep(0.02)
        return False

    def _wait_lock(self, conn: psycopg.Connection[Any]) -> bool:
        """Try the lock for a moment: a competing waiter may well get it first."""
        for _ in range(10):
            if self._try_lock(conn):
                return True
            time.sleep(0.02)
        return False

    def _write(self, conn: psycopg.Connection[Any], owner: LockOwner, lease: float) -> None:
        conn.execute(
            f'INSERT INTO "{LOCK_TABLE}" (name, token, "user", host, pid, command, version, '
            "backend_pid, acquired_at, expires_at, released_at, released_by) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, pg_backend_pid(), clock_timestamp(), "
            "clock_timestamp() + %s * interval '1 second', NULL, NULL) "
            "ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, "
            '"user" = EXCLUDED."user", host = EXCLUDED.host, pid = EXCLUDED.pid, '
            "command = EXCLUDED.command, "
            "version = EXCLUDED.version, backend_pid = EXCLUDED.backend_pid, "
            "acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at, "
            "released_at = NULL, released_by = NULL",
            (
                self.name,
                owner.token,
                owner.user,
                owner.host,
                owner.pid,
                owner.command,
                owner.version,
                lease,
            ),
        )

    def _forget(self, token: str) -> None:
        conn = self._held.pop(token, None)
        if conn is not None:
            conn.close()


def _backend_pid(conn: psycopg.Connection[Any]) -> int | None:
    return None if conn.closed else conn.info.backend_pid


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _expired(state: _State) -> bool:
    return state.row is not None and _utc(state.row["expires_at"]) <= state.now


def _holder(state: _State, *, ended: bool = False) -> LockHolder | None:
    """The row as a LockHolder; ``ended``: its session is gone, so its lease is over now."""
    row = state.row
    if row is None or row["released_at"] is not None:
        return None
    if not ended and state.session is not None and row["backend_pid"] != state.session:
        return None  # the row is a dead holder's; the live one has not written its own yet
    expires = _utc(row["expires_at"])
    if ended:
        expires = min(expires, state.now)
    return LockHolder(
        token=str(row["token"]),
        user=str(row["user"]),
        host=str(row["host"]),
        pid=int(row["pid"]),
        command=str(row["command"]),
        acquired_at=_utc(row["acquired_at"]),
        expires_at=expires,
        checked_at=state.now,
    )

"""Every error monarch raises on purpose derives from :class:`MonarchError`.

The library never prints and never exits: it raises one of these, and the CLI turns it into
``Error: <message>`` (plus ``Try: <hint>`` when there is one) and an exit code. Driver errors
(pymongo, boto, psycopg) are translated into these in one place per backend, ``from`` the original.

Messages must never contain a secret: build them from redacted values only.
"""

from __future__ import annotations

import signal
from datetime import datetime


class MonarchError(Exception):
    """Root of monarch's errors.

    ``hint`` is the next step a user can take (shown as ``Try: ...``); ``exit_code`` is what the
    CLI exits with: 2 for usage and configuration errors, 1 for operations that failed.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(MonarchError):
    """The configuration is missing, unreadable or invalid."""

    exit_code = 2


class UsageError(MonarchError):
    """A command was called with arguments that cannot work."""

    exit_code = 2


class NotImplementedYet(MonarchError):
    """A command exists but its feature is not built yet."""


class ConnectionFailed(MonarchError):
    """A database or store could not be reached (message names the host, never a password)."""


class DatabaseMissing(ConnectionFailed):
    """The environment's database does not exist (yet) on a server that was reached."""


class ServerBusy(ConnectionFailed):
    """The server turned a request away for a moment (busy, locked, a dropped connection):
    the same request may well succeed if tried again a little later."""


class ConfirmationRequired(MonarchError):
    """A protected environment needs the user to confirm a destructive command."""

    exit_code = 2


class MigrationError(MonarchError):
    """A migration could not be loaded, planned or run."""


class MigrationFailed(MigrationError):
    """A migration raised: it is recorded as failed, later ones did not run.

    ``result`` is the command's result up to the failure (what ran before it).
    """

    def __init__(self, message: str, *, hint: str | None = None, result: object = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result


class SQLError(MigrationError):
    """A statement of a ``.sql`` migration failed: the database's message, naming the file and
    the line (``path``, ``line``: where the statement starts, or the token the server blames)."""

    def __init__(self, message: str, *, path: str, line: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.line = line


class StatementFailed(MigrationError):
    """One SQL statement failed on the server: the database's message (and its DETAIL and HINT
    lines); ``position``: the offset in the statement the server blames (0: its start)."""

    def __init__(self, message: str, *, position: int = 0) -> None:
        super().__init__(message)
        self.position = position


class LockError(MigrationError):
    """The migration lock is held by someone else or could not be taken."""


class DriftError(MigrationError):
    """An applied migration's file changed and ``strict`` was asked for."""


class TransactionUnsupported(MigrationError):
    """A transactional migration was asked for on a server without transactions."""


class StoreError(MonarchError):
    """A backup store failed."""


class BackupNotFound(StoreError):
    """No complete backup (one with a manifest) has that name."""


class BackupLocked(StoreError):
    """A backup cannot be deleted yet: the store holds it under a retention (Object Lock).

    ``until`` is when the retention ends (an aware UTC datetime) and ``mode`` its mode
    (``"governance"`` or ``"compliance"``).
    """

    def __init__(self, message: str, *, until: datetime, mode: str,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.until = until
        self.mode = mode


class ArchiveError(MonarchError):
    """An archive is corrupt, truncated or not in a format monarch reads."""


class BackupError(MonarchError):
    """A backup, restore or copy failed."""


class ManifestError(BackupError):
    """A backup's manifest is unreadable or not one monarch understands."""


class ManifestTampered(ManifestError):
    """A backup's manifest does not carry the authentication tag the configured key gives it:
    it was edited (or written without the key). The backup is refused."""


class EncryptionError(BackupError):
    """A backup cannot be encrypted or decrypted: the age library, a recipient, the identity or
    the passphrase is missing or wrong. Nothing was written or touched."""


class QuerySetError(ConfigError):
    """A query set file is missing, fails to load, or has an invalid shape."""


class ChecksError(ConfigError):
    """A file of the project's restore checks (``checks/``) fails to load or defines no check:
    the drill stops before anything is restored."""


class RestoreBusy(BackupError):
    """Another restore into the same database is running; nothing was done."""


class IndexRefused(BackupError):
    """The target server refused to build an index of the backup; the target is unchanged."""

    def __init__(self, message: str, *, collection: str, index: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.collection = collection
        self.index = index


class Terminated(KeyboardInterrupt):
    """The work was stopped by a signal: SIGINT (Ctrl-C), SIGTERM or SIGHUP.

    A ``KeyboardInterrupt``, so that every cleanup written for Ctrl-C (temporary files, staging
    collections, scratch databases, child processes, the migration lock, the ``interrupted``
    record) runs the same way whatever stopped the work. The ``monarch`` command's signal
    handlers raise it; a library caller keeps Python's defaults (a plain ``KeyboardInterrupt``
    on Ctrl-C), and gets a ``Terminated`` back only where monarch knows more than "stopped":
    ``message`` says what the interrupted work left, ``hint`` what to do next.
    ``exit_code`` is the shell's convention: 128 + the signal number (130, 143, 129).
    """

    def __init__(
        self, signum: int = 2, *, message: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message or f"stopped by {_signal_name(signum)}")
        self.signum = signum
        self.message = message
        self.hint = hint

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @classmethod
    def of(cls, interrupt: KeyboardInterrupt, message: str, hint: str | None = None) -> Terminated:
        """``interrupt`` (from whichever signal) told with what the interrupted work left."""
        return cls(getattr(interrupt, "signum", 2), message=message, hint=hint)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"

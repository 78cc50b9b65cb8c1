"""The interface every backup store implements (a local folder, S3, memory for tests).

A store holds opaque objects under string keys (``production-20261126T070000Z.archive.zst``).
It knows nothing of backups: the rule that a backup exists only once its manifest is written
belongs to :mod:`monarch.backups`, which writes the archive first and the manifest last.

Contract:

- Keys are ``/``-separated names: not empty, no empty segment, no segment starting with ``.``
  (stores keep their own temporary names there), no backslash or control character, each
  segment at most 200 bytes of UTF-8. Any other key raises ``StoreError`` before anything is
  written (:func:`monarch.stores.local.check_key`).
- ``writer(key)`` returns an :class:`Upload`. Bytes written to it are invisible under ``key``
  until ``commit()`` returns; ``abort()`` (or an exception inside ``with``) leaves nothing visible.
  A process killed mid-upload leaves at most leftovers that ``cleanup()`` removes, never a
  partial object under ``key``. ``exclusive=True`` makes ``commit()`` raise ``StoreError`` if
  ``key`` already exists. When ``write()`` or ``commit()`` fails, the upload is aborted before
  the error is raised; later calls other than ``abort()`` raise ``StoreError``. A key found
  taken by an exclusive commit raises :class:`AlreadyExists` (a ``StoreError``).
- ``reader(key)`` returns a readable binary stream (close it, or use it in ``with``); a missing
  key raises ``ObjectNotFound``.
- ``list(prefix)`` yields every committed object whose key starts with ``prefix``, in key order.
- ``delete(key)`` removes an object; deleting a missing key raises ``ObjectNotFound``.
- ``cleanup(older_than)`` removes leftovers of uploads started more than ``older_than`` seconds
  ago (temporary files, pending multipart uploads) and returns how many it removed.
- Retention (immutable objects): a store whose ``can_lock`` is true takes
  ``writer(key, retention=Retention(mode, until))`` and commits the object so that the backend
  itself refuses to delete or overwrite it before ``until`` (S3 Object Lock). ``retention(key)``
  reads an object's retention back (None when it has none; a missing key raises
  ``ObjectNotFound``), and ``delete(key)`` of an object whose retention has not ended raises
  :class:`ObjectLocked` and removes nothing. A store that cannot lock (a local folder, memory)
  says so: ``can_lock`` is false, a ``writer`` asked for a retention raises ``StoreError``
  before anything is written, and ``retention(key)`` is always None.

Every failure of the backend is raised as :class:`monarch.errors.StoreError` (or a subclass),
with a message that names the store (never a secret) and what to check.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import BinaryIO, Protocol, Self

from monarch.errors import StoreError


class ObjectNotFound(StoreError):
    """The store has no object under that key."""


class AlreadyExists(StoreError):
    """An exclusive write found its key taken (another writer committed it first)."""


LOCK_MODES = ("governance", "compliance")
"""S3 Object Lock's two modes. Under ``governance`` a user with the special permission
``s3:BypassGovernanceRetention`` could still delete (monarch never asks to); under
``compliance`` nobody can, not even the account's root, until the date passes."""


@dataclass(frozen=True)
class Retention:
    """An object's lock: ``mode`` (one of :data:`LOCK_MODES`) and the UTC time it ends."""

    mode: str
    until: datetime

    def holds(self, now: datetime | None = None) -> bool:
        """Whether the object still cannot be deleted at ``now`` (default: this moment)."""
        return self.until > (now or datetime.now(UTC))


class ObjectLocked(StoreError):
    """A delete was refused: the object is under a retention that has not ended."""

    def __init__(self, message: str, *, retention: Retention, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retention = retention


@dataclass(frozen=True)
class ObjectInfo:
    """A committed object: its key, size in bytes and last-modified time (UTC)."""

    key: str
    size: int
    modified: datetime


class Upload(Protocol):
    """A pending object. Use as a context manager: a clean exit commits, an exception aborts."""

    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...

    def commit(self) -> None:
        """Make the object visible under its key, durably. Idempotent."""
        ...

    def abort(self) -> None:
        """Discard everything written. Safe after commit (does nothing) and when called twice."""
        ...

    def __enter__(self) -> Upload: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class UploadBase(ABC):
    """What every store's upload does alike: the ``with`` behaviour and the state checks.

    A subclass sets ``_key`` and ``_state`` (``"open"`` until ``commit()`` or ``abort()`` sets
    another word, shown when a later call is refused) and implements ``write``, ``commit`` and
    ``abort`` as the :class:`Upload` contract says.
    """

    _key: str
    _state: str

    @abstractmethod
    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...

    def _check_open(self) -> None:
        if self._state != "open":
            raise StoreError(f"the upload of {self._key!r} was {self._state}; start a new one")

    def _abort_quietly(self) -> None:
        # The first error matters more; cleanup() removes what abort could not.
        with suppress(StoreError):
            self.abort()

    def _already_exists(self, store_url: str) -> StoreError:
        """The error of an exclusive commit whose key is taken."""
        return AlreadyExists(
            f"{self._key!r} already exists in {store_url}",
            hint="choose another name, or delete the existing object first",
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self._abort_quietly()


class Store(Protocol):
    """Where backups live. See the module docstring for the contract."""

    display_url: str
    """The store's URL as it may be printed (no secrets)."""

    can_lock: bool
    """Whether objects can be written under a retention the backend enforces."""

    def writer(
        self, key: str, *, exclusive: bool = False, retention: Retention | None = None
    ) -> Upload: ...

    def retention(self, key: str) -> Retention | None: ...

    def reader(self, key: str) -> BinaryIO: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None: ...

    def cleanup(self, older_than: float = 3600.0) -> int: ...


def refuse_retention(store_url: str, retention: Retention | None) -> None:
    """What a store that cannot lock does when a writer is asked for a retention."""
    if retention is not None:
        raise StoreError(
            f"{store_url} cannot lock objects: only S3 buckets with Object Lock keep a "
            "backup from being deleted before its retention ends",
            hint="remove retain_days from [backups], or keep backups in such a bucket",
        )

"""Writing a backup into the store: open, stream, commit with the manifest last, or abort.

The pipeline is dump -> compression -> [age encryption] -> SHA-256 -> upload: the SHA-256 and
size are those of the stored bytes. Everything after the dump runs on a thread of its own
(:class:`~monarch.backups._pipe.WriterThread`), so the dump never waits on its output. A store
whose keys call for encryption (``keys.encrypts``) gets an encrypted archive and a sealed
manifest (docs/security.md), or no backup at all: what encryption needs (the library, valid
recipients, the passphrase) is checked before anything is written.

The order is the guarantee. The archive is uploaded under its final key only once it is
complete (the store's commit is atomic); the manifest, written after it with ``exclusive=True``,
is what makes the backup exist. A process killed anywhere before that leaves at most an
unfinished upload or an orphan archive, neither of which is ever listed, and both of which the
next backup or prune removes.

:class:`BackupWriter` is used by ``backup`` and by ``copy_db --keep-backup`` alike::

    with BackupWriter(store, environment, compression="gzip") as writer:
        stats = engine.dump(writer.out)          # engine dump -> compress -> SHA-256 -> upload
        result = writer.commit(stats, engine.backup_format)
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bson import json_util

from monarch._version import __version__
from monarch.archive.compression import METHODS, Method, open_compressed_writer
from monarch.archive.meta import CollectionMeta
from monarch.backups._pipe import WriterThread
from monarch.backups.catalog import LEFTOVER_AGE, remove_orphans
from monarch.backups.encryption import EncryptingWriter, seal
from monarch.backups.keys import BackupKeys
from monarch.backups.manifest import ArchiveEntry, CollectionEntry, Encryption, Manifest
from monarch.backups.naming import (
    archive_key,
    check_environment_name,
    check_label,
    claim_key,
    make_name,
    manifest_key,
)
from monarch.backups.pipeline import CountingWriter, HashingWriter
from monarch.errors import StoreError, UsageError
from monarch.stores.base import AlreadyExists, ObjectNotFound

if TYPE_CHECKING:
    from monarch.backups.retention import RetentionPolicy
    from monarch.config import Config, Environment
    from monarch.engines.base import CollectionDump, DumpStats
    from monarch.stores.base import Retention, Store

_CLAIM_SETTLE = 0.2
"""Seconds between writing a name's claim and reading it back: long enough for a rival write
that was already on its way to land."""

DEFAULT_COMPRESSION: Method = "gzip"
"""Chosen from measurements (docs/backups.md): gzip level 1 through ISA-L compressed and
decompressed fastest here, and stock ``mongorestore --gzip`` reads it with no other tool; zstd
(about 15% smaller archives) is one option away."""


@dataclass(frozen=True)
class BackupResult:
    """A finished backup: its name, manifest and where it is."""

    name: str
    manifest: Manifest
    store_url: str
    retention: Retention | None = None
    """The lock its archive and manifest were written under (None: not locked)."""

    @property
    def archive_key(self) -> str:
        return self.manifest.archive.key

    @property
    def manifest_key(self) -> str:
        return manifest_key(self.name)

    @property
    def size(self) -> int:
        """Bytes of the archive as stored (compressed)."""
        return self.manifest.archive.size

    @property
    def data_bytes(self) -> int:
        """Bytes of BSON documents dumped."""
        return self.manifest.data_bytes

    @property
    def documents(self) -> int:
        return self.manifest.documents

    @property
    def collections(self) -> int:
        return len(self.manifest.collections)

    @property
    def seconds(self) -> float:
        return self.manifest.duration

    @property
    def started_at(self) -> datetime:
        return self.manifest.started_at

    @property
    def finished_at(self) -> datetime:
        return self.manifest.finished_at


def compression_method(config: Config, value: str | None) -> Method:
    """The compression asked for, else the store's ``compression`` option, else gzip."""
    chosen = value if value is not None else config.backups.options.get("compression")
    if chosen is None:
        return DEFAULT_COMPRESSION
    if not isinstance(chosen, str) or chosen not in METHODS:
        raise UsageError(f"unknown compression {chosen!r}",
                         hint="use one of: " + ", ".join(METHODS))
    return chosen


class BackupWriter:
    """One backup being written (see the module): claims a name and opens the upload at once.

    Write the dump into :attr:`out`; then :meth:`commit` (the archive, then the manifest) or
    :meth:`abort`. As a context manager it aborts on any exception left uncommitted.
    """

    def __init__(self, store: Store, environment: Environment, *, compression: Method,
                 label: str | None = None, query_set: str | None = None,
                 retain: RetentionPolicy | None = None,
                 keys: BackupKeys | None = None) -> None:
        check_environment_name(environment.name)
        if label is not None:
            check_label(label)
        self._keys = keys or BackupKeys()
        # Before the store is touched: an encrypted store never gets a plaintext backup.
        self._sealing = self._keys.sealing() if self._keys.encrypts else None
        self._store = store
        self._environment = environment
        self._method = compression
        self._label = label
        self._query_set = query_set
        clean_leftovers(store)
        self.started = datetime.now(UTC)
        # Both objects get the same date, counted from the start: the backup is locked as one.
        self.retention = None if retain is None else retain.retention_from(self.started)
        self.name = claim_name(store, environment.name, label)
        self.committed: BackupResult | None = None
        self._encrypted: EncryptingWriter | None = None
        self._thread: WriterThread | None = None
        try:
            self._key = archive_key(self.name, compression,
                                    encrypted=self._sealing is not None)
            self._upload = store.writer(self._key, exclusive=True, retention=self.retention)
            self._hashed = HashingWriter(self._upload)
            self._encrypted = (None if self._sealing is None else
                               EncryptingWriter(self._hashed, self._sealing.recipients))
            self._compressed = open_compressed_writer(self._encrypted or self._hashed,
                                                      compression)
            self._thread = WriterThread(self._compressed, name="monarch-backup-out")
            self.out = CountingWriter(self._thread)
            """Where the dump goes, uncompressed."""
        except BaseException:
            if self._thread is not None:
                self._thread.abort()
            if self._encrypted is not None:
                self._encrypted.abort()
            release_name(store, self.name)
            raise

    def commit(self, dump: DumpStats, backup_format: str) -> BackupResult:
        """Finish the archive, then write the manifest that makes the backup exist."""
        try:
            assert self._thread is not None
            self._thread.close()
            self._compressed.close()
            if self._encrypted is not None:
                self._encrypted.close()
            self._upload.commit()
        except BaseException as exc:
            self._abort_upload(interrupted=not isinstance(exc, Exception))
            raise
        try:
            manifest = Manifest(
                name=self.name, monarch_version=__version__,
                environment=self._environment.name, engine=self._environment.engine,
                database=self._environment.database, source_host=self._environment.host,
                server_version=dump.server.version, server_details=dump.server.details,
                tool_version=dump.tool_version, started_at=self.started,
                finished_at=datetime.now(UTC), label=self._label, query_set=self._query_set,
                archive=ArchiveEntry(
                    key=self._key, compression=self._method, size=self._hashed.size,
                    sha256=self._hashed.sha256, uncompressed_size=self.out.size,
                    format=backup_format),
                collections=tuple(collection_entry(c) for c in dump.collections),
            )
            if self._sealing is not None:
                sealed = seal(manifest.to_json().encode("utf-8"), self._sealing.recipients)
                manifest = replace(manifest, encryption=Encryption(
                    self._sealing.fingerprints, self._sealing.wrapped_key, sealed))
            tag_key = self._keys.manifest_key.reveal() if self._keys.manifest_key else None
            with self._store.writer(manifest_key(self.name), exclusive=True,
                                    retention=self.retention) as upload:
                upload.write(manifest.to_json(tag_key).encode("utf-8"))
        except BaseException:
            # Failed or interrupted between the archive and its manifest: the archive would
            # be an orphan until the next backup or prune.
            self._remove_unlisted()
            raise
        finally:
            release_name(self._store, self.name)
        self.committed = BackupResult(self.name, manifest, self._store.display_url,
                                      self.retention)
        return self.committed

    def abort(self, *, interrupted: bool = False) -> None:
        """Drop the upload (and, when ``interrupted``, an archive that may have become visible)."""
        if self.committed is None:
            self._abort_upload(interrupted=interrupted)
            release_name(self._store, self.name)

    def _abort_upload(self, *, interrupted: bool) -> None:
        if self._thread is not None:
            self._thread.abort()  # before the upload goes: the thread may be writing into it
        if self._encrypted is not None:
            self._encrypted.abort()
        with suppress(StoreError):  # a leftover upload: the next backup removes it
            self._upload.abort()
        if interrupted:
            # Perhaps inside the commit after the object became visible: an archive without a
            # manifest is removed now rather than left for prune. (The key is ours: its name
            # was claimed.)
            with suppress(StoreError):
                self._store.delete(self._key)

    def _remove_unlisted(self) -> None:
        """Delete the archive unless its manifest exists after all (an interrupt can arrive
        after the store committed it, but before the call returned)."""
        # If this fails too, the archive is an orphan that the next backup or prune removes.
        with suppress(StoreError):
            wanted = manifest_key(self.name)
            if any(info.key == wanted for info in self._store.list(wanted)):
                return
            self._store.delete(self._key)

    def __enter__(self) -> BackupWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if kind is not None:
            self.abort(interrupted=not issubclass(kind, Exception))


def collection_entry(dump: CollectionDump) -> CollectionEntry:
    """The manifest's entry for one dumped collection (or table)."""
    if not dump.metadata:
        return CollectionEntry(name=dump.name, type=dump.type, documents=dump.documents,
                               bytes=dump.size, crc64=dump.crc64)
    meta = CollectionMeta("", dump.name, dump.metadata, dump.type)
    return CollectionEntry(
        name=dump.name,
        type=dump.type,
        documents=dump.documents,
        bytes=dump.size,
        crc64=dump.crc64,
        indexes=tuple(_plain_json(meta.parsed.get("indexes") or [])),
        options=_plain_json(meta.parsed.get("options") or {}),
    )


def _plain_json(value: object) -> Any:
    """BSON values as relaxed Extended JSON structures: readable, and json.dumps can write
    them. The archive keeps the exact metadata; the manifest's copy is for people and checks."""
    return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))


def clean_leftovers(store: Store) -> None:
    """Remove what killed backups left (unfinished uploads, orphan archives), if old enough."""
    store.cleanup(LEFTOVER_AGE)
    remove_orphans(store, LEFTOVER_AGE)


def claim_name(store: Store, environment: str, label: str | None) -> str:
    """A name no other backup has or is taking, reserved by writing its claim exclusively.

    The store's exclusive write is the arbiter: of several backups started in the same second
    one wins the name, the others wait for the next second and try again. The claim holds a
    random token that is read back after a moment, so a store whose exclusive write is not
    atomic (a look-then-write fallback, some S3 look-alikes) still gives the name to one
    writer only: the last to land. Remove the claim with :func:`release_name` once the
    manifest is written (or the backup failed).
    """
    deadline = time.monotonic() + 60
    token = uuid.uuid4().hex.encode()
    while time.monotonic() < deadline:
        now = datetime.now(UTC)
        name = make_name(environment, now, label)
        if next(iter(store.list(name + ".")), None) is None and _claim(store, name, token):
            return name
        time.sleep(1.0 - datetime.now(UTC).microsecond / 1e6 + 0.01)
    raise StoreError(
        f"could not find a free backup name for {environment!r} in 60 seconds",
        hint="are many backups of this environment starting at once?",
    )


def _claim(store: Store, name: str, token: bytes) -> bool:
    try:
        with store.writer(claim_key(name), exclusive=True) as upload:
            upload.write(token)
        time.sleep(_CLAIM_SETTLE)
        with store.reader(claim_key(name)) as stream:
            return bool(stream.read() == token)
    except (AlreadyExists, ObjectNotFound):
        return False  # another backup took this second first
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM) while claiming: take back a claim that is ours.
        with suppress(StoreError, ObjectNotFound):
            with store.reader(claim_key(name)) as stream:
                ours = stream.read() == token
            if ours:
                store.delete(claim_key(name))
        raise


def release_name(store: Store, name: str) -> None:
    """Remove ``name``'s claim (a claim that cannot be removed is a leftover prune removes)."""
    with suppress(StoreError):
        store.delete(claim_key(name))

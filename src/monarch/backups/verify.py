"""Verifying a backup: read the whole archive back from the store and check it against its
manifest, without a database.

Checked: the archive exists, its size and SHA-256 (over the stored, compressed bytes), its
compression, its structure (magic, header, blocks, terminators, end-of-collection blocks), each
collection's CRC-64 (against the archive's own end blocks, and the manifest's), document count,
bytes and index names, and that archive and manifest list the same collections.

The archive is read through the one checked reader of stored backups
(:mod:`monarch.backups.stored`) and handed to its engine's ``check``: MongoDB's reads the
archive itself; PostgreSQL's and SQLite's backups are opaque to monarch and are checked by their
own tool (``pg_restore`` into nowhere; SQLite's integrity check on a temporary copy).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from monarch.archive.zipdump import check_zip_dump
from monarch.backups.catalog import open_manifest
from monarch.backups.keys import BackupKeys
from monarch.backups.legacy import SUFFIX, is_legacy, locate
from monarch.backups.manifest import unit_of
from monarch.backups.naming import check_name
from monarch.backups.stored import check_stored, collection_problems, open_checked
from monarch.engines import engine_class
from monarch.errors import ArchiveError, BackupError, BackupNotFound, StoreError
from monarch.progress import Item, NullProgress, ReportingReader, Summary
from monarch.stores.base import ObjectNotFound

if TYPE_CHECKING:
    from monarch.backups.manifest import Manifest
    from monarch.io import Readable
    from monarch.progress import Progress
    from monarch.stores.base import Store


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify`: ``ok`` when ``problems`` is empty."""

    name: str
    problems: tuple[str, ...]
    collections: int
    """Collections whose end-of-collection block was read and checked."""
    documents: int
    size: int
    """Bytes of the archive read from the store."""
    seconds: float
    checked: str = "structure, CRCs, counts, size and SHA-256"
    """What was checked against the manifest (for the report)."""
    unit: str = "collection"
    """What ``collections`` counts: ``"collection"`` (of documents) or ``"table"`` (of rows)."""
    legacy: bool = False
    """A backup of monarch 0.0.x: checked by itself, having no manifest."""
    encrypted: bool = False
    """An encrypted backup: its problems may name collections, which only its identity may
    read (:meth:`shareable` keeps them out of what is written in the clear)."""

    @property
    def ok(self) -> bool:
        """Whether the backup is sound."""
        return not self.problems

    def shareable(self) -> VerifyResult:
        """This result as it may be written in the clear (the store's verify record): for an
        encrypted backup, no counts, and its problems counted rather than quoted."""
        if not self.encrypted:
            return self
        problems = () if not self.problems else (
            f"{len(self.problems)} problem(s); the backup is encrypted, so they are not "
            f"written here: run `monarch verify {self.name}` with its identity",)
        return replace(self, collections=0, documents=0, problems=problems)


def verify(store: Store, name: str, *, progress: Progress | None = None,
           keys: BackupKeys | None = None) -> VerifyResult:
    """Read backup ``name``'s whole archive from ``store`` and check it against its manifest.

    Returns a result listing every problem found (a damaged backup is an answer, not an
    error). Raises :class:`~monarch.errors.BackupNotFound` if there is no such backup, and
    :class:`~monarch.errors.ManifestError` if its manifest cannot be read. A backup of monarch
    0.0.x (or the path of one) is read wholly and checked by itself (:func:`verify_legacy`).

    With ``keys``: a manifest whose HMAC tag does not match raises
    :class:`~monarch.errors.ManifestTampered`, and an encrypted backup is decrypted (a
    missing or wrong identity raises :class:`~monarch.errors.EncryptionError`); damaged or
    edited ciphertext is a problem found.
    """
    if is_legacy(name):
        return verify_legacy(store, name)
    keys = keys or BackupKeys()
    manifest = open_manifest(store, check_name(name), keys)
    return verify_manifest(store, manifest, progress=progress, keys=keys)


def verify_manifest(
    store: Store, manifest: Manifest, *, progress: Progress | None = None,
    keys: BackupKeys | None = None,
) -> VerifyResult:
    """Check the archive that ``manifest`` describes (see :func:`verify`)."""
    started = time.monotonic()
    progress = progress or NullProgress()
    archive = manifest.archive
    unit = unit_of(archive.format)
    try:
        stream = open_checked(store, manifest, raise_on_mismatch=False, keys=keys)
    except ObjectNotFound:
        return VerifyResult(manifest.name, (f"the archive {archive.key} is missing",), 0, 0, 0,
                            time.monotonic() - started, unit=unit)
    except ArchiveError as exc:  # an encrypted archive whose first chunk does not decrypt
        damage = [f"archive: {exc.message}", *check_stored(store, manifest)]
        return VerifyResult(manifest.name, tuple(damage), 0, 0, archive.size,
                            time.monotonic() - started, unit=unit,
                            encrypted=manifest.encryption is not None)
    problems: list[str] = []
    with stream:
        if unit == "collection":  # the engine's check reports each collection it reads
            progress.start("verify", [Item(c.name, c.documents, c.bytes)
                                      for c in manifest.collections])
            inp: Readable = stream
        else:  # an opaque stream: its bytes
            progress.start("verify", [Item(manifest.database, None, archive.uncompressed_size,
                                           unit="database")])
            inp = ReportingReader(stream, progress, manifest.database)
        try:
            check = engine_class(manifest.engine).check(inp, progress=progress)
        except ArchiveError as exc:
            problems.append(f"archive: {exc.message}")
            check = None
        except StoreError as exc:
            problems.append(f"reading the archive failed: {exc.message}")
            check = None
        if check is not None:
            problems += check.problems
            if check.collections is not None:
                problems += collection_problems(manifest, check.collections)
        try:
            problems += stream.finish()
        except StoreError as exc:
            problems.append(f"reading the archive failed: {exc.message}")
    seconds = time.monotonic() - started
    found = check.collections if check is not None else None
    if found is None:  # opaque: the manifest's own account of the tables
        count, documents = len(manifest.collections), manifest.documents
        checked = f"size, SHA-256, uncompressed size and {check.checked if check else 'its tool'}"
    else:
        count, documents = len(found), sum(c.documents for c in found)
        checked = f"{check.checked if check else 'structure'}, size and SHA-256"
    progress.finish(Summary("verify", count, documents, stream.hashed.size, seconds, unit=unit))
    return VerifyResult(manifest.name, tuple(problems), count, documents, stream.hashed.size,
                        seconds, checked=checked, unit=unit,
                        encrypted=manifest.encryption is not None)


def verify_legacy(store: Store, name: str) -> VerifyResult:
    """Check the legacy backup (or zip file) ``name``; a damaged one is a result, not an error.

    Raises :class:`~monarch.errors.BackupNotFound` when there is no such backup or file.
    """
    found = locate(store, name)
    if found is None:
        raise BackupNotFound(f"no legacy backup or zip file {name!r}",
                             hint="run `monarch list_backups` to see the backups")
    opened, database, what = found
    started = time.monotonic()
    checked = "zip structure, every member's CRC-32, metadata and BSON documents"
    label = name.removesuffix(SUFFIX) if "/" not in name else name
    size = 0
    try:
        with opened as file:
            size = file.seek(0, 2)
            file.seek(0)
            result = check_zip_dump(file, db=database, what=what)
    except BackupNotFound:
        raise
    except (ArchiveError, StoreError, BackupError) as exc:
        return VerifyResult(label, (exc.message,), 0, 0, size, time.monotonic() - started,
                            checked, legacy=True)
    return VerifyResult(label, (), result.collections, result.documents, size,
                        time.monotonic() - started, checked, legacy=True)

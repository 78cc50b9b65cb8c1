"""What the store holds: complete backups (those with a manifest), and leftovers.

Everything here reads the store only; no database connection is made. A backup exists exactly
when its manifest does: an archive without one is an orphan (a backup that died between its two
writes, or a delete that died between its two deletes) and is removed by ``prune`` and by the
next ``backup`` once it is old enough not to belong to a backup still running.
"""

from __future__ import annotations

import difflib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from monarch.backups.encryption import unseal
from monarch.backups.manifest import Manifest, check_tag
from monarch.backups.naming import (
    VERIFIED_SUFFIX,
    check_name,
    manifest_key,
    parse_name,
    split_key,
)
from monarch.backups.records import VerifyRecord, read_records
from monarch.errors import BackupNotFound, ManifestError, StoreError
from monarch.stores.base import ObjectInfo, ObjectLocked, ObjectNotFound

if TYPE_CHECKING:
    from monarch.backups.keys import BackupKeys
    from monarch.stores.base import Store

log = logging.getLogger("monarch.backups")

LEFTOVER_AGE = 3600.0
"""Seconds after which an unfinished upload or an orphan archive is taken as abandoned. A
backup still running writes its manifest seconds after its archive, never an hour later."""


@dataclass(frozen=True)
class BackupInfo:
    """One complete backup, as its manifest describes it."""

    name: str
    environment: str
    database: str
    created: datetime
    finished: datetime
    size: int
    collections: int
    documents: int
    compression: str
    label: str | None
    query_set: str | None
    manifest: Manifest = field(repr=False)
    encrypted: bool = False
    """Encrypted: then ``collections`` and ``documents`` are 0, being sealed in the manifest."""
    checked: VerifyRecord | None = None
    """Its last verify and drill (:mod:`monarch.backups.records`), where the listing read
    them (``scan(..., records=True)``); None: never verified, or not read."""

    @property
    def duration(self) -> float:
        """Seconds the backup took."""
        return self.manifest.duration

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> BackupInfo:
        return cls(
            name=manifest.name,
            environment=manifest.environment,
            database=manifest.database,
            created=manifest.started_at,
            finished=manifest.finished_at,
            size=manifest.archive.size,
            collections=len(manifest.collections),
            documents=manifest.documents,
            compression=manifest.archive.compression,
            label=manifest.label,
            query_set=manifest.query_set,
            manifest=manifest,
            encrypted=manifest.encryption is not None,
        )


@dataclass(frozen=True)
class Listing:
    """The store's backup keys, without reading any object."""

    manifests: frozenset[str]
    """Names of backups that have a manifest object (readable or not)."""
    archives: dict[str, list[ObjectInfo]]
    """Backup name -> its archive object(s) (and name claim), complete backups' included."""
    others: tuple[ObjectInfo, ...] = ()
    """Objects listed that are not monarch's backups (among them, 0.0.x backups' zips)."""

    def orphans(self, older_than: float, now: datetime | None = None) -> list[ObjectInfo]:
        """Archives with no manifest, last written at least ``older_than`` seconds ago."""
        limit = (now or datetime.now(UTC)) - timedelta(seconds=older_than)
        return [
            obj
            for name, objects in sorted(self.archives.items())
            if name not in self.manifests
            for obj in objects
            if obj.modified <= limit
        ]


@dataclass(frozen=True)
class Catalog(Listing):
    """The store's backup keys and its complete backups (every manifest read)."""

    backups: tuple[BackupInfo, ...] = ()
    """Complete backups, oldest first."""
    broken: dict[str, str] = field(default_factory=dict)
    """Manifest key -> why it cannot be read. Such backups are neither listed nor touched."""


def list_keys(store: Store, environment: str | None = None) -> Listing:
    """List the store once; keep monarch's keys (only ``environment``'s, when given)."""
    manifests: set[str] = set()
    archives: dict[str, list[ObjectInfo]] = {}
    others: list[ObjectInfo] = []
    # The prefix narrows the listing; the parsed name decides ("prod-" also starts
    # "prod-eu-..." backups, which belong to environment "prod-eu").
    for obj in store.list(f"{environment}-" if environment else ""):
        parsed = split_key(obj.key)
        if parsed is None:
            others.append(obj)
            continue
        name, kind = parsed
        owner = parse_name(name)
        if environment is not None and (owner is None or owner.environment != environment):
            continue
        if kind == "manifest":
            manifests.add(name)
        else:
            archives.setdefault(name, []).append(obj)
    return Listing(frozenset(manifests), archives, tuple(others))


def read_manifest(store: Store, name: str) -> Manifest:
    """Read and parse backup ``name``'s manifest. A missing one raises BackupNotFound.

    An encrypted backup's comes back sealed (its clear part only): enough to list or delete
    it. Restoring and verifying take :func:`open_manifest`."""
    key = manifest_key(check_name(name))
    return _parse(key, name, _read(store, key, name))


def open_manifest(store: Store, name: str, keys: BackupKeys) -> Manifest:
    """Backup ``name``'s whole manifest, checked and opened with ``keys``: its HMAC tag when a
    manifest key is configured (ManifestTampered when it does not match), then, for an
    encrypted backup, its sealed contents, decrypted with the identity (EncryptionError
    without one that opens it). Reads nothing but the manifest."""
    key = manifest_key(check_name(name))
    text = _read(store, key, name)
    check_tag(text, keys.manifest_key.reveal() if keys.manifest_key else None,
              f"backup {name!r}'s manifest")
    manifest = _parse(key, name, text)
    encryption = manifest.encryption
    if encryption is None:
        return manifest
    what = f"backup {name!r}"
    return manifest.opened(unseal(encryption.sealed, keys.identities(encryption, what),
                                  f"{what}'s sealed manifest"))


def _read(store: Store, key: str, name: str) -> bytes:
    try:
        with store.reader(key) as stream:
            return stream.read()
    except ObjectNotFound:
        raise _not_found(store, name) from None


def _parse(key: str, name: str, text: bytes) -> Manifest:
    manifest = Manifest.from_json(text, key)
    if manifest.name != name:
        raise ManifestError(f"{key} describes backup {manifest.name!r}, not {name!r}")
    return manifest


def scan(store: Store, environment: str | None = None, *, records: bool = False) -> Catalog:
    """List the store once and read every manifest (in parallel: a remote store is slow);
    with ``records``, also each backup's verify record (those the listing shows)."""
    listing = list_keys(store, environment)
    names = sorted(listing.manifests)

    def load(name: str) -> Manifest | str:
        try:
            return read_manifest(store, name)
        except BackupNotFound:
            return ""  # deleted while we listed: gone, not broken
        except (ManifestError, StoreError) as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=min(8, max(1, len(names)))) as pool:
        loaded = list(pool.map(load, names))
    backups: list[BackupInfo] = []
    broken: dict[str, str] = {}
    for name, result in zip(names, loaded, strict=True):
        if isinstance(result, str):
            if result:
                broken[manifest_key(name)] = result
                log.warning("skipping backup %s: %s", name, result)
            continue
        if environment is None or result.environment == environment:
            backups.append(BackupInfo.from_manifest(result))
    backups.sort(key=lambda b: (b.created, b.name))
    if records:
        found = read_records(store, {o.key.removesuffix(VERIFIED_SUFFIX) for o in listing.others
                                     if o.key.endswith(VERIFIED_SUFFIX)}
                             & {b.name for b in backups})
        backups = [replace(b, checked=found.get(b.name)) for b in backups]
    return Catalog(listing.manifests, listing.archives, listing.others, tuple(backups), broken)


def remove_orphans(store: Store, older_than: float = LEFTOVER_AGE) -> list[str]:
    """Delete orphan archives older than ``older_than`` seconds; return their keys."""
    removed: list[str] = []
    for obj in list_keys(store).orphans(older_than):
        try:
            store.delete(obj.key)
        except ObjectNotFound:
            continue  # someone else removed it first
        except ObjectLocked:
            continue  # under a retention: it goes once that ends, never blocking a backup
        removed.append(obj.key)
    return removed


def _not_found(store: Store, name: str) -> BackupNotFound:
    names = [
        parsed[0]
        for obj in store.list()
        if (parsed := split_key(obj.key)) is not None and parsed[1] == "manifest"
    ]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
    hint = f"did you mean {close[0]!r}?" if close else "run `monarch list_backups` to see them"
    return BackupNotFound(f"no backup {name!r} in {store.display_url}", hint=hint)

"""The manifest: the JSON object written beside an archive, last, that makes a backup exist.

It describes the backup without opening the archive (``list_backups`` reads only manifests) and
holds what ``verify`` and ``restore`` check the archive against: its size and SHA-256, and per
collection the number of documents, their bytes and their CRC-64.

Shape (``format_version`` 1)::

    {
      "format": "monarch-backup", "format_version": 1,
      "name": "production-20260101T120000Z-pre-migrate",
      "monarch_version": "1.0.0",
      "environment": "production", "engine": "mongo", "database": "shop",
      "source_host": "db1.example.com:27017",          # hosts only: never credentials
      "server_version": "7.0.2", "server_details": "replica set",
      "started_at": "2026-01-01T12:00:00.123456+00:00", "finished_at": "...",
      "duration_seconds": 12.5,
      "label": "pre-migrate", "query_set": null,
      "archive": {"key": "...archive.zst", "format": "mongodump-archive",
                  "compression": "zstd", "size": 123, "sha256": "<hex>",
                  "uncompressed_size": 456},
      "collections": [{"name": "orders", "type": "collection", "documents": 10,
                       "bytes": 2048, "crc64": "<16 hex digits>",
                       "indexes": [...], "options": {...}}],
      "totals": {"collections": 1, "documents": 10, "bytes": 2048}
    }

``indexes`` and ``options`` are relaxed Extended JSON, for reading; the archive's own metadata
(canonical Extended JSON) is what a restore uses. The CRC is a hex string because JSON readers
lose precision past 2**53. Readers ignore fields they do not know; a higher ``format_version``
is refused.

**Encrypted backups** (``format_version`` 2, docs/security.md) keep in the clear only what
finding, listing and checking a backup needs: name, versions, environment, engine, times,
label, the archive's key, format, compression, size and SHA-256 (over the stored, encrypted
bytes), and an ``encryption`` object: ``{"format": "age", "recipients": [<fingerprints>],
"wrapped_key": <armored age scrypt file, or null>}``. Everything else (database, source host,
server, query set, uncompressed size, collections, totals) is in ``sealed``: the whole
manifest as the unencrypted one would be, as an armored age file encrypted to the same
recipients. A reader with the identity opens it and gets the full manifest back; its clear
fields must agree with the sealed ones.

**Authentication**: with an HMAC key configured, ``"hmac": {"alg": "HMAC-SHA256", "tag":
<hex>}`` is added; the tag covers every other field of the manifest (as canonical JSON: keys
sorted, no spaces, UTF-8), so any edit is refused (:func:`check_tag`).

Backups of PostgreSQL and SQLite databases have the same shape: ``archive.format`` is
``pg_dump-custom`` (``pg_dump --format=custom``, uncompressed before monarch's compression) or
``sqlite3-database`` (the database file), ``tool_version`` names the tool, and each entry of
``collections`` is a table (``type`` "table", ``documents`` its rows: PostgreSQL's planner
estimate, SQLite's exact count; ``bytes`` PostgreSQL's table size; ``crc64`` 0). Such
archives are opaque to monarch: they are checked by size and SHA-256, then by their own tool.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from monarch.engines.base import ARCHIVE_FORMAT
from monarch.errors import ManifestError, ManifestTampered

__all__ = ["ARCHIVE_FORMAT", "ArchiveEntry", "CollectionEntry", "Encryption", "Manifest",
           "check_tag", "unit_of"]

def unit_of(backup_format: str) -> str:
    """What a backup of ``backup_format`` holds, for people: ``"collection"`` (a mongodump
    archive, read by monarch) or ``"table"`` (another tool's stream, stored unread)."""
    return "collection" if backup_format == ARCHIVE_FORMAT else "table"


FORMAT = "monarch-backup"
FORMAT_VERSION = 2
PLAIN_VERSION = 1
"""Unencrypted backups keep writing version 1 (older monarch reads them); encrypted ones are
version 2, which older monarch refuses instead of misreading."""
HMAC_FIELD = "hmac"
CLEAR_FIELDS = ("format", "format_version", "name", "monarch_version", "environment", "engine",
                "started_at", "finished_at", "duration_seconds", "label")
"""What an encrypted backup's manifest shows in the clear, besides archive and encryption."""


@dataclass(frozen=True)
class CollectionEntry:
    """One collection of a backup: what was dumped, and the checksum of its documents."""

    name: str
    type: str
    documents: int
    bytes: int
    crc64: int
    """Unsigned CRC-64/XZ of the collection's documents, as the archive's end block records."""
    indexes: tuple[Mapping[str, Any], ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "documents": self.documents,
            "bytes": self.bytes,
            "crc64": f"{self.crc64:016x}",
            "indexes": [dict(i) for i in self.indexes],
            "options": dict(self.options),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str) -> CollectionEntry:
        try:
            if not isinstance(data, Mapping):
                raise TypeError(f"expected an object, got {type(data).__name__}")
            indexes = data.get("indexes") or []
            options = data.get("options") or {}
            if not isinstance(indexes, list) or not all(isinstance(i, dict) for i in indexes):
                raise TypeError("indexes must be a list of objects")
            if not isinstance(options, dict):
                raise TypeError("options must be an object")
            return cls(
                name=_str(data["name"]),
                type=_str(data.get("type", "collection")),
                documents=_int(data["documents"]),
                bytes=_int(data["bytes"]),
                crc64=int(_str(data["crc64"]), 16),
                indexes=tuple(indexes),
                options=options,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where}: a collection entry is malformed ({exc})") from None


@dataclass(frozen=True)
class ArchiveEntry:
    """Where the archive is and what it must hash to."""

    key: str
    compression: str
    size: int
    sha256: str
    uncompressed_size: int
    format: str = ARCHIVE_FORMAT


@dataclass(frozen=True)
class Encryption:
    """How a backup is encrypted: age, to these recipients (fingerprints), and the backup's
    own key wrapped with a passphrase when one was configured."""

    recipients: tuple[str, ...]
    wrapped_key: str | None = None
    sealed: str = ""
    """The armored age file holding the full manifest."""


@dataclass(frozen=True)
class Manifest:
    """A complete backup's description. See the module docstring for the JSON shape."""

    name: str
    monarch_version: str
    environment: str
    engine: str
    database: str
    source_host: str
    server_version: str
    started_at: datetime
    finished_at: datetime
    archive: ArchiveEntry
    collections: tuple[CollectionEntry, ...]
    server_details: str = ""
    label: str | None = None
    query_set: str | None = None
    format_version: int = PLAIN_VERSION
    tool_version: str = ""
    """The dump tool, for formats another tool wrote (``pg_dump (PostgreSQL) 16.4``)."""
    encryption: Encryption | None = None
    """Set for an encrypted backup."""
    sealed: bool = False
    """True when only the clear part of an encrypted manifest is known (no identity opened
    it): then database, hosts, collections and sizes are empty."""

    @property
    def duration(self) -> float:
        """Seconds from the start of the dump to the archive's commit."""
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def documents(self) -> int:
        """Documents in the backup, all collections together."""
        return sum(c.documents for c in self.collections)

    @property
    def data_bytes(self) -> int:
        """Bytes of BSON documents in the backup (before compression)."""
        return sum(c.bytes for c in self.collections)

    def collection(self, name: str) -> CollectionEntry | None:
        """The entry of collection ``name``, if the backup has it."""
        return next((c for c in self.collections if c.name == name), None)

    def to_json(self, key: str | None = None) -> str:
        """The manifest as JSON text (stable key order, one field per line): for an encrypted
        backup, its clear part and sealed contents. ``key``: add the HMAC tag."""
        doc = self.contents()
        if self.encryption is not None:
            encryption = self.encryption
            doc = {name: doc[name] for name in CLEAR_FIELDS}
            doc["format_version"] = FORMAT_VERSION
            doc["archive"] = {name: self.archive_json()[name]
                              for name in ("key", "format", "compression", "size", "sha256")}
            doc["encryption"] = {"format": "age", "recipients": list(encryption.recipients),
                                 "wrapped_key": encryption.wrapped_key}
            doc["sealed"] = encryption.sealed
        if key is not None:
            doc[HMAC_FIELD] = {"alg": "HMAC-SHA256", "tag": _tag(doc, key)}
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"

    def archive_json(self) -> dict[str, Any]:
        return {
            "key": self.archive.key,
            "format": self.archive.format,
            "compression": self.archive.compression,
            "size": self.archive.size,
            "sha256": self.archive.sha256,
            "uncompressed_size": self.archive.uncompressed_size,
        }

    def contents(self) -> dict[str, Any]:
        """Everything the manifest says, as JSON values (an encrypted backup's sealed part)."""
        if self.sealed:
            raise ManifestError(f"backup {self.name!r}'s manifest is sealed: open it first")
        return {
            "format": FORMAT,
            "format_version": PLAIN_VERSION,
            "name": self.name,
            "monarch_version": self.monarch_version,
            "environment": self.environment,
            "engine": self.engine,
            "database": self.database,
            "source_host": self.source_host,
            "server_version": self.server_version,
            "server_details": self.server_details,
            "tool_version": self.tool_version,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_seconds": round(self.duration, 3),
            "label": self.label,
            "query_set": self.query_set,
            "archive": self.archive_json(),
            "collections": [c.to_json() for c in self.collections],
            "totals": {
                "collections": len(self.collections),
                "documents": self.documents,
                "bytes": self.data_bytes,
            },
        }

    def opened(self, contents: bytes) -> Manifest:
        """This sealed manifest completed with its decrypted ``contents``; ManifestError
        (tampering) when they disagree with the clear part."""
        where = f"backup {self.name!r}'s sealed manifest"
        inner = Manifest.from_json(contents, where)
        if inner.encryption is not None:
            raise ManifestError(f"{where} is malformed: it is itself sealed")
        clash = [name for name, mine, theirs in (
            ("name", self.name, inner.name), ("environment", self.environment, inner.environment),
            ("engine", self.engine, inner.engine), ("archive key", self.archive.key,
                                                    inner.archive.key),
            ("archive size", self.archive.size, inner.archive.size),
            ("archive SHA-256", self.archive.sha256, inner.archive.sha256),
            ("compression", self.archive.compression, inner.archive.compression),
            ("format", self.archive.format, inner.archive.format)) if mine != theirs]
        if clash:
            raise ManifestTampered(
                f"backup {self.name!r}: the manifest was edited: its clear "
                f"{', '.join(clash)} differ(s) from its sealed contents; nothing was touched",
                hint="restore another backup")
        return replace(inner, encryption=self.encryption, format_version=self.format_version)

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> Manifest:
        """Parse a manifest; ``where`` names it in errors (its key). Raises ManifestError."""
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{where} is not valid JSON: {exc}") from None
        except RecursionError:
            raise ManifestError(f"{where} is not a monarch backup manifest: its JSON is "
                                "nested too deeply") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ManifestError(f"{where} is not a monarch backup manifest")
        version = doc.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
            raise ManifestError(
                f"{where} has manifest format version {version!r}; this monarch reads up to "
                f"{FORMAT_VERSION}",
                hint="upgrade monarch to read this backup",
            )
        if "encryption" in doc:
            return cls.sealed_from(doc, where)
        try:
            archive = doc["archive"]
            entries = doc["collections"]
            if not isinstance(archive, dict):
                raise TypeError("archive must be an object")
            if not isinstance(entries, list):
                raise TypeError("collections must be a list")
            return cls(
                name=_str(doc["name"]),
                monarch_version=_str(doc.get("monarch_version", "")),
                environment=_str(doc["environment"]),
                engine=_str(doc.get("engine", "mongo")),
                database=_str(doc["database"]),
                source_host=_str(doc.get("source_host", "")),
                server_version=_str(doc.get("server_version", "")),
                server_details=_str(doc.get("server_details", "")),
                tool_version=_str(doc.get("tool_version", "")),
                started_at=_time(doc["started_at"]),
                finished_at=_time(doc["finished_at"]),
                label=_opt_str(doc.get("label")),
                query_set=_opt_str(doc.get("query_set")),
                format_version=version,
                archive=ArchiveEntry(
                    key=_str(archive["key"]),
                    compression=_str(archive["compression"]),
                    size=_int(archive["size"]),
                    sha256=_str(archive["sha256"]),
                    uncompressed_size=_int(archive.get("uncompressed_size", 0)),
                    format=_str(archive.get("format", ARCHIVE_FORMAT)),
                ),
                collections=tuple(CollectionEntry.from_json(c, where) for c in entries),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where} is malformed: {type(exc).__name__}: {exc}") from None

    @classmethod
    def sealed_from(cls, doc: Mapping[str, Any], where: str) -> Manifest:
        """The clear part of an encrypted backup's manifest (``sealed`` True)."""
        try:
            archive, encryption = doc["archive"], doc["encryption"]
            if not isinstance(archive, dict) or not isinstance(encryption, dict):
                raise TypeError("archive and encryption must be objects")
            if encryption.get("format") != "age":
                raise ValueError(f"unknown encryption {encryption.get('format')!r}")
            recipients = encryption["recipients"]
            if not isinstance(recipients, list) or not recipients:
                raise TypeError("encryption.recipients must be a non-empty list")
            return cls(
                name=_str(doc["name"]),
                monarch_version=_str(doc.get("monarch_version", "")),
                environment=_str(doc["environment"]),
                engine=_str(doc["engine"]),
                database="", source_host="", server_version="",
                started_at=_time(doc["started_at"]),
                finished_at=_time(doc["finished_at"]),
                label=_opt_str(doc.get("label")),
                format_version=doc["format_version"],
                archive=ArchiveEntry(
                    key=_str(archive["key"]), compression=_str(archive["compression"]),
                    size=_int(archive["size"]), sha256=_str(archive["sha256"]),
                    uncompressed_size=0, format=_str(archive["format"])),
                collections=(),
                encryption=Encryption(
                    recipients=tuple(_str(r) for r in recipients),
                    wrapped_key=_opt_str(encryption.get("wrapped_key")),
                    sealed=_str(doc["sealed"])),
                sealed=True,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{where} is malformed: {type(exc).__name__}: {exc}") from None


def check_tag(text: str | bytes, key: str | None, where: str) -> None:
    """Refuse a manifest whose HMAC tag does not match ``key`` (ManifestTampered), or that has
    none while a key is configured. Without a key, nothing is checked."""
    if key is None:
        return
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return  # not JSON: Manifest.from_json says so
    if not isinstance(doc, dict):
        return
    found = doc.pop(HMAC_FIELD, None)
    tag = found.get("tag") if isinstance(found, dict) else None
    if not isinstance(tag, str):
        raise ManifestTampered(
            f"{where} has no HMAC tag, but [backups] manifest_key_env is set: it was written "
            "without the key, or its tag was removed; nothing was touched",
            hint="if it predates the key, unset manifest_key_env to use it; else restore "
                 "another backup")
    if not hmac.compare_digest(tag, _tag(doc, key)):
        raise ManifestTampered(
            f"{where} was edited, or signed with another key: its HMAC-SHA256 tag does not "
            "match; nothing was touched",
            hint="check the key in the variable [backups] manifest_key_env names; else "
                 "restore another backup")


def _tag(doc: Mapping[str, Any], key: str) -> str:
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key.encode("utf-8"), canonical.encode("utf-8"), hashlib.sha256).hexdigest()


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _opt_str(value: object) -> str | None:
    return None if value is None else _str(value)


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected a non-negative integer, got {value!r}")
    return value


def _time(value: object) -> datetime:
    parsed = datetime.fromisoformat(_str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"time {value!r} has no time zone")
    return parsed

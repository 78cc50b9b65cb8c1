"""What ``verify`` and restore drills leave beside a backup: ``NAME.verified.json``.

One record per backup, written whole or not at all by the store's atomic commit, replaced by
each verify or drill, deleted with the backup::

    {
      "format": "monarch-verify", "format_version": 1, "monarch_version": "1.0.0",
      "name": "production-20260101T120000Z",
      "ok": true, "verified_at": "2026-01-02T03:00:00+00:00", "problems": [],
      "drill": {                                   # the last restore drill, if any
        "ok": true, "drilled_at": "...", "into": "staging", "seconds": 4.2,
        "problems": [],
        "collections": [{"name": "orders", "count": 500, "digest": "<SHA-256 hex>"}],
        "checks": [{"name": "orders.py::check_every_order_has_a_user", "ok": true,
                    "error": ""}]
      }
    }

The top level is the backup's last check of either kind (a drill reads and checks the whole
archive too, so it is also a verify); ``drill`` is the last drill's own outcome, kept by a
later plain verify. ``check_backups`` reads the top level; ``list_backups`` shows both. Readers
ignore fields they do not know, so older monarch reads these records as plain verify records.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from monarch._version import __version__
from monarch.backups.naming import verified_key
from monarch.errors import ManifestError, StoreError
from monarch.stores.base import ObjectNotFound

if TYPE_CHECKING:
    from monarch.stores.base import Store

log = logging.getLogger("monarch.backups")

VERIFY_FORMAT = "monarch-verify"


@dataclass(frozen=True)
class CollectionPrint:
    """One collection (table) of a restored backup: its count and content digest (``digest``
    empty where none was taken)."""

    name: str
    count: int
    digest: str = ""


@dataclass(frozen=True)
class CheckOutcome:
    """One user check of a drill: ``error`` says how it failed (empty when it passed)."""

    name: str
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class DrillRecord:
    """The outcome of the last restore drill of one backup, as stored beside it."""

    ok: bool
    drilled_at: datetime
    into: str
    """The environment whose server held the scratch database."""
    seconds: float
    problems: tuple[str, ...] = ()
    collections: tuple[CollectionPrint, ...] = ()
    checks: tuple[CheckOutcome, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "drilled_at": self.drilled_at.isoformat(), "into": self.into,
            "seconds": round(self.seconds, 3), "problems": list(self.problems),
            "collections": [{"name": c.name, "count": c.count, "digest": c.digest}
                            for c in self.collections],
            "checks": [{"name": c.name, "ok": c.ok, "error": c.error} for c in self.checks],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> DrillRecord:
        """Parse the ``drill`` object (ValueError, KeyError or TypeError when malformed)."""
        return cls(
            ok=doc["ok"] is True, drilled_at=_aware(doc["drilled_at"], "drilled_at"),
            into=str(doc["into"]), seconds=float(doc.get("seconds") or 0),
            problems=_strings(doc.get("problems"), "problems"),
            collections=tuple(CollectionPrint(str(c["name"]), int(c["count"]),
                                              str(c.get("digest") or ""))
                              for c in _list(doc.get("collections"), "collections")),
            checks=tuple(CheckOutcome(str(c["name"]), c["ok"] is True, str(c.get("error") or ""))
                         for c in _list(doc.get("checks"), "checks")),
        )


@dataclass(frozen=True)
class VerifyRecord:
    """The outcome of the last ``verify`` (or drill) of one backup, as stored beside it, and
    of its last drill (None: never drilled)."""

    name: str
    ok: bool
    verified_at: datetime
    problems: tuple[str, ...] = ()
    drill: DrillRecord | None = None

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "format": VERIFY_FORMAT, "format_version": 1, "monarch_version": __version__,
            "name": self.name, "ok": self.ok, "verified_at": self.verified_at.isoformat(),
            "problems": list(self.problems),
        }
        if self.drill is not None:
            doc["drill"] = self.drill.to_json()
        return json.dumps(doc, indent=2)

    @classmethod
    def from_json(cls, text: bytes, where: str) -> VerifyRecord:
        """Parse a record; anything else raises ManifestError naming ``where``."""
        try:
            doc: Any = json.loads(text)
            if not isinstance(doc, dict) or doc.get("format") != VERIFY_FORMAT:
                raise ValueError("not a verify record")
            drill = doc.get("drill")
            if drill is not None and not isinstance(drill, dict):
                raise ValueError("drill is not an object")
            return cls(str(doc["name"]), doc["ok"] is True,
                       _aware(doc["verified_at"], "verified_at"),
                       _strings(doc.get("problems"), "problems"),
                       None if drill is None else DrillRecord.from_json(drill))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{where} is not a monarch verify record ({exc})") from None


def _aware(value: object, what: str) -> datetime:
    when = datetime.fromisoformat(str(value))
    if when.tzinfo is None:
        raise ValueError(f"{what} has no time zone")
    return when


def _list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"{what} is not a list")
    return value


def _strings(value: object, what: str) -> tuple[str, ...]:
    return tuple(str(item) for item in _list(value, what))


class Verified(Protocol):
    """What a verify found (a :class:`~monarch.backups.verify.VerifyResult`)."""

    @property
    def name(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def problems(self) -> tuple[str, ...]: ...


def record_verify(store: Store, result: Verified, at: datetime | None = None) -> VerifyRecord:
    """Store ``result`` as backup ``result.name``'s last verify (replacing an earlier one, and
    keeping the record of its last drill)."""
    earlier = _earlier(store, result.name)
    record = VerifyRecord(result.name, result.ok, at or datetime.now(UTC), result.problems,
                          earlier.drill if earlier is not None else None)
    return _write(store, record)


def record_drill(store: Store, name: str, drill: DrillRecord) -> VerifyRecord:
    """Store ``drill`` as backup ``name``'s last drill, and as its last verify."""
    return _write(store, VerifyRecord(name, drill.ok, drill.drilled_at, drill.problems, drill))


def _write(store: Store, record: VerifyRecord) -> VerifyRecord:
    with store.writer(verified_key(record.name)) as upload:
        upload.write(record.to_json().encode("utf-8"))
    return record


def _earlier(store: Store, name: str) -> VerifyRecord | None:
    """The record a new one replaces; a damaged one counts as none."""
    try:
        return read_verify(store, name)
    except ManifestError:
        return None


def read_verify(store: Store, name: str) -> VerifyRecord | None:
    """Backup ``name``'s last verify record, or None when it was never verified."""
    key = verified_key(name)
    try:
        with store.reader(key) as stream:
            return VerifyRecord.from_json(stream.read(), key)
    except ObjectNotFound:
        return None


def read_records(store: Store, names: Iterable[str]) -> dict[str, VerifyRecord]:
    """The records of backups ``names`` (those the store has one for: the caller's listing
    says), read in parallel; a damaged or unreadable one is left out with a logged warning."""
    wanted = sorted(set(names))

    def load(name: str) -> VerifyRecord | None:
        try:
            return read_verify(store, name)
        except (ManifestError, StoreError) as exc:
            log.warning("warning: cannot read the verify record of %s: %s", name, exc)
            return None

    with ThreadPoolExecutor(max_workers=min(8, max(1, len(wanted)))) as pool:
        found = list(pool.map(load, wanted))
    return {name: record for name, record in zip(wanted, found, strict=True) if record}


def sealed(record: DrillRecord, name: str) -> DrillRecord:
    """``record`` as it may be written in the clear for an encrypted backup: no collection
    names, counts or digests, and its problems counted rather than quoted (they may quote
    data); the checks keep their names (the project's own) without their errors."""
    problems = () if not record.problems else (
        f"{len(record.problems)} problem(s); the backup is encrypted, so they are not written "
        f"here: run `monarch verify {name} --restore` with its identity",)
    checks = tuple(replace(c, error="") for c in record.checks)
    return replace(record, problems=problems, collections=(), checks=checks)

"""Backup names and the store keys derived from them.

A backup is called ``<env>-<UTC yyyymmddTHHMMSSZ>[-<label>]``: names sort by environment, then
by time, and say where and when at a glance. A backup is two objects in the store::

    <name>.archive[.gz|.zst][.age]  the archive (written first; .age: encrypted)
    <name>.manifest.json        what makes the backup exist (written last)

and, while it is being taken, ``<name>.claim``: an empty object written exclusively before
anything else, so two backups started in the same second cannot both take the name (the
second finds the claim and waits for the next second). It is removed once the manifest is
written; one left by a killed run is removed with the other leftovers.

Everything that turns names into keys and back lives here, so the restore side and prune agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from monarch.errors import UsageError

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
MANIFEST_SUFFIX = ".manifest.json"
CLAIM_SUFFIX = ".claim"
VERIFIED_SUFFIX = ".verified.json"
"""``<name>.verified.json``: the outcome of the backup's last verify (monarch.backups.health).
Not part of the backup: listing and restoring ignore it; deleting the backup removes it."""
ARCHIVE_SUFFIXES = {"none": ".archive", "gzip": ".archive.gz", "zstd": ".archive.zst"}
"""Compression name -> archive key suffix; the names are what manifests record."""
ENCRYPTED_SUFFIX = ".age"
"""Appended to an encrypted backup's archive key: ``NAME.archive.gz.age`` is an age file."""

_PART = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_ENV_RE = re.compile(rf"^{_PART}$")
_LABEL_RE = re.compile(rf"^{_PART}$")
_NAME_RE = re.compile(rf"^(?P<env>{_PART}?)-(?P<stamp>\d{{8}}T\d{{6}}Z)(?:-(?P<label>{_PART}))?$")
MAX_LABEL = 64


@dataclass(frozen=True)
class BackupName:
    """A parsed backup name."""

    environment: str
    created: datetime
    label: str | None

    def __str__(self) -> str:
        return make_name(self.environment, self.created, self.label)


def make_name(environment: str, created: datetime, label: str | None = None) -> str:
    """Return the backup name for ``environment`` at ``created`` (UTC, whole seconds)."""
    stamp = created.astimezone(UTC).strftime(STAMP_FORMAT)
    return f"{environment}-{stamp}" + (f"-{label}" if label else "")


def parse_name(name: str) -> BackupName | None:
    """Split a backup name into its parts; None if ``name`` is not shaped like one."""
    match = _NAME_RE.match(name)
    if match is None:
        return None
    try:
        created = datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:  # shaped like a time stamp, but no such time (month 13, second 61)
        return None
    return BackupName(match["env"], created, match["label"])


def check_environment_name(environment: str) -> str:
    """Refuse an environment name that cannot start a backup name (it becomes a store key)."""
    if not _ENV_RE.match(environment) or environment.endswith("."):
        raise UsageError(
            f"environment name {environment!r} cannot be used in a backup name",
            hint="backup names use environments named with letters, digits, '_', '-' and '.'",
        )
    return environment


def check_label(label: str) -> str:
    """Return ``label`` if it may end a backup name, else raise UsageError saying why."""
    if not label or len(label) > MAX_LABEL or not _LABEL_RE.match(label) or label.endswith("."):
        raise UsageError(
            f"invalid backup label {label!r}",
            hint=f"use up to {MAX_LABEL} letters, digits, '_', '-' or '.', starting with a letter "
            "or digit, e.g. --name pre-release",
        )
    return label


def check_name(name: str) -> str:
    """Return ``name`` if it is a well-formed backup name, else raise UsageError."""
    if parse_name(name) is None:
        raise UsageError(
            f"{name!r} is not a backup name",
            hint="backup names look like production-20260101T120000Z; run `monarch list_backups`",
        )
    return name


def manifest_key(name: str) -> str:
    """The store key of a backup's manifest."""
    return name + MANIFEST_SUFFIX


def verified_key(name: str) -> str:
    """The store key of a backup's last verify record."""
    return name + VERIFIED_SUFFIX


def claim_key(name: str) -> str:
    """The store key that reserves ``name`` while its backup is being taken."""
    return name + CLAIM_SUFFIX


def archive_key(name: str, compression: str, *, encrypted: bool = False) -> str:
    """The store key of a backup's archive compressed with ``compression`` (and encrypted)."""
    try:
        return name + ARCHIVE_SUFFIXES[compression] + (ENCRYPTED_SUFFIX if encrypted else "")
    except KeyError:
        raise UsageError(
            f"unknown compression {compression!r}",
            hint="use one of: " + ", ".join(ARCHIVE_SUFFIXES),
        ) from None


def split_key(key: str) -> tuple[str, str] | None:
    """Return ``(backup name, "manifest" | "archive" | "claim")`` for a backup object's key,
    else None.

    Keys in other shapes (other tools' files in the same folder) are not monarch's and are left
    alone by everything that lists the store.
    """
    if key.endswith(MANIFEST_SUFFIX):
        name, kind = key[: -len(MANIFEST_SUFFIX)], "manifest"
    elif key.endswith(CLAIM_SUFFIX):
        name, kind = key[: -len(CLAIM_SUFFIX)], "claim"
    else:
        key = key.removesuffix(ENCRYPTED_SUFFIX)
        # Longest suffix first: ".archive.gz" also ends like nothing shorter, but be explicit.
        for suffix in sorted(ARCHIVE_SUFFIXES.values(), key=len, reverse=True):
            if key.endswith(suffix):
                name, kind = key[: -len(suffix)], "archive"
                break
        else:
            return None
    return (name, kind) if parse_name(name) is not None else None

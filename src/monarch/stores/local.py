"""A backup store in a local folder: ``file:///abs/folder``.

Writes are atomic: bytes go to a temporary file in the object's own folder (a name starting with
``.tmp-``, which ``list()`` never shows), and ``commit()`` fsyncs it, renames it into place and
fsyncs the folder, so a crash leaves either the old object, the new one, or a leftover temporary
file for ``cleanup()``. Backups hold data, so objects are created with mode 0600 and folders
monarch creates with mode 0700 (the umask can only narrow these).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from monarch.config import StoreConfig
from monarch.errors import StoreError
from monarch.stores.base import (
    ObjectInfo,
    ObjectNotFound,
    Retention,
    UploadBase,
    refuse_retention,
)

TEMP_PREFIX = ".tmp-"
_MAX_SEGMENT_BYTES = 200
_WRITE_BUFFER = 1 << 20


def check_key(key: str) -> str:
    """Return ``key`` if it follows the key rules of :mod:`monarch.stores.base`, else raise.

    Every store applies the same rule, so a key that works on one works on all; it lives here
    because the file system is the store that needs it most.
    """
    segments = key.split("/")
    bad = (
        not key
        or "\\" in key
        or any(ord(c) < 32 or ord(c) == 127 for c in key)
        or any(not s or s.startswith(".") for s in segments)
        or any(len(s.encode("utf-8", "surrogatepass")) > _MAX_SEGMENT_BYTES for s in segments)
    )
    if bad:
        raise StoreError(
            f"invalid object key {key!r}",
            hint="keys are /-separated names; no segment may be empty or start with '.'",
        )
    return key


class LocalStore:
    """Objects as files under one folder; a key's ``/`` makes subfolders."""

    def __init__(self, config: StoreConfig) -> None:
        scheme, _, path = config.url.partition("://")
        if scheme != "file" or not path.startswith("/"):
            raise StoreError(
                f"a local store needs an absolute file:// URL, not {config.url!r}",
                hint='write backups = "file:///absolute/folder" (or a path relative to the config)',
            )
        self.root = Path(path)
        self.display_url = f"file://{self.root}"

    can_lock = False
    """A folder cannot keep its own files from being deleted: no retention here."""

    def writer(
        self, key: str, *, exclusive: bool = False, retention: Retention | None = None
    ) -> LocalUpload:
        """Start writing ``key``; see :class:`LocalUpload`. A ``retention`` is refused."""
        refuse_retention(self.display_url, retention)
        path = self.root / check_key(key)
        with self._errors("create a temporary file"):
            _make_folders(path.parent)
            return LocalUpload(self, key, path, exclusive)

    def reader(self, key: str) -> BinaryIO:
        """Open ``key`` for reading; a missing key raises :class:`ObjectNotFound`."""
        path = self.root / check_key(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise self._not_found(key) from None
        except OSError as exc:
            raise self._error(exc, f"read {key}") from exc

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield the committed objects whose keys start with ``prefix``, in key order."""
        found: list[ObjectInfo] = []
        with self._errors("list"):
            if not self.root.exists():
                return
            for folder, dirnames, filenames in os.walk(self.root, onerror=_raise):
                # Dot-names are temporary files (ours) or not ours; never descend into them.
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                relative = Path(folder).relative_to(self.root).as_posix()
                base = "" if relative == "." else relative + "/"
                for name in filenames:
                    key = base + name
                    if name.startswith(".") or not key.startswith(prefix):
                        continue
                    try:
                        info = os.stat(os.path.join(folder, name), follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # deleted while we walked
                    if stat.S_ISREG(info.st_mode):
                        modified = datetime.fromtimestamp(info.st_mtime, UTC)
                        found.append(ObjectInfo(key, info.st_size, modified))
        yield from sorted(found, key=lambda item: item.key)

    def retention(self, key: str) -> Retention | None:
        """None: a local file has no retention (a missing key raises ObjectNotFound)."""
        if not (self.root / check_key(key)).is_file():
            raise self._not_found(key)
        return None

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key raises :class:`ObjectNotFound`."""
        path = self.root / check_key(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise self._not_found(key) from None
        except OSError as exc:
            if exc.errno == errno.EISDIR or (exc.errno == errno.EPERM and path.is_dir()):
                raise self._not_found(key) from None
            raise self._error(exc, f"delete {key}") from exc
        with self._errors(f"delete {key}"):
            _fsync_folder(path.parent)

    def cleanup(self, older_than: float = 3600.0) -> int:
        """Remove temporary files not written to for ``older_than`` seconds; return how many."""
        limit = time.time() - older_than
        removed = 0
        with self._errors("clean up"):
            if not self.root.exists():
                return 0
            for folder, dirnames, filenames in os.walk(self.root, onerror=_raise):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for name in filenames:
                    if not name.startswith(TEMP_PREFIX):
                        continue
                    path = Path(folder) / name
                    try:
                        # The modification time stands in for the start: an upload still being
                        # written keeps touching its file, so only abandoned ones age.
                        if path.stat().st_mtime <= limit:
                            path.unlink()
                            removed += 1
                    except FileNotFoundError:
                        continue  # its upload finished or was aborted meanwhile
        return removed

    def _not_found(self, key: str) -> ObjectNotFound:
        return ObjectNotFound(f"no object {key!r} in {self.display_url}")

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise self._error(exc, doing) from exc

    def _error(self, exc: OSError, doing: str) -> StoreError:
        """The one translation of file-system errors for this store."""
        folder = self.root
        if isinstance(exc, PermissionError) or exc.errno == errno.EACCES:
            hint = f"check that the user running monarch owns or may write to {folder}"
        elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
            hint = f"free disk space on the file system holding {folder}"
        elif exc.errno == errno.EROFS:
            hint = f"{folder} is on a read-only file system; point backups elsewhere"
        elif isinstance(exc, NotADirectoryError) or exc.errno == errno.EEXIST:
            hint = f"{folder} or a folder above it is a file; point backups at a folder"
        else:
            hint = f"check that {folder} is a folder monarch can read and write"
        reason = exc.strerror or type(exc).__name__
        return StoreError(f"cannot {doing} in backup folder {folder}: {reason}", hint=hint)


class LocalUpload(UploadBase):
    """A pending local object: a temporary file that ``commit()`` renames into place."""

    def __init__(self, store: LocalStore, key: str, path: Path, exclusive: bool) -> None:
        self._store = store
        self._key = key
        self._path = path
        self._exclusive = exclusive
        self._temp = path.with_name(f"{TEMP_PREFIX}{path.name}-{secrets.token_hex(6)}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = os.open(self._temp, flags, 0o600)
        self._file = os.fdopen(fd, "wb", buffering=_WRITE_BUFFER)
        self._state = "open"

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        """Append ``data``; return how many bytes were taken."""
        self._check_open()
        try:
            return self._file.write(data)
        except OSError as exc:
            self.abort()
            raise self._store._error(exc, f"write {self._key}") from exc

    def commit(self) -> None:
        """Make the object visible under its key, durably (fsync file, rename, fsync folder)."""
        if self._state == "committed":
            return
        self._check_open()
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            if self._exclusive:
                self._link_exclusively()
            else:
                os.replace(self._temp, self._path)
            _fsync_folder(self._path.parent)
        except OSError as exc:
            self.abort()
            raise self._store._error(exc, f"commit {self._key}") from exc
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM) midway: whether or not the object became visible,
            # no temporary file stays behind.
            self._state = "aborted"
            with suppress(OSError):
                self._file.close()
            with suppress(OSError):
                self._temp.unlink(missing_ok=True)
            raise
        self._state = "committed"

    def abort(self) -> None:
        """Discard the temporary file. Does nothing after commit or a previous abort."""
        if self._state != "open":
            return
        self._state = "aborted"
        with suppress(OSError):  # the bytes are being thrown away anyway
            self._file.close()
        self._temp.unlink(missing_ok=True)

    def _link_exclusively(self) -> None:
        # link() fails if the name exists, so two writers cannot both win; rename() would not.
        try:
            os.link(self._temp, self._path)
        except FileExistsError:
            self.abort()
            raise self._already_exists(self._store.display_url) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # No hard links on this file system (some network and FAT mounts): check, then
            # rename. Another writer could slip in between; such folders get no stronger promise.
            if self._path.exists():
                self.abort()
                raise self._already_exists(self._store.display_url) from None
            os.replace(self._temp, self._path)
            return
        self._temp.unlink()


def _make_folders(folder: Path) -> None:
    """Create ``folder`` and missing parents (0700), fsyncing each parent that gained an entry."""
    missing: list[Path] = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            if not path.is_dir():
                raise
        _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _raise(exc: OSError) -> None:
    raise exc

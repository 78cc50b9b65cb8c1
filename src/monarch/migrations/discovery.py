"""Finding and loading migration files.

Files are ``<UTC yyyymmddHHMMSS>_<name>.py`` (a Python class) or ``.sql`` (plain SQL, see
:mod:`.sqlfiles`) in the project's migrations folder, run in time order whatever their kind. The
original monarch 0.0.x named its files ``_<UTC yyyymmddHHMM>_<name>_migration.py``; those are
migrations too, keyed by their full file stem (the key of their 0.0.x history) and ordered by their
stamp read as ``yyyymmddHHMM00``, among the others. Any other name starting with ``_`` is a helper.
Every file is loaded before anything runs, so a broken file stops a ``migrate`` before its first
migration. Python files are compiled from their bytes (no ``__pycache__`` is written next to
them, and a file edited within the same second is never served from a stale cache).
"""

from __future__ import annotations

import difflib
import hashlib
import re
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

from monarch.errors import ConfigError, MigrationError, UsageError
from monarch.migrations.migration import Migration, MongoMigration
from monarch.migrations.sqlfiles import SUFFIX as SQL_SUFFIX
from monarch.migrations.sqlfiles import migration_class as sql_migration_class

FILE_NAME = re.compile(r"^(?P<stamp>\d{14})_(?P<slug>[A-Za-z0-9_]+)\.(?:py|sql)$")
LEGACY_NAME = re.compile(r"^_(?P<stamp>\d{12})_(?P<slug>[A-Za-z0-9_]+?)_migration\.py$")
SUFFIXES = (".py", SQL_SUFFIX)
# settings.py is the original tool's configuration, which lived in the migrations folder.
IGNORED = frozenset({"settings.py", "__init__.py"})
_MODULE_PREFIX = "monarch_migration_files."


@dataclass(frozen=True)
class MigrationFile:
    """One loaded migration file."""

    name: str  # the file name without ".py"/".sql": the key of its history record
    path: Path
    checksum: str
    cls: type[Migration]

    @property
    def timestamp(self) -> str:
        """The 14-digit UTC stamp (a 0.0.x file's 12 digits, with seconds 00)."""
        return split_name(self.name)[0]

    @property
    def slug(self) -> str:
        """The part after the timestamp, e.g. ``add_indexes_to_user_table``."""
        return split_name(self.name)[1]

    @property
    def legacy(self) -> bool:
        """Whether the file has a monarch 0.0.x name (``_yyyymmddHHMM_<name>_migration.py``)."""
        return is_legacy(self.name)

    @property
    def transactional(self) -> bool:
        return bool(self.cls.transactional)

    def runs_on(self, engine: str) -> bool:
        """Whether this migration can run on an environment of ``engine``."""
        return self.cls.runs_on(engine)


def is_legacy(name: str) -> bool:
    """Whether ``name`` (a file stem) is a monarch 0.0.x migration name."""
    return LEGACY_NAME.match(name + ".py") is not None


def split_name(name: str) -> tuple[str, str]:
    """``(14-digit stamp, slug)`` of a migration name (file stem), either style.

    A name of neither style (a recorded name, say) gives ``(name, "")``.
    """
    match = LEGACY_NAME.match(name + ".py")
    if match is not None:
        return match["stamp"] + "00", match["slug"]
    match = FILE_NAME.match(name + ".py")
    if match is not None:
        return match["stamp"], match["slug"]
    return name, ""


def order_key(name: str) -> tuple[str, str]:
    """Sort key of a migration name: by time, whichever naming style (then by name)."""
    return split_name(name)[0], name


def checksum(data: bytes) -> str:
    """SHA-256 of a file's bytes, with CRLF read as LF so a Windows checkout is not drift."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


def migration_paths(folder: Path) -> list[Path]:
    """The migration files in ``folder``, sorted; errors on misnamed files and shared stamps."""
    if not folder.is_dir():
        raise ConfigError(
            f"the migrations folder {folder} does not exist",
            hint="create the first migration with `monarch generate NAME`, "
            "or set `migrations = ...` in monarch.toml",
        )
    paths = []
    for path in folder.iterdir():
        name = path.name
        if name in IGNORED or not name.endswith(SUFFIXES):
            continue
        if name.startswith(".") or (name.startswith("_") and not LEGACY_NAME.match(name)):
            continue
        if not path.is_file():
            continue
        if not FILE_NAME.match(name) and not LEGACY_NAME.match(name):
            raise MigrationError(
                f"{path}: not a migration file name "
                f"(expected <yyyymmddHHMMSS>_<name>{path.suffix})",
                hint="rename it, or start its name with _ if it is a helper module",
            )
        paths.append(path)
    paths.sort(key=lambda path: order_key(path.stem))
    seen: dict[str, Path] = {}
    for path in paths:
        stamp = split_name(path.stem)[0]
        if stamp in seen:
            raise MigrationError(
                f"two migrations share the timestamp {stamp}: {seen[stamp].name} and {path.name}",
                hint="rename one of them so that its timestamp is later: the order must be clear",
            )
        seen[stamp] = path
    return paths


def discover(folder: Path) -> list[MigrationFile]:
    """Load every migration in ``folder``, in order. Nothing is run."""
    return [load(path) for path in migration_paths(folder)]


def load(path: Path) -> MigrationFile:
    """Compile and execute one migration file and find its migration class.

    A ``.sql`` file is parsed instead (its SQL runs only when the migration does).
    """
    data = path.read_bytes()
    if path.suffix == SQL_SUFFIX:
        cls = sql_migration_class(path, data, class_name(split_name(path.stem)[1]))
        return MigrationFile(path.stem, path, checksum(data), cls)
    module = types.ModuleType(_MODULE_PREFIX + path.stem)
    module.__file__ = str(path)
    # A migration may import a helper module kept next to it (e.g. _helpers.py).
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        code = compile(data, str(path), "exec")
        sys.modules[module.__name__] = module  # dataclasses and pickling look modules up here
        exec(code, module.__dict__)
    except SyntaxError as exc:
        raise MigrationError(
            f"{path}, line {exc.lineno}: syntax error: {exc.msg}; nothing was run",
            hint="fix the file and run the command again",
        ) from None
    except Exception as exc:
        line = _line_in(exc, path)
        raise MigrationError(
            f"{path}, line {line}: the file failed to load: {type(exc).__name__}: {exc}; "
            "nothing was run",
            hint=missing_mongoengine_hint(str(exc)) or "fix the file and run the command again",
        ) from exc
    finally:
        if sys.path and sys.path[0] == folder:
            del sys.path[0]
    return MigrationFile(path.stem, path, checksum(data), _migration_class(module, path))


def resolve(files: list[MigrationFile], name: str, known: list[str] | None = None) -> str:
    """The full migration name meant by ``name``.

    Accepts the full name, the file name, the part after the timestamp, or the timestamp (for a
    0.0.x name also its 12-digit stamp and its name without ``_migration``); ``known`` adds
    recorded names whose files are gone.
    """
    candidates = sorted({f.name for f in files} | set(known or []))
    wanted = name.removesuffix(".py").removesuffix(SQL_SUFFIX)
    if wanted in candidates:
        return wanted
    matches = [c for c in candidates if wanted in _short_forms(c)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"{name!r} matches several migrations: {', '.join(matches)}")
    close = difflib.get_close_matches(wanted, candidates, n=1)
    raise UsageError(
        f"no migration named {name!r}",
        hint=f"did you mean {close[0]!r}?" if close else "`monarch list_migrations ENV` lists them",
    )


def _short_forms(name: str) -> tuple[str, ...]:
    """The short ways to name a migration: its slug and its stamp."""
    stamp, slug = split_name(name)
    if is_legacy(name):
        return slug, f"{slug}_migration", stamp[:12], stamp
    return (slug, stamp) if slug else (name.partition("_")[2], name.partition("_")[0])


def missing_mongoengine_hint(error: str) -> str | None:
    """The way out when a migration of monarch 0.0.x fails for want of mongoengine, which those
    migrations use to reach the database and which is an optional extra of monarch."""
    if "No module named 'mongoengine" not in error and "import of mongoengine" not in error:
        return None
    return ("install mongoengine (`pip install 'monarch[legacy]'`), then run the command again: "
            "monarch makes the environment mongoengine's default connection while migrations run")


def class_name(slug: str) -> str:
    """``add_indexes`` -> ``AddIndexesMigration``: the class name ``generate`` writes."""
    return "".join(part[:1].upper() + part[1:] for part in slug.split("_") if part) + "Migration"


def _migration_class(module: types.ModuleType, path: Path) -> type[Migration]:
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Migration)
        and value.__module__ == module.__name__
        and value not in (Migration, MongoMigration)
    ]
    if not found:
        raise MigrationError(
            f"{path} defines no migration class; nothing was run",
            hint="define a subclass of MongoMigration (or MongoBackedMigration), "
            "PostgresMigration or SQLiteMigration with a run() method",
        )
    if len(found) > 1:
        expected = class_name(split_name(path.stem)[1])
        named = [cls for cls in found if cls.__name__ == expected]
        if len(named) == 1:
            return named[0]
        names = ", ".join(cls.__name__ for cls in found)
        raise MigrationError(
            f"{path} defines several migration classes ({names}); nothing was run",
            hint=f"keep one per file, or name the one to run {expected}",
        )
    return found[0]


def _line_in(exc: BaseException, path: Path) -> int | str:
    """The line of ``path`` where ``exc`` was raised (the deepest frame in that file)."""
    line: int | str = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(path) and frame.lineno is not None:
            line = frame.lineno
    return line

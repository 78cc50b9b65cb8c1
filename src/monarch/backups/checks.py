"""The project's own checks of a restored backup: ``checks/*.py``.

A restore drill (``monarch verify NAME --restore``) proves that a backup restores and holds
what its manifest says; these say whether the data makes sense. Each ``.py`` file of the
project's checks folder (``checks/``, or ``checks = "..."`` in monarch.toml) whose name does
not start with ``_`` (those are helpers the others may import) is a checks file. Each function
it defines whose name starts with ``check_`` is a check::

    # checks/orders.py
    def check_every_order_has_a_user(db):
        users = set(db.users.distinct("_id"))
        orphans = [o["_id"] for o in db.orders.find({}, {"user_id": 1})
                   if o["user_id"] not in users]
        assert not orphans, f"{len(orphans)} order(s) without their user, e.g. {orphans[0]}"

It is called with the restored database as migrations see it: a pymongo ``Database`` (MongoDB),
a psycopg connection (PostgreSQL), a sqlite3 connection (SQLite). It fails by raising (an
``assert`` is the usual way); what it returns is ignored. ``ENVIRONMENTS = ["production"]`` in
a file limits its checks to the backups of those environments.

Every file is loaded before the drill restores anything: one that does not compile, raises
while loading, defines no check or one that cannot take the database as its one argument, or
has an ``ENVIRONMENTS`` that is not a list of names stops the drill
(:class:`~monarch.errors.ChecksError`, naming the file and line). Files are compiled from their
bytes, so no ``__pycache__`` is written beside them.
"""

from __future__ import annotations

import inspect
import linecache
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monarch.backups.records import CheckOutcome
from monarch.errors import ChecksError

PREFIX = "check_"
_MODULE_PREFIX = "monarch_checks."


@dataclass(frozen=True)
class Check:
    """One check function of a checks file; ``name`` is ``file.py::function``."""

    name: str
    path: Path
    function: Callable[[Any], object]


def load_checks(folder: Path, environment: str) -> tuple[Check, ...]:
    """Load every checks file of ``folder`` (none when it does not exist) and return the checks
    that apply to backups of ``environment``, by file then by their order in the file."""
    if not folder.is_dir():
        return ()
    paths = sorted(p for p in folder.glob("*.py")
                   if p.is_file() and not p.name.startswith(("_", ".")))
    found: list[Check] = []
    for path in paths:
        module = _load(path)
        wanted = _environments(module, path)
        functions = [value for name, value in vars(module).items()
                     if name.startswith(PREFIX) and inspect.isfunction(value)
                     and value.__module__ == module.__name__]
        if not functions:
            raise ChecksError(
                f"{path} defines no check: no function whose name starts with {PREFIX!r}; "
                "nothing was restored",
                hint=f"name the checks {PREFIX}something(db), or start the file's name with _ "
                "if it is a helper")
        for function in functions:
            _takes_the_database(function, path)
        if wanted is None or environment in wanted:
            found += [Check(f"{path.name}::{f.__name__}", path, f) for f in functions]
    return tuple(found)


def _load(path: Path) -> types.ModuleType:
    """Compile and run one checks file (its folder importable while it loads)."""
    module = types.ModuleType(_MODULE_PREFIX + path.stem)
    module.__file__ = str(path)
    folder = str(path.parent)
    sys.path.insert(0, folder)
    sys.modules[module.__name__] = module  # dataclasses inside the file look it up
    try:
        exec(compile(path.read_bytes(), str(path), "exec"), module.__dict__)
    except SyntaxError as exc:
        raise ChecksError(f"{path}, line {exc.lineno}: syntax error: {exc.msg}; nothing was "
                          "restored", hint="fix the file and run the drill again") from None
    except Exception as exc:
        raise ChecksError(
            f"{path}, line {_line_in(exc, path)}: the file failed to load: "
            f"{type(exc).__name__}: {exc}; nothing was restored",
            hint=f"run `python {path}` to see the whole traceback") from exc
    finally:
        sys.modules.pop(module.__name__, None)
        if sys.path and sys.path[0] == folder:
            del sys.path[0]
    return module


def _takes_the_database(function: Callable[..., object], path: Path) -> None:
    """Refuse a check that cannot be called with the database alone."""
    try:
        inspect.signature(function).bind(None)
    except TypeError:
        line = function.__code__.co_firstlineno
        raise ChecksError(
            f"{path}, line {line}: {function.__name__}() must take one argument, the restored "
            "database; nothing was restored",
            hint=f"def {function.__name__}(db): ... (conn on PostgreSQL and SQLite)") from None


def _environments(module: types.ModuleType, path: Path) -> frozenset[str] | None:
    """The file's ``ENVIRONMENTS`` (None: it checks every environment's backups)."""
    value = getattr(module, "ENVIRONMENTS", None)
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ChecksError(f"{path}: ENVIRONMENTS must be a list of environment names, not "
                          f"{value!r}", hint='ENVIRONMENTS = ["production"]')
    return frozenset(value)


def run_checks(checks: tuple[Check, ...], database: object) -> tuple[CheckOutcome, ...]:
    """Run each check on ``database``; a check that raises failed, and says how and where.

    Interrupts (Ctrl-C, a stop signal) are not a check's failure: they stop the drill.
    """
    outcomes = []
    for check in checks:
        try:
            check.function(database)
        except Exception as exc:  # the check's verdict, whatever its type
            outcomes.append(CheckOutcome(check.name, False, _describe(exc, check.path)))
        else:
            outcomes.append(CheckOutcome(check.name, True))
    return tuple(outcomes)


def _describe(exc: Exception, path: Path) -> str:
    """``AssertionError: 3 orders without a user (orders.py, line 9)``; an assert without a
    message shows its line's source instead."""
    line = _line_in(exc, path)
    text = str(exc).strip()
    if not text and isinstance(exc, AssertionError) and line != "?":
        text = linecache.getline(str(path), int(line)).strip()
    where = f" ({path.name}, line {line})"
    return f"{type(exc).__name__}{': ' + text if text else ''}{where}"


def _line_in(exc: BaseException, path: Path) -> str:
    """The line of ``path`` where ``exc`` was raised (its deepest frame in that file)."""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__)
             if frame.filename == str(path)]
    return str(lines[-1]) if lines and lines[-1] is not None else "?"

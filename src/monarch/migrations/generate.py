"""Writing a new migration file from the engine's template.

Which template: ``--engine`` when given; otherwise the engine of the project's environments,
when they all use one; a project whose environments use several engines must say which.
``--sql`` writes a plain ``.sql`` file (PostgreSQL and SQLite only).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from monarch.engines import registry
from monarch.errors import UsageError
from monarch.migrations.discovery import FILE_NAME, LEGACY_NAME, class_name, split_name
from monarch.migrations.migration import ENGINE_NAMES
from monarch.migrations.sqlfiles import NON_TRANSACTIONAL, ROLLBACK_MARKER

if TYPE_CHECKING:
    from monarch.config import Environment

SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
ENGINES = tuple(row.name for row in registry.engines())
SQL_ENGINES = tuple(row.name for row in registry.engines() if row.sql_files)

# The Python templates, by the name an engine's registry row gives (``template``). Each is
# formatted with ``class_name``, ``base`` and the row's ``example`` and ``connection``.
PLAIN_TEMPLATE = '''\
from monarch import {base}


class {class_name}({base}):
    def run(self):
        """Move the data from one state to the next. Exceptions are handled by monarch."""
        raise NotImplementedError

    # def rollback(self):
    #     """Undo run(). Without it, `monarch rollback` refuses to roll this migration back."""
'''

TRANSACTIONAL_TEMPLATE = '''\
from monarch import {base}


class {class_name}({base}):
    # run() and its history record commit together in one transaction. For statements that
    # cannot run inside one ({example}), set: transactional = False

    def run(self):
        """Move the schema and data forward with self.conn ({connection})."""
        raise NotImplementedError

    # def rollback(self):
    #     """Undo run(). Without it, `monarch rollback` refuses to roll this migration back."""
'''

SQL_TEMPLATE = f"""\
-- {{name}}: the statements that migrate go here, before the rollback line.
-- They run in one transaction together with the history record. To run the file outside a
-- transaction (CREATE INDEX CONCURRENTLY, VACUUM), add this line: {NON_TRANSACTIONAL}


{ROLLBACK_MARKER}
-- The statements that undo the above. With none, `monarch rollback` refuses to roll back
-- this migration.
"""

TEMPLATES = {"plain": PLAIN_TEMPLATE, "transactional": TRANSACTIONAL_TEMPLATE}


def template_engine(
    environments: Mapping[str, Environment], engine: str | None, *, sql: bool = False
) -> str:
    """The engine whose template ``generate`` writes (see the module doc for the rule)."""
    if engine is not None:
        if engine not in ENGINES:
            raise UsageError(f"unknown engine {engine!r}", hint=f"use one of: {', '.join(ENGINES)}")
        if sql and engine not in SQL_ENGINES:
            raise UsageError(
                f"SQL migrations run on {_sql_engines()}, not on {ENGINE_NAMES[engine]}",
                hint="leave out --sql to write a Python migration",
            )
        return engine
    used: dict[str, list[str]] = {}
    for env in environments.values():
        if env.engine:  # empty: its URL is a ${VAR} that is not set here
            used.setdefault(env.engine, []).append(env.name)
    if sql:
        others = {e: names for e, names in used.items() if e not in SQL_ENGINES}
        if others:
            named = ", ".join(
                f"{n} ({ENGINE_NAMES.get(e, e)})" for e, ns in others.items() for n in ns
            )
            raise UsageError(
                f"SQL migrations run on {_sql_engines()} only, and this project has "
                f"other environments: {named}",
                hint="write a Python migration (leave out --sql), or pass "
                f"{' or '.join('--engine ' + e for e in SQL_ENGINES)} "
                "if those environments do not run these migrations",
            )
        # The file is the same for every SQL engine; the engine only names the template: the
        # one the environments use, else the first.
        return next(iter(used)) if len(used) == 1 else SQL_ENGINES[0]
    if len(used) == 1:
        return next(iter(used))
    if not used:
        raise UsageError(
            "this project has no environments to take the migration's engine from",
            hint=f"pass --engine ({' | '.join(ENGINES)})",
        )
    listed = "; ".join(
        f"{ENGINE_NAMES.get(e, e)}: {', '.join(names)}" for e, names in sorted(used.items())
    )
    raise UsageError(
        f"the environments use different engines ({listed}), so the template is not clear",
        hint=f"pass --engine ({' | '.join(sorted(used))})",
    )


def template(engine: str, name: str, *, sql: bool = False) -> str:
    """The text of a new migration named ``name`` for ``engine``."""
    if sql:
        return SQL_TEMPLATE.format(name=name)
    row = registry.by_name(engine)
    if row is None:
        raise UsageError(f"unknown engine {engine!r}", hint=f"use one of: {', '.join(ENGINES)}")
    return TEMPLATES[row.template].format(
        base=row.migration_base,
        class_name=class_name(name),
        example=row.template_example,
        connection=row.template_connection,
    )


def _sql_engines() -> str:
    """``PostgreSQL and SQLite``: the engines that run ``.sql`` migrations."""
    names = [ENGINE_NAMES[e] for e in SQL_ENGINES]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def new_migration(
    folder: Path,
    name: str,
    now: datetime | None = None,
    *,
    engine: str = ENGINES[0],
    sql: bool = False,
) -> Path:
    """Write ``<folder>/<UTC timestamp>_<name>.py`` (``.sql`` with ``sql``); return its path.

    ``name`` must be a snake_case identifier not used by another migration. An existing file is
    never overwritten; a timestamp already taken (two files generated in one second) moves on by
    a second so that the order stays unambiguous.
    """
    if not SNAKE.match(name):
        suggestion = _snake(name)
        raise UsageError(
            f"{name!r} is not a valid migration name: use a snake_case identifier",
            hint=f"e.g. monarch generate {suggestion}" if suggestion else None,
        )
    folder.mkdir(parents=True, exist_ok=True)
    stamps = set()
    for existing in folder.iterdir():
        if FILE_NAME.match(existing.name) is None and LEGACY_NAME.match(existing.name) is None:
            continue
        stamp, slug = split_name(existing.name.rpartition(".")[0])
        if slug == name:
            raise UsageError(
                f"a migration named {name!r} already exists: {existing}",
                hint="choose another name; migration names must be unique",
            )
        stamps.add(stamp)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    while (stamp := moment.strftime("%Y%m%d%H%M%S")) in stamps:
        moment += timedelta(seconds=1)
    path = folder / f"{stamp}_{name}{'.sql' if sql else '.py'}"
    _write_new(path, template(engine, name, sql=sql))
    return path


def _write_new(path: Path, text: str) -> None:
    """Write ``path`` atomically, failing if it exists (a complete file or none at all)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # unlike rename, link never replaces an existing file
        except FileExistsError:
            raise UsageError(f"{path} already exists; nothing was written") from None
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform or filesystem allows it
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _snake(name: str) -> str:
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    snake = re.sub(r"[^A-Za-z0-9]+", "_", words).strip("_").lower()
    return snake if SNAKE.match(snake) else ""

"""STOPGAP until monarch.backups.scratch lands on main (removed on rebase)."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from monarch.engines import engine_for, registry
from monarch.engines.postgres.dbprops import create_statement
from monarch.engines.postgres.swap import admin_connection
from monarch.secrets import Secret

if TYPE_CHECKING:
    from monarch.config import Environment
    from monarch.engines.base import Engine


@contextmanager
def scratch(environment: Environment, *, keep: bool = False, label: str = "scratch",
            ) -> Iterator[Environment]:
    token = secrets.token_hex(4)
    row = registry.by_name(environment.engine)
    if row is not None and row.file_url:
        path = Path(tempfile.mkdtemp()) / f"{label}_{token}.db"
        made = replace(environment, url=Secret(f"sqlite:///{path}"), database=str(path))
    else:
        made = environment.with_database(f"{environment.database}_{label}_{token}")
    if environment.engine == "postgres":
        conn, _ = admin_connection(made)
        conn.execute(create_statement(made.database, None))
        conn.close()
    try:
        yield made
    finally:
        if not keep:
            engine = engine_for(made)
            try:
                engine.drop()
                if environment.engine == "postgres":
                    conn, _ = admin_connection(made)
                    conn.execute(f'DROP DATABASE IF EXISTS "{made.database}"')
                    conn.close()
            finally:
                engine.close()


@dataclass(frozen=True)
class Fingerprint:
    count: int
    digest: str


def fingerprint(engine: Engine) -> dict[str, Fingerprint]:
    return {name: Fingerprint(count, "") for name, count in engine.inventory().items()
            if not name.rpartition(".")[2].startswith("monarch_")}

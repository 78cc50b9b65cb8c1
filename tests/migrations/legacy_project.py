"""A project exactly as monarch 0.0.x left it: ``migrations/settings.py``, migration files from
its template (``_yyyymmddHHMM_<name>_migration.py``), and its history documents in
``mongo_migration_history``, inserted raw."""

from __future__ import annotations

import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bson import ObjectId
from pymongo.database import Database

from tests.migrations.driver import Driver

HISTORY = "mongo_migration_history"

# The original `generate` template, with a run() body filled in.
TEMPLATE = """\
from monarch import echo
from monarch import MongoBackedMigration
# from monarch import progressbar
{imports}

class {class_name}(MongoBackedMigration):

    def run(self):
{body}
"""


def class_name(name: str) -> str:
    return "".join(word.capitalize() for word in name.split("_")) + "Migration"


@dataclass
class LegacyProject(Driver):
    """A 0.0.x project whose ``development`` environment is the test's database."""

    root: Path
    url: str
    db: Database[dict[str, Any]]
    spawned: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.migrations / "settings.py"

    def write_settings(self) -> None:
        parts = urlsplit(self.url)
        settings = f"""\
            ENVIRONMENTS = {{
                'development': {{
                    'host': '{parts.hostname}:{parts.port}',
                    'db_name': '{self.db.name}',
                }},
            }}
            """
        self.migrations.mkdir(exist_ok=True)
        (self.migrations / "__init__.py").write_text("# this file makes migrations a package\n")
        self.config_path.write_text(textwrap.dedent(settings))

    def legacy(self, stamp: str, name: str, body: str, *, imports: str = "") -> str:
        """Write ``_<stamp>_<name>_migration.py`` from the 0.0.x template; return its key."""
        key = f"_{stamp}_{name}_migration"
        text = TEMPLATE.format(
            imports=imports,
            class_name=class_name(name),
            body=textwrap.indent(textwrap.dedent(body).strip(), " " * 8),
        )
        (self.migrations / f"{key}.py").write_text(text)
        return key

    def history(self, key: str, state: str) -> None:
        """Insert a history document as 0.0.x's mongoengine model wrote it."""
        self.db[HISTORY].insert_one({"_id": ObjectId(), "key": key, "state": state})

    def legacy_history(self) -> list[dict[str, Any]]:
        return list(self.db[HISTORY].find().sort("_id", 1))

    def records(self) -> dict[str, dict[str, Any]]:
        return {d["_id"]: d for d in self.db.monarch_migrations.find()}

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every collection's documents, sorted: the whole database, history included."""
        return {
            name: sorted(self.db[name].find(), key=lambda d: repr(d["_id"]))
            for name in sorted(self.db.list_collection_names())
        }

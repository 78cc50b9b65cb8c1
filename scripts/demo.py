"""The walk-through behind ``scripts/demo`` (see that file)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers.mongo import start_mongo  # noqa: E402 - needs the repo on sys.path

MIGRATION = '''\
from monarch import MongoBackedMigration


class AddIndexesToUserTableMigration(MongoBackedMigration):
    def run(self):
        """Give every user a lower-cased email and index it."""
        for batch in self.batches(self.db.users, size=100):
            for user in batch:
                self.db.users.update_one(
                    {"_id": user["_id"]}, {"$set": {"email": user["email"].lower()}}
                )
        self.db.users.create_index("email", unique=True)

    def rollback(self):
        self.db.users.drop_index("email_1")
'''


def step(title: str) -> None:
    print(f"\n\033[1m## {title}\033[0m" if sys.stdout.isatty() else f"\n## {title}")


def monarch(project: Path, *args: str) -> str:
    print(f"$ monarch {shlex.join(args)}", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "monarch", *args],
        cwd=project,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    output = (result.stdout + result.stderr).rstrip()
    if output:
        print(textwrap.indent(output, "  "))
    if result.returncode != 0:
        raise SystemExit(f"demo: `monarch {shlex.join(args)}` failed ({result.returncode})")
    return result.stdout


def main() -> None:
    step("Starting a throwaway MongoDB-wire server (the one the tests use)")
    with start_mongo() as server, tempfile.TemporaryDirectory(prefix="monarch-demo-") as tmp:
        print(f"  {server.kind} {server.version} at {server.uri}")
        project = Path(tmp) / "shop"
        project.mkdir()
        client = server.client()
        users = client["shop_dev"]["users"]
        users.insert_many(
            [{"name": f"user {i}", "email": f"User{i}@Example.COM"} for i in range(500)]
        )
        client["shop_dev"]["orders"].insert_many([{"user": i, "total": i * 3} for i in range(200)])
        print("  seeded shop_dev: 500 users, 200 orders")

        step("1. init: a monarch.toml, migrations/ and querysets/")
        monarch(project, "init")
        (project / "monarch.toml").write_text(
            textwrap.dedent(
                f"""\
                migrations = "migrations"
                querysets = "querysets"
                backups = "file://backups"

                [environments.development]
                url = "{server.uri}/shop_dev"

                [environments.rehearsal]
                url = "{server.uri}/shop_rehearsal"
                """
            )
        )
        monarch(project, "list_environments")

        step("2. generate: a migration in plain Python")
        monarch(project, "generate", "add_indexes_to_user_table")
        (path,) = (project / "migrations").glob("*_add_indexes_to_user_table.py")
        path.write_text(MIGRATION)
        print(f"  (wrote a run() and a rollback() into {path.name})")

        step("3. list_migrations, then migrate development")
        monarch(project, "list_migrations", "development")
        monarch(project, "migrate", "development")
        monarch(project, "list_migrations", "development")

        step("4. backup development, then list_backups")
        backup = monarch(project, "backup", "development", "--name", "after-migrate", "--quiet")
        monarch(project, "list_backups")

        step("5. copy_db development:rehearsal (a full copy, exactly)")
        monarch(project, "copy_db", "development:rehearsal", "--quiet")
        print(f"  rehearsal now has {client['shop_rehearsal']['users'].count_documents({})} users")

        step("6. an accident, then restore")
        client["shop_dev"]["users"].delete_many({})
        print(f"  deleted every user: {users.count_documents({})} left")
        monarch(project, "restore", f"{backup.strip()}:development", "--quiet")
        print(f"  development has {users.count_documents({})} users again")
        client.close()
    step("Done: the server is stopped and the temporary project removed.")


if __name__ == "__main__":
    os.environ.pop("MONARCH_CONFIG", None)
    main()

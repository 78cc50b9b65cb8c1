"""A PostgreSQL server: an external one, or a throwaway cluster of Debian's binaries."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tests.servers.ports import free_port
from tests.servers.process import ServerStartError, StopsOnExit

if TYPE_CHECKING:
    import psycopg

ENV_URI = "MONARCH_TEST_POSTGRES_URI"
SERVER_USER = "postgres"
INITDB_FLAGS = ("-A", "trust", "-U", SERVER_USER, "-E", "UTF8", "--locale=C", "--no-sync")
# Durability is pointless for a throwaway cluster and costs time on every commit.
SERVER_SETTINGS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
)


@dataclass
class PostgresServer(StopsOnExit):
    """A running PostgreSQL server.

    ``uri`` is like ``postgresql://postgres@127.0.0.1:PORT/postgres``; ``bin_dir`` holds the
    client tools (``pg_dump``, ``pg_restore``, ``psql``) of the newest installed version.
    """

    uri: str
    kind: str
    bin_dir: Path
    _datadir: Path | None = field(default=None, repr=False)
    _workdir: Path | None = field(default=None, repr=False)
    _admin: psycopg.Connection[Any] | None = field(default=None, repr=False)

    def database_url(self, name: str) -> str:
        return urlsplit(self.uri)._replace(path=f"/{name}").geturl()

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its URL."""
        from psycopg import sql

        self._connection().execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` even while connected to; errors are ignored since this is cleanup."""
        import psycopg
        from psycopg import sql

        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        with contextlib.suppress(psycopg.Error):
            self._connection().execute(statement.format(sql.Identifier(name)))

    def _connection(self) -> psycopg.Connection[Any]:
        import psycopg

        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(self.uri, autocommit=True)
        return self._admin

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._datadir is not None:
            pg_ctl = [str(self.bin_dir / "pg_ctl"), "-D", str(self._datadir)]
            # Immediate: nothing in a throwaway cluster is worth a clean shutdown's wait.
            _run([*pg_ctl, "-m", "immediate", "-w", "stop"], check=False)
            self._datadir = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


def find_bin_dir() -> Path:
    """``/usr/lib/postgresql/<newest>/bin`` (Debian keeps server binaries off PATH), else PATH."""
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    if versions:
        return max(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ServerStartError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; "
        "install them (Debian: apt-get install -y postgresql) or set " + ENV_URI
    )


def planned_kind() -> str:
    return "external" if os.environ.get(ENV_URI) else "cluster"


def start_postgres() -> PostgresServer:
    """Use ``$MONARCH_TEST_POSTGRES_URI``, else init and start a throwaway cluster."""
    bin_dir = find_bin_dir()
    if planned_kind() == "external":
        return PostgresServer(uri=os.environ[ENV_URI], kind="external", bin_dir=bin_dir)
    as_root = os.geteuid() == 0
    # The server runs as the postgres user when we are root, so it must reach its folder.
    workdir = Path(tempfile.mkdtemp(prefix="monarch-pg-", dir="/tmp" if as_root else None))
    server = PostgresServer(uri="", kind="cluster", bin_dir=bin_dir, _workdir=workdir)
    try:
        if as_root:
            user = _server_user()
            os.chown(workdir, user.pw_uid, user.pw_gid)
        datadir = workdir / "data"
        log = workdir / "postgres.log"
        _run([str(bin_dir / "initdb"), "-D", str(datadir), *INITDB_FLAGS])
        port = free_port()
        options = f"-p {port} -k {workdir} {SERVER_SETTINGS}"
        server._datadir = datadir
        pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(datadir), "-l", str(log)]
        _run([*pg_ctl, "-o", options, "-w", "-t", "30", "start"], log=log)
        server.uri = f"postgresql://{SERVER_USER}@127.0.0.1:{port}/postgres"
        return server
    except BaseException:
        server.stop()
        raise


def _server_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise ServerStartError(
            f"running as root, but there is no {SERVER_USER!r} user to run PostgreSQL as "
            "(initdb refuses root); Debian's postgresql package creates it"
        ) from None


def _run(argv: list[str], check: bool = True, log: Path | None = None) -> None:
    """Run a PostgreSQL tool, as the postgres user when we are root."""
    if os.geteuid() == 0:
        argv = ["runuser", "-u", SERVER_USER, "--", *argv]
    result = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        server_log = ""
        if log is not None and log.exists():
            server_log = "\n" + log.read_text(errors="replace")[-2000:]
        raise ServerStartError(
            f"{' '.join(argv)}\nfailed with status {result.returncode}:\n"
            f"{result.stdout[-1000:]}{result.stderr[-2000:]}{server_log}"
        )

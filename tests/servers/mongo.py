"""A MongoDB-wire server: an external one, a throwaway ``mongod``, or FerretDB."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from tests.servers.ferretdb import start_ferretdb
from tests.servers.ports import free_port
from tests.servers.process import ServerProcess, ServerStartError, StopsOnExit

ENV_URI = "MONARCH_TEST_MONGODB_URI"
START_TIMEOUT = 30.0

Client = MongoClient[dict[str, Any]]


@dataclass
class MongoServer(StopsOnExit):
    """A running MongoDB-wire server.

    ``uri`` has no database path (``mongodb://127.0.0.1:PORT``); ``kind`` is ``"external"``,
    ``"mongod"`` or ``"ferretdb"``. The flags are measured on the server itself, so an external
    URI that points at FerretDB or at a replica set is described correctly.
    """

    uri: str
    kind: str
    version: str
    supports_transactions: bool
    is_ferretdb: bool
    _process: ServerProcess | None = field(default=None, repr=False)
    _workdir: Path | None = field(default=None, repr=False)
    _admin: Client | None = field(default=None, repr=False)

    def database_url(self, name: str) -> str:
        """The server's URI with ``name`` as its database path."""
        return urlsplit(self.uri)._replace(path=f"/{name}").geturl()

    def client(self) -> Client:
        """A client shared by the helpers here; closed by :meth:`stop`."""
        if self._admin is None:
            self._admin = _client(self.uri)
        return self._admin

    def drop_database(self, name: str) -> None:
        """Drop ``name``; errors are ignored since this is cleanup."""
        with contextlib.suppress(PyMongoError):
            self.client().drop_database(name)

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._process is not None:
            self._process.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


def planned_kind() -> str:
    """Which kind :func:`start_mongo` will start, without starting it."""
    if os.environ.get(ENV_URI):
        return "external"
    if shutil.which("mongod"):
        return "mongod"
    return "ferretdb"


def start_mongo() -> MongoServer:
    """Use ``$MONARCH_TEST_MONGODB_URI``, else start ``mongod`` from PATH, else FerretDB."""
    kind = planned_kind()
    if kind == "external":
        try:
            return _describe(_without_database(os.environ[ENV_URI]), kind)
        except PyMongoError as exc:
            raise ServerStartError(f"cannot use the server of ${ENV_URI}: {exc}") from exc
    workdir = Path(tempfile.mkdtemp(prefix=f"monarch-{kind}-"))
    process: ServerProcess | None = None
    try:
        port = free_port()
        if kind == "mongod":
            process = _start_mongod(port, workdir)
        else:
            process = start_ferretdb(port, workdir)
        uri = f"mongodb://127.0.0.1:{port}"
        process.wait_ready(lambda: _answers(uri), START_TIMEOUT)
        return _describe(uri, kind, process, workdir)
    except BaseException:
        if process is not None:
            process.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _start_mongod(port: int, workdir: Path) -> ServerProcess:
    data = workdir / "data"
    data.mkdir()
    argv = [
        "mongod",
        f"--dbpath={data}",
        f"--port={port}",
        "--bind_ip=127.0.0.1",
        "--nounixsocket",  # its socket file would be shared by every mongod on this port
        "--quiet",
    ]
    return ServerProcess("mongod", argv, workdir)


def _client(uri: str, timeout_ms: int = 5000) -> Client:
    return MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)


def _answers(uri: str) -> bool:
    client = _client(uri, timeout_ms=250)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def _describe(
    uri: str, kind: str, process: ServerProcess | None = None, workdir: Path | None = None
) -> MongoServer:
    client = _client(uri)
    try:
        hello = client.admin.command("hello")
        build = client.admin.command("buildInfo")
    finally:
        client.close()
    is_ferretdb = kind == "ferretdb" or "ferretdbVersion" in build
    # Transactions need a replica set or a sharded cluster; FerretDB v1 has none at all.
    replicated = "setName" in hello or hello.get("msg") == "isdbgrid"
    return MongoServer(
        uri=uri,
        kind=kind,
        version=str(build.get("ferretdbVersion") or build.get("version", "?")),
        supports_transactions=replicated and not is_ferretdb,
        is_ferretdb=is_ferretdb,
        _process=process,
        _workdir=workdir,
    )


def _without_database(uri: str) -> str:
    """Drop the database path of ``uri``, keeping it as the auth source where it served as one."""
    parts = urlsplit(uri)
    database = parts.path.lstrip("/")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if database and parts.username and not any(key == "authSource" for key, _ in query):
        query.append(("authSource", database))
    # The URI format wants a "/" before options even without a database.
    return parts._replace(path="/" if query else "", query=urlencode(query)).geturl()

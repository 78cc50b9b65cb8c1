"""An S3 endpoint: an external one, moto's S3 server in this process, or SeaweedFS."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.servers.process import ServerProcess, ServerStartError, StopsOnExit
from tests.servers.seaweedfs import start_seaweedfs

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ENV_ENDPOINT = "MONARCH_TEST_S3_ENDPOINT"
# The kinds started here: moto (a mock of AWS, in process, starts in a blink) and SeaweedFS (a
# real S3-compatible server, built from source, ready after some seconds).
LOCAL_KINDS = ("moto", "seaweedfs")
# moto accepts any credentials and SeaweedFS is started with these; an external endpoint gets
# the real ones from the environment.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3Bucket:
    """A bucket made for one test; ``url`` is where a backup store would point."""

    name: str
    url: str
    endpoint_url: str
    client: S3Client
    versioned: bool = False
    """Created with Object Lock (so with versioning): removing it means removing versions."""

    def remove(self) -> None:
        """Empty and delete the bucket; errors are ignored since this is cleanup."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for upload in self.client.list_multipart_uploads(Bucket=self.name).get("Uploads", []):
                self.client.abort_multipart_upload(
                    Bucket=self.name, Key=upload["Key"], UploadId=upload["UploadId"]
                )
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
            for page in pages:
                if contents := page.get("Contents"):
                    self.client.delete_objects(
                        Bucket=self.name,
                        Delete={"Objects": [{"Key": item["Key"]} for item in contents]},
                    )
            if self.versioned:
                self._remove_versions()
            self.client.delete_bucket(Bucket=self.name)
        except (BotoCoreError, ClientError):
            pass

    def _remove_versions(self) -> None:
        # Versions under a retention that has not expired stay, and so does the bucket; the
        # server's data goes when it stops.
        pages = self.client.get_paginator("list_object_versions").paginate(Bucket=self.name)
        for page in pages:
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                with contextlib.suppress(Exception):
                    self.client.delete_object(
                        Bucket=self.name, Key=item["Key"], VersionId=item["VersionId"]
                    )


@dataclass
class S3Server(StopsOnExit):
    """A running S3 endpoint and the credentials and region to use with it."""

    endpoint_url: str
    kind: str
    region: str
    access_key_id: str
    secret_access_key: str
    _moto: Any = field(default=None, repr=False)
    _process: ServerProcess | None = field(default=None, repr=False)
    _workdir: Path | None = field(default=None, repr=False)

    def client(self) -> S3Client:
        """A new boto3 client for this endpoint (boto3 is imported only when needed)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def create_bucket(
        self, client: S3Client | None = None, *, object_lock: bool = False
    ) -> S3Bucket:
        """Create a bucket with a fresh name; its ``url`` points at a ``backups`` prefix.

        ``object_lock`` creates it with S3 Object Lock enabled (which also turns on
        versioning): objects may then be given a retention that refuses their deletion.
        """
        client = client or self.client()
        name = f"t-{uuid.uuid4().hex[:16]}"
        options: dict[str, Any] = {"Bucket": name}
        if self.region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        if object_lock:
            options["ObjectLockEnabledForBucket"] = True
        client.create_bucket(**options)
        return S3Bucket(name, f"s3://{name}/backups", self.endpoint_url, client, object_lock)

    def stop(self) -> None:
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def planned_kinds() -> list[str]:
    """The S3 servers the tests run against: the external one if given, else every local kind."""
    return ["external"] if os.environ.get(ENV_ENDPOINT) else list(LOCAL_KINDS)


def planned_kind() -> str:
    """The first of ``planned_kinds()``: what ``start_s3()`` starts when given no kind."""
    return planned_kinds()[0]


def _setting(name: str) -> str:
    return os.environ.get(name) or DUMMY_CREDENTIALS[name]


def start_s3(kind: str | None = None) -> S3Server:
    """Use ``$MONARCH_TEST_S3_ENDPOINT``, else start an S3 server of ``kind`` (default moto).

    moto runs in this process; SeaweedFS is a child process with its data in a temporary
    folder, removed by ``stop()``. Both listen on free loopback ports.
    """
    kind = kind or planned_kind()
    if kind == "external":
        return S3Server(
            endpoint_url=os.environ[ENV_ENDPOINT],
            kind=kind,
            region=_setting("AWS_DEFAULT_REGION"),
            access_key_id=_setting("AWS_ACCESS_KEY_ID"),
            secret_access_key=_setting("AWS_SECRET_ACCESS_KEY"),
        )
    if kind == "moto":
        from moto.server import ThreadedMotoServer

        # Port 0: the kernel picks a free port while binding, so no race with other workers.
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        host, port = moto.get_host_and_port()
        return S3Server(
            endpoint_url=f"http://{host}:{port}",
            kind=kind,
            region=_setting("AWS_DEFAULT_REGION"),
            access_key_id=_setting("AWS_ACCESS_KEY_ID"),
            secret_access_key=_setting("AWS_SECRET_ACCESS_KEY"),
            _moto=moto,
        )
    if kind == "seaweedfs":
        return _start_seaweedfs()
    raise ValueError(f"unknown S3 server kind {kind!r}; known: external, {', '.join(LOCAL_KINDS)}")


class S3Servers(StopsOnExit):
    """S3 servers by kind, each started when first asked for (SeaweedFS takes seconds).

    A kind that failed to start is not tried again: asking for it raises the same error.
    """

    def __init__(self) -> None:
        self._servers: dict[str, tuple[S3Server, S3Client]] = {}
        self._failures: dict[str, ServerStartError] = {}

    def get(self, kind: str) -> S3Server:
        """The server of ``kind``, started on first use."""
        return self._started(kind)[0]

    def bucket(self, kind: str, *, object_lock: bool = False) -> S3Bucket:
        """A fresh bucket on the server of ``kind`` (see ``S3Server.create_bucket``)."""
        server, client = self._started(kind)
        return server.create_bucket(client, object_lock=object_lock)

    def _started(self, kind: str) -> tuple[S3Server, S3Client]:
        if kind in self._failures:
            raise self._failures[kind]
        if kind not in self._servers:
            try:
                server = start_s3(kind)
            except ServerStartError as exc:
                self._failures[kind] = exc
                raise
            self._servers[kind] = (server, server.client())
        return self._servers[kind]

    def stop(self) -> None:
        for server, _ in self._servers.values():
            server.stop()
        self._servers.clear()


SEAWEEDFS_START_TIMEOUT = 90.0


def _start_seaweedfs() -> S3Server:
    workdir = Path(tempfile.mkdtemp(prefix="monarch-seaweedfs-"))
    server: S3Server | None = None
    try:
        # Always the test credentials: whatever AWS keys the environment holds are not written
        # into the server's configuration.
        access_key_id = DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"]
        secret_access_key = DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
        process, port = start_seaweedfs(workdir, access_key_id, secret_access_key)
        server = S3Server(
            endpoint_url=f"http://127.0.0.1:{port}",
            kind="seaweedfs",
            region=DUMMY_CREDENTIALS["AWS_DEFAULT_REGION"],
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            _process=process,
            _workdir=workdir,
        )
        process.wait_ready(_writable(server), SEAWEEDFS_START_TIMEOUT)
        return server
    except BaseException:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _writable(server: S3Server) -> Callable[[], bool]:
    """A readiness probe: true once a bucket can be created, written to and removed.

    The S3 gateway answers before its filer and volume server are ready to store anything, so
    listing buckets is not enough.
    """
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        config=Config(connect_timeout=1, read_timeout=10, retries={"total_max_attempts": 1}),
    )
    last_try = [0.0]

    def ready() -> bool:
        if time.monotonic() - last_try[0] < 0.5:
            return False
        last_try[0] = time.monotonic()
        try:
            bucket = server.create_bucket(client)
        except (BotoCoreError, ClientError):
            return False
        try:
            client.put_object(Bucket=bucket.name, Key="probe", Body=b"ready?")
            return True
        except (BotoCoreError, ClientError):
            return False
        finally:
            bucket.remove()

    return ready


def store_params(*others: str) -> list[str]:
    """Params for a fixture over backup stores: ``others``, then ``s3-<kind>`` per S3 server."""
    return [*others, *(f"s3-{kind}" for kind in planned_kinds())]

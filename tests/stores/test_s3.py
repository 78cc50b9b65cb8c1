"""What only the S3 store does: multipart streaming, options, dropped links and error messages."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
)

from monarch.config import StoreConfig
from monarch.errors import ConfigError, MonarchError, StoreError
from monarch.secrets import Secret
from monarch.stores import _s3_io, open_store
from monarch.stores.base import AlreadyExists, ObjectNotFound
from monarch.stores.s3 import S3Options, S3Store, error_for, parse_part_size
from tests.servers import S3Bucket, S3Server
from tests.stores.moto_process import MotoProcess
from tests.stores.tcp_proxy import CuttingProxy

MiB = 1 << 20
SECRET = "monarch-TEST-secret-8d1f0e"  # recognisable, so a leak is easy to spot


def s3_store(bucket: S3Bucket, endpoint_url: str | None = None, **options: Any) -> S3Store:
    config = StoreConfig(
        bucket.url, {"endpoint_url": endpoint_url or bucket.endpoint_url, **options}
    )
    store = open_store(config)
    assert isinstance(store, S3Store)
    return store


def pending_uploads(bucket: S3Bucket) -> list[Any]:
    uploads: list[Any] = bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", [])
    return uploads


def every_text(exc: BaseException) -> str:
    """Everything an exception chain could show: messages, hints, reprs, causes."""
    texts = []
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), str(getattr(seen, "hint", "")), repr(seen.args)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_importing_the_stores_does_not_import_boto3() -> None:
    code = (
        "import sys, monarch.stores\n"
        "from monarch.config import StoreConfig\n"
        "monarch.stores.open_store(StoreConfig('memory://x'))\n"
        "monarch.stores.open_store(StoreConfig('file:///tmp/monarch-never-written'))\n"
        "assert not {'boto3', 'botocore'} & set(sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# Streaming


def test_a_small_object_is_one_put_and_a_big_one_a_multipart_upload(s3_bucket: S3Bucket) -> None:
    store = s3_store(s3_bucket, part_size="5MiB")
    with store.writer("small") as upload:
        upload.write(os.urandom(5 * MiB - 1))
    with store.writer("big") as upload:
        upload.write(os.urandom(12 * MiB))
    head = s3_bucket.client.head_object
    assert "-" not in head(Bucket=s3_bucket.name, Key="backups/small")["ETag"]
    assert head(Bucket=s3_bucket.name, Key="backups/big")["ETag"].endswith('-3"')


def test_part_size_doubles_every_thousand_parts_so_unknown_sizes_fit() -> None:
    first = 8 * MiB
    sizes = [_s3_io.part_size_for(n, first) for n in range(1, _s3_io.MAX_PARTS + 1)]
    assert sizes[0] == sizes[999] == first
    assert sizes[1000] == 2 * first
    assert max(sizes) <= 5 << 30
    assert sum(sizes) > 8 * 10**12  # about 8.5 TB in 10,000 parts
    assert _s3_io.part_size_for(10_000, 64 * MiB) == 5 << 30  # capped at S3's largest part


def test_an_object_needing_more_parts_than_allowed_fails_and_is_aborted(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_s3_io, "MAX_PARTS", 2)
    store = s3_store(s3_bucket, part_size="5MiB")
    with pytest.raises(StoreError, match="too large") as caught, store.writer("huge") as upload:
        upload.write(os.urandom(16 * MiB))
    assert caught.value.hint is not None and "part_size" in caught.value.hint
    assert pending_uploads(s3_bucket) == []
    assert list(store.list()) == []


def test_memory_stays_bounded_while_streaming_a_big_object(moto_process: MotoProcess) -> None:
    """64 MiB through 5 MiB parts holds a few parts at a time (the server is another process)."""
    moto_process.client().create_bucket(Bucket="memory-bound")
    config = StoreConfig(
        "s3://memory-bound/backups",
        {"endpoint_url": moto_process.endpoint_url, "part_size": "5MiB"},
    )
    store = open_store(config)
    assert list(store.list()) == []  # builds the client (and loads boto's models) before measuring

    def chunks() -> Iterator[bytes]:
        block = os.urandom(MiB)
        for i in range(64):
            yield i.to_bytes(8, "big") + block[8:]

    tracemalloc.start()
    try:
        with store.writer("big.archive") as upload:
            for chunk in chunks():
                upload.write(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [o.size for o in store.list()] == [64 * MiB]
    # Five 5 MiB parts: four in flight and one filling; the rest is boto's bookkeeping.
    assert peak < 30 * MiB, f"peak {peak / MiB:.1f} MiB"


# Options


def test_storage_class_applies_to_every_object(s3_bucket: S3Bucket) -> None:
    store = s3_store(s3_bucket, part_size="5MiB", storage_class="STANDARD_IA")
    for key, size in [("small", 10), ("big", 6 * MiB)]:
        with store.writer(key) as upload:
            upload.write(os.urandom(size))
        head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=f"backups/{key}")
        assert head["StorageClass"] == "STANDARD_IA"


def test_server_side_encryption_and_storage_class_apply_to_every_object(
    s3_server: S3Server, s3_bucket: S3Bucket
) -> None:
    if s3_server.kind == "seaweedfs":
        pytest.skip("SeaweedFS, as started here, answers InternalError to SSE-S3 (AES256)")
    store = s3_store(s3_bucket, part_size="5MiB", sse="AES256", storage_class="STANDARD_IA")
    for key, size in [("small", 10), ("big", 6 * MiB)]:
        with store.writer(key) as upload:
            upload.write(os.urandom(size))
        head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=f"backups/{key}")
        assert head["ServerSideEncryption"] == "AES256"
        assert head["StorageClass"] == "STANDARD_IA"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("8MiB", 8 * MiB),
        ("8mb", 8 * MiB),
        (" 16 M ", 16 * MiB),
        ("5242880", 5 * MiB),
        ("1GiB", 1 << 30),
    ],
)
def test_part_size_reads_like_the_aws_cli(text: str, size: int) -> None:
    assert parse_part_size(text) == size


@pytest.mark.parametrize("text", ["4MiB", "6GiB", "lots", "8 TiB", "-8MiB", "8.5MiB"])
def test_part_size_outside_s3_limits_or_unreadable_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="part_size"):
        parse_part_size(text)


def test_options_are_checked() -> None:
    assert S3Options.parse({"sse_kms_key_id": "alias/backups"}).sse == "aws:kms"
    with pytest.raises(ConfigError, match="AES256 or aws:kms"):
        S3Options.parse({"sse": "rot13"})
    with pytest.raises(ConfigError, match="aws:kms"):
        S3Options.parse({"sse": "AES256", "sse_kms_key_id": "alias/backups"})
    with pytest.raises(ConfigError, match="go together"):
        S3Options.parse({"aws_access_key_id": "AKIAEXAMPLE"})
    assert S3Options.parse({}).part_size == 8 * MiB


@pytest.mark.parametrize(
    ("url", "prefix", "shown"),
    [
        ("s3://bucket", "", "s3://bucket/"),
        ("s3://bucket/", "", "s3://bucket/"),
        ("s3://bucket/a/b/", "a/b/", "s3://bucket/a/b"),
    ],
)
def test_url_gives_bucket_and_prefix(url: str, prefix: str, shown: str) -> None:
    store = S3Store(StoreConfig(url))
    assert (store.bucket, store.prefix, store.display_url) == ("bucket", prefix, shown)


@pytest.mark.parametrize("url", ["s3:///prefix", "s3://bucket/p?versionId=1"])
def test_url_without_bucket_or_with_a_query_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="not an S3 store URL"):
        S3Store(StoreConfig(url))


def test_retries_default_to_five_tries_unless_the_environment_says(
    s3_bucket: S3Bucket, aws_env: Callable[..., None]
) -> None:
    def retries() -> Any:
        config: Any = s3_store(s3_bucket).client.meta.config
        return config.retries

    assert retries() == {"total_max_attempts": 5, "mode": "standard"}
    aws_env(AWS_MAX_ATTEMPTS=9, AWS_RETRY_MODE="adaptive")
    assert retries() == {"total_max_attempts": 9, "mode": "adaptive"}


def test_exclusive_commit_falls_back_to_a_check_where_conditional_writes_are_missing(
    s3_bucket: S3Bucket,
) -> None:
    """Some S3-compatible services answer If-None-Match with 501; the store checks instead."""
    store = s3_store(s3_bucket)
    refused: list[str] = []

    def no_conditional_writes(params: dict[str, Any], model: Any, **_: Any) -> Any:
        if "If-None-Match" not in params["headers"]:
            return None  # go on to the real server
        refused.append(model.name)
        return _FakeHttp(501), {
            "Error": {"Code": "NotImplemented", "Message": "not here"},
            "ResponseMetadata": {"HTTPStatusCode": 501},
        }

    store.client.meta.events.register("before-call.s3.PutObject", no_conditional_writes)
    with store.writer("k", exclusive=True) as upload:
        upload.write(b"first")
    with pytest.raises(StoreError, match="already exists"), store.writer("k", exclusive=True) as up:
        up.write(b"second")
    assert refused == ["PutObject", "PutObject"]
    with store.reader("k") as stream:
        assert stream.read() == b"first"


class _FakeHttp:
    """The HTTP half of a response a botocore before-call hook hands back."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}


def test_cleanup_only_touches_uploads_under_the_prefix(s3_bucket: S3Bucket) -> None:
    s3_bucket.client.create_multipart_upload(Bucket=s3_bucket.name, Key="elsewhere/x")
    s3_bucket.client.create_multipart_upload(Bucket=s3_bucket.name, Key="backups/x")
    assert s3_store(s3_bucket).cleanup(older_than=0) == 1
    assert [u["Key"] for u in pending_uploads(s3_bucket)] == ["elsewhere/x"]


# Dropped connections


def test_a_connection_cut_once_mid_part_is_retried(s3_bucket: S3Bucket) -> None:
    data = os.urandom(11 * MiB)
    host = s3_bucket.endpoint_url.split("//")[1]
    with CuttingProxy(host, after=2 * MiB, times=1) as proxy:
        store = s3_store(s3_bucket, proxy.endpoint_url, part_size="5MiB")
        with store.writer("k") as upload:
            upload.write(data)
        assert proxy.cuts == 1
    with s3_store(s3_bucket).reader("k") as stream:
        assert stream.read() == data


@pytest.mark.parametrize("size", [3 * MiB, 12 * MiB], ids=["single-put", "multipart"])
def test_a_link_that_keeps_dropping_fails_the_upload_cleanly(
    s3_bucket: S3Bucket, aws_env: Callable[..., None], size: int
) -> None:
    """Every request over 1 MiB is cut: the error says so; no object, no parts left behind."""
    aws_env(AWS_MAX_ATTEMPTS=2)
    host = s3_bucket.endpoint_url.split("//")[1]
    with CuttingProxy(host, after=MiB) as proxy:
        store = s3_store(s3_bucket, proxy.endpoint_url, part_size="5MiB")
        with (
            pytest.raises(StoreError, match=r"connection to .* lost") as caught,
            store.writer("k") as upload,
        ):
            upload.write(os.urandom(size))
        assert proxy.cuts >= 2  # the first try and the retry
    assert caught.value.hint is not None and "network" in caught.value.hint
    assert list(s3_store(s3_bucket).list()) == []
    assert pending_uploads(s3_bucket) == []


def test_a_read_whose_connection_drops_resumes_where_it_stopped(s3_bucket: S3Bucket) -> None:
    data = os.urandom(8 * MiB)
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="backups/k", Body=data)
    host = s3_bucket.endpoint_url.split("//")[1]
    with CuttingProxy(host, after=3 * MiB, direction="down", times=1) as proxy:
        with s3_store(s3_bucket, proxy.endpoint_url).reader("k") as stream:
            assert stream.read() == data
        assert proxy.cuts == 1


def test_a_read_fails_cleanly_when_the_link_goes_away(
    s3_bucket: S3Bucket, aws_env: Callable[..., None]
) -> None:
    aws_env(AWS_MAX_ATTEMPTS=1)
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="backups/k", Body=os.urandom(16 * MiB))
    host = s3_bucket.endpoint_url.split("//")[1]
    proxy = CuttingProxy(host, after=1 << 40)
    stream = s3_store(s3_bucket, proxy.endpoint_url).reader("k")
    with stream:
        assert len(stream.read(MiB)) == MiB
        proxy.close()  # every connection reset, and nothing listens any more
        with pytest.raises(StoreError, match="cannot reach endpoint") as caught:
            stream.read()
    assert caught.value.hint is not None and "network" in caught.value.hint


# Object Lock: what locked backups will stand on, checked on each server


def _put_locked(bucket: S3Bucket, key: str, until: datetime) -> str:
    answer = bucket.client.put_object(
        Bucket=bucket.name,
        Key=key,
        Body=b"a backup",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )
    return answer["VersionId"]


def test_a_version_under_compliance_retention_cannot_be_deleted(
    s3_locked_bucket: S3Bucket,
) -> None:
    bucket, client = s3_locked_bucket, s3_locked_bucket.client
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    version = _put_locked(bucket, "backups/locked", until)
    head = client.head_object(Bucket=bucket.name, Key="backups/locked")
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("COMPLIANCE", until)
    with pytest.raises(ClientError) as refused:
        client.delete_object(Bucket=bucket.name, Key="backups/locked", VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    body = client.get_object(Bucket=bucket.name, Key="backups/locked", VersionId=version)["Body"]
    assert body.read() == b"a backup"


def test_a_compliance_retention_can_be_read_and_not_shortened(
    s3_server: S3Server, s3_locked_bucket: S3Bucket
) -> None:
    if s3_server.kind == "moto":
        pytest.skip("moto fails GetObjectRetention and lets a COMPLIANCE retention be shortened")
    bucket, client = s3_locked_bucket, s3_locked_bucket.client
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    _put_locked(bucket, "backups/locked", until)
    retention = client.get_object_retention(Bucket=bucket.name, Key="backups/locked")
    assert retention["Retention"] == {"Mode": "COMPLIANCE", "RetainUntilDate": until}
    with pytest.raises(ClientError) as refused:
        client.put_object_retention(
            Bucket=bucket.name,
            Key="backups/locked",
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until - timedelta(hours=1)},
        )
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_a_version_without_retention_in_a_locked_bucket_can_be_deleted(
    s3_locked_bucket: S3Bucket,
) -> None:
    bucket, client = s3_locked_bucket, s3_locked_bucket.client
    version = client.put_object(Bucket=bucket.name, Key="backups/free", Body=b"x")["VersionId"]
    client.delete_object(Bucket=bucket.name, Key="backups/free", VersionId=version)
    assert client.list_object_versions(Bucket=bucket.name).get("Versions", []) == []


def test_retention_needs_a_bucket_created_with_object_lock(s3_bucket: S3Bucket) -> None:
    until = datetime.now(UTC) + timedelta(days=1)
    with pytest.raises(ClientError) as refused:
        _put_locked(s3_bucket, "backups/k", until)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert list(s3_store(s3_bucket).list()) == []


# Mistakes in the configuration or the environment


def test_a_missing_bucket_is_named(s3_server: S3Server) -> None:
    store = open_store(
        StoreConfig("s3://no-such-bucket-here/backups", {"endpoint_url": s3_server.endpoint_url})
    )
    attempts: list[Callable[[], object]] = [
        lambda: list(store.list()),
        lambda: store.reader("k"),
        lambda: store.delete("k"),
        store.cleanup,
    ]
    if s3_server.kind != "seaweedfs":  # SeaweedFS creates a missing bucket on the first PUT
        attempts += [lambda: _put(store, b"small"), lambda: _put(store, os.urandom(9 * MiB))]
    for attempt in attempts:
        with pytest.raises(StoreError, match="bucket 'no-such-bucket-here' does not exist") as e:
            attempt()
        assert not isinstance(e.value, ObjectNotFound)
        assert e.value.hint is not None and "create the bucket" in e.value.hint


def _put(store: Any, data: bytes) -> None:
    with store.writer("k") as upload:
        upload.write(data)


def test_an_endpoint_where_nothing_listens_is_named(
    s3_bucket: S3Bucket, aws_env: Callable[..., None]
) -> None:
    aws_env(AWS_MAX_ATTEMPTS=1)
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = s3_store(s3_bucket, endpoint)
    for attempt in (lambda: list(store.list()), lambda: _put(store, b"x")):
        with pytest.raises(StoreError, match=f"cannot reach endpoint {endpoint}") as caught:
            attempt()
        assert caught.value.hint is not None and "endpoint_url" in caught.value.hint


def test_no_credentials_anywhere_gives_the_ways_to_provide_them(
    s3_bucket: S3Bucket, aws_env: Callable[..., None]
) -> None:
    aws_env(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None, AWS_SESSION_TOKEN=None)
    with pytest.raises(StoreError, match="no complete AWS credentials") as caught:
        list(s3_store(s3_bucket).list())
    assert caught.value.hint is not None and "AWS_ACCESS_KEY_ID" in caught.value.hint


def test_an_unknown_profile_is_named(s3_bucket: S3Bucket, aws_env: Callable[..., None]) -> None:
    with pytest.raises(StoreError, match="AWS profile 'nonesuch' not found"):
        list(s3_store(s3_bucket, profile="nonesuch").list())


@pytest.fixture
def guarded(moto_process: MotoProcess) -> Iterator[tuple[MotoProcess, dict[str, str]]]:
    """A moto server checking credentials, a bucket, and a user who may only list it."""
    moto_process.client().create_bucket(Bucket="guarded")
    key_id, secret = moto_process.user_with_policy("lister", ["s3:ListBucket"])
    moto_process.require_credentials()
    yield moto_process, {"aws_access_key_id": key_id, "aws_secret_access_key": secret}


def guarded_store(server: MotoProcess, **options: Any) -> S3Store:
    store = open_store(
        StoreConfig("s3://guarded/backups", {"endpoint_url": server.endpoint_url, **options})
    )
    assert isinstance(store, S3Store)
    return store


def test_access_denied_names_the_store_and_the_permissions_to_check(
    guarded: tuple[MotoProcess, dict[str, str]],
) -> None:
    server, credentials = guarded
    store = guarded_store(server, **credentials)
    assert list(store.list()) == []  # listing is allowed
    with pytest.raises(StoreError, match=r"access denied to s3://guarded/backups") as caught:
        _put(store, b"data")
    assert caught.value.hint is not None and "s3:PutObject" in caught.value.hint


def test_credentials_from_a_named_profile_are_used(
    guarded: tuple[MotoProcess, dict[str, str]], aws_env: Callable[..., None], tmp_path: Path
) -> None:
    server, credentials = guarded
    profile_file = tmp_path / "credentials"
    profile_file.write_text(
        "[backup-reader]\n"
        f"aws_access_key_id = {credentials['aws_access_key_id']}\n"
        f"aws_secret_access_key = {credentials['aws_secret_access_key']}\n"
    )
    aws_env(AWS_SHARED_CREDENTIALS_FILE=profile_file, AWS_ACCESS_KEY_ID=None)
    assert list(guarded_store(server, profile="backup-reader").list()) == []


def test_an_unknown_access_key_id_is_explained(guarded: tuple[MotoProcess, dict[str, str]]) -> None:
    server, _ = guarded
    store = guarded_store(server, aws_access_key_id="AKIANOSUCHKEY", aws_secret_access_key="x" * 8)
    with pytest.raises(StoreError, match="does not know this access key id") as caught:
        list(store.list())
    assert caught.value.hint is not None and "aws_access_key_id" in caught.value.hint


def test_a_wrong_secret_key_is_explained_and_never_shown(
    guarded: tuple[MotoProcess, dict[str, str]],
) -> None:
    server, credentials = guarded
    store = guarded_store(
        server,
        aws_access_key_id=credentials["aws_access_key_id"],
        aws_secret_access_key=Secret(SECRET),
    )
    for attempt in (lambda: list(store.list()), lambda: _put(store, os.urandom(6 * MiB))):
        with pytest.raises(StoreError, match="secret key does not match") as caught:
            attempt()
        assert SECRET not in every_text(caught.value)
    assert SECRET not in repr(store) + repr(vars(store)) + store.display_url


def test_a_bad_session_token_is_explained_and_never_shown(
    guarded: tuple[MotoProcess, dict[str, str]],
) -> None:
    server, credentials = guarded
    token = SECRET + "-token"
    store = guarded_store(server, **credentials, aws_session_token=Secret(token))
    with pytest.raises(StoreError, match="session token has expired or is invalid") as caught:
        list(store.list())
    assert caught.value.hint is not None and "aws_session_token" in caught.value.hint
    assert token not in every_text(caught.value)


# The one translation of boto errors, fed the errors boto raises


def store_with_secret() -> S3Store:
    options: dict[str, str | Secret] = {
        "aws_access_key_id": "AKIAX",
        "aws_secret_access_key": Secret(SECRET),
    }
    return S3Store(StoreConfig("s3://b/p", options))


def _client_error(code: str, status: int, message: str = "", op: str = "PutObject") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message or f"server says {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, op)


MAPPED: list[tuple[BotoCoreError | ClientError, type[StoreError], str, str]] = [
    (_client_error("NoSuchBucket", 404), StoreError, "bucket 'b' does not exist", "create"),
    (_client_error("404", 404, op="HeadBucket"), StoreError, "does not exist", "create"),
    (_client_error("NoSuchKey", 404), ObjectNotFound, "no object 'k'", ""),
    (_client_error("AccessDenied", 403), StoreError, "access denied to s3://b/p", "policy"),
    (_client_error("InvalidAccessKeyId", 403), StoreError, "access key id", "AWS_ACCESS_KEY_ID"),
    (_client_error("SignatureDoesNotMatch", 403), StoreError, "secret key", "aws_secret"),
    (_client_error("ExpiredToken", 400), StoreError, "session token has expired", "sso"),
    (_client_error("RequestTimeTooSkewed", 403), StoreError, "RequestTimeTooSkewed", "clock"),
    (_client_error("InvalidObjectState", 403), StoreError, "archived", "restore the object"),
    (_client_error("PreconditionFailed", 412), AlreadyExists, "'k' already exists",
     "another name"),
    (_client_error("SlowDown", 503), StoreError, r"kept failing \(SlowDown\)", "AWS_MAX_ATTEMPTS"),
    (_client_error("PermanentRedirect", 301), StoreError, "PermanentRedirect", "region"),
    (_client_error("NoSuchUpload", 404), StoreError, "aborted meanwhile", "again"),
    (NoCredentialsError(), StoreError, "no complete AWS credentials", "AWS_PROFILE"),
    (ProfileNotFound(profile="p"), StoreError, "AWS profile", "~/.aws/config"),
    (
        EndpointConnectionError(endpoint_url="http://10.9.8.7:9000/b/p/k"),
        StoreError,
        "cannot reach endpoint http://10.9.8.7:9000",
        "endpoint_url",
    ),
    (ConnectTimeoutError(endpoint_url="https://s3.example"), StoreError, "cannot reach", "network"),
    (
        ConnectionClosedError(endpoint_url="https://s3.example"),
        StoreError,
        "connection to .* lost",
        "network",
    ),
]


@pytest.mark.parametrize(("error", "cls", "message", "hint"), MAPPED)
def test_boto_errors_become_store_errors_with_a_hint(
    error: BotoCoreError | ClientError, cls: type[StoreError], message: str, hint: str
) -> None:
    store = store_with_secret()
    mapped = error_for(store, error, "upload", "k")
    assert type(mapped) is cls
    assert isinstance(mapped, MonarchError)
    assert re.search(message, str(mapped)), str(mapped)
    assert hint in (mapped.hint or "")
    assert SECRET not in str(mapped) + repr(mapped) + (mapped.hint or "")


def test_a_server_message_quoting_the_secret_is_scrubbed() -> None:
    store = store_with_secret()
    mapped = error_for(store, _client_error("Weird", 400, f"bad key {SECRET}"), "upload", "k")
    assert "Weird" in str(mapped)
    assert SECRET not in str(mapped)

"""A backup store in an S3 bucket (or an S3-compatible service): ``s3://bucket/prefix``.

Options come from ``[backups]``: ``region``, ``endpoint_url``, ``profile``, ``sse`` (``AES256`` or
``aws:kms``), ``sse_kms_key_id``, ``storage_class``, ``aws_access_key_id``,
``aws_secret_access_key``, ``aws_session_token`` and ``part_size``. Credentials not given there
come from boto3's usual chain (environment, profile, SSO, instance role).

This module imports boto3, so only the registry imports it, and only for an ``s3://`` store.
Every boto error becomes a :class:`StoreError` in :func:`error_for`, and nowhere else.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

import boto3
import botocore.session
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

from monarch._version import __version__
from monarch.config import StoreConfig
from monarch.errors import ConfigError, StoreError
from monarch.secrets import Secret, redact_text
from monarch.sizes import parse_size
from monarch.stores._s3_io import S3Stream, S3Upload
from monarch.stores.base import (
    AlreadyExists,
    ObjectInfo,
    ObjectLocked,
    ObjectNotFound,
    Retention,
)
from monarch.stores.local import check_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1 << 20
MIN_PART_SIZE = 5 * MiB  # S3 refuses smaller parts (except the last)
MAX_PART_SIZE = 5 << 30
DEFAULT_PART_SIZE = 8 * MiB
DEFAULT_ATTEMPTS = 5  # total tries per request, unless AWS_MAX_ATTEMPTS or the profile says
_SSE_VALUES = ("AES256", "aws:kms")
_TOKEN_CODES = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired", "InvalidToken"}
)
_BUSY_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"})


@dataclass(frozen=True)
class S3Options:
    """The ``[backups]`` options an S3 store uses, checked."""

    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    storage_class: str | None = None
    access_key_id: str | None = None
    secret_access_key: Secret | None = None
    session_token: Secret | None = None
    part_size: int = DEFAULT_PART_SIZE

    @classmethod
    def parse(cls, options: Any) -> S3Options:
        """Build from ``StoreConfig.options``; bad values raise ConfigError."""

        def text(name: str) -> str | None:
            value = options.get(name)
            return value.reveal() if isinstance(value, Secret) else (value or None)

        def secret(name: str) -> Secret | None:
            value = options.get(name)
            return value if isinstance(value, Secret) or value is None else Secret(str(value))

        sse, kms_key = text("sse"), text("sse_kms_key_id")
        if kms_key and not sse:
            sse = "aws:kms"  # a KMS key only makes sense with KMS encryption
        if sse is not None and sse not in _SSE_VALUES:
            raise ConfigError(f"backups.sse must be AES256 or aws:kms, not {sse!r}")
        if kms_key and sse != "aws:kms":
            raise ConfigError("backups.sse_kms_key_id needs sse = 'aws:kms'")
        key_id, secret_key = text("aws_access_key_id"), secret("aws_secret_access_key")
        if bool(key_id) != bool(secret_key):
            raise ConfigError(
                "backups: aws_access_key_id and aws_secret_access_key go together",
                hint="give both, or neither to use the environment or a profile",
            )
        size = text("part_size")
        return cls(
            region=text("region"),
            endpoint_url=text("endpoint_url"),
            profile=text("profile"),
            sse=sse,
            sse_kms_key_id=kms_key,
            storage_class=text("storage_class"),
            access_key_id=key_id,
            secret_access_key=secret_key,
            session_token=secret("aws_session_token"),
            part_size=DEFAULT_PART_SIZE if size is None else parse_part_size(size),
        )


def parse_part_size(text: str) -> int:
    """Parse ``"8MiB"``, ``"8MB"``, ``"8M"`` (all binary, as the AWS CLI reads them) or bytes."""
    size = parse_size(text, "backups.part_size")
    if not MIN_PART_SIZE <= size <= MAX_PART_SIZE:
        raise ConfigError(
            f"backups.part_size must be between 5MiB and 5GiB (S3's limits), not {text!r}"
        )
    return size


class S3Store:
    """Objects under ``prefix/`` in one bucket."""

    in_flight = 4
    """Parts uploaded at once per upload; memory is about ``part_size * (in_flight + 1)``."""

    def __init__(self, config: StoreConfig) -> None:
        parts = urlsplit(config.url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(
                f"not an S3 store URL: {config.url!r}", hint='write backups = "s3://bucket/prefix"'
            )
        self.bucket = parts.netloc
        folder = parts.path.strip("/")
        self.prefix = folder + "/" if folder else ""
        self.display_url = f"s3://{self.bucket}/{folder}"
        self.options = S3Options.parse(config.options)
        self.part_size = self.options.part_size
        self._client: S3Client | None = None
        self._lock = threading.Lock()
        self._lock_checked = False

    @property
    def client(self) -> S3Client:
        """The boto3 client, built on first use (that is when credentials are looked up)."""
        with self._lock:
            if self._client is None:
                with self.errors("connect to"):
                    self._client = self._make_client()
            return self._client

    can_lock = True
    """S3 Object Lock: a bucket created with it enforces each object's retention. A bucket
    without it refuses a write that asks for one (a clear error, nothing written)."""

    def writer(
        self, key: str, *, exclusive: bool = False, retention: Retention | None = None
    ) -> S3Upload:
        """Start a streamed upload of ``key``; see :class:`monarch.stores._s3_io.S3Upload`.

        With ``retention``, the object is created under Object Lock (mode and date are sent
        with the PutObject or the CreateMultipartUpload): S3 then refuses to delete it, or
        to shorten its retention, before the date. A bucket without Object Lock is refused here,
        before anything is written.
        """
        check_key(key)
        if retention is not None:
            self._require_object_lock()
        return S3Upload(self, key, self.prefix + key, exclusive, retention)

    def _require_object_lock(self) -> None:
        """Refuse a retention on a bucket without Object Lock (asked once per store)."""
        if self._lock_checked:
            return
        with self.errors("read the Object Lock configuration of"):
            try:
                answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
                enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
            except ClientError as exc:
                code = _code(exc)
                if code in ("AccessDenied", "NotImplemented") or _status(exc) in (403, 501):
                    # Not allowed to ask (or no such call): the write itself will tell.
                    self._lock_checked = True
                    return
                if code != "ObjectLockConfigurationNotFoundError":
                    raise
                enabled = None
        if enabled != "Enabled":
            raise StoreError(
                f"bucket {self.bucket!r} ({self.display_url}) has no Object Lock, so it cannot "
                "keep a backup from being deleted; nothing was written",
                hint="retain_days needs a bucket created with Object Lock enabled; use one, or "
                     "remove retain_days (and lock_mode) from [backups]",
            )
        self._lock_checked = True

    def retention(self, key: str) -> Retention | None:
        """The Object Lock retention of ``key``'s current version, as S3 reports it."""
        full_key = self.prefix + check_key(key)
        with self.errors("read the retention of", key):
            head = self._head(full_key)
        if head is None:
            raise ObjectNotFound(f"no object {key!r} in {self.display_url}")
        return _retention_of(head)

    def reader(self, key: str) -> BinaryIO:
        """Stream ``key``; a dropped connection resumes where it stopped (same version only)."""
        full_key = self.prefix + check_key(key)
        with self.errors("read", key):
            response = self.client.get_object(Bucket=self.bucket, Key=full_key)
        return S3Stream.open(self, key, full_key, response)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield the committed objects whose keys start with ``prefix``, in key order."""
        with self.errors("list"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix) :]
                    if _is_key(key):  # skips "folder" markers and names not ours
                        modified = item["LastModified"].astimezone(UTC)
                        yield ObjectInfo(key, item["Size"], modified)

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key raises :class:`ObjectNotFound`."""
        full_key = self.prefix + check_key(key)
        with self.errors("delete", key):
            # S3 reports success for deleting a missing key; the contract wants to know.
            head = self._head(full_key)
            if head is None:
                raise ObjectNotFound(f"no object {key!r} in {self.display_url}")
            # In a bucket with Object Lock (so with versioning), a delete without a version
            # only hides a locked object behind a delete marker, which S3 allows: a backup
            # would vanish from every listing while its bytes stay locked. Refuse instead.
            retention = _retention_of(head)
            if retention is not None and retention.holds():
                raise ObjectLocked(
                    f"{key!r} in {self.display_url} is locked until "
                    f"{retention.until:%Y-%m-%d %H:%M:%S} UTC ({retention.mode} retention)",
                    retention=retention,
                    hint="it can be deleted once its retention ends",
                )
            self.client.delete_object(Bucket=self.bucket, Key=full_key)

    def cleanup(self, older_than: float = 3600.0) -> int:
        """Abort multipart uploads under the prefix started over ``older_than`` seconds ago."""
        limit = datetime.now(UTC) - timedelta(seconds=older_than)
        removed = 0
        with self.errors("clean up"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] > limit:
                        continue
                    try:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                    except ClientError as exc:
                        if _code(exc) != "NoSuchUpload":  # finished or aborted meanwhile
                            raise
                        continue
                    removed += 1
        return removed

    def exists(self, full_key: str) -> bool:
        """Whether an object is stored under ``full_key`` (the prefix included)."""
        return self._head(full_key) is not None

    def _head(self, full_key: str) -> dict[str, Any] | None:
        """HeadObject's answer for ``full_key``, or None when there is no such object."""
        try:
            head: dict[str, Any] = dict(self.client.head_object(Bucket=self.bucket, Key=full_key))
        except ClientError as exc:
            if _status(exc) != 404:
                raise
            # HEAD answers a bare 404 for a missing bucket too; ask the bucket to tell them apart.
            self.client.head_bucket(Bucket=self.bucket)
            return None
        return head

    def object_args(self) -> dict[str, Any]:
        """Encryption and storage-class arguments for PutObject and CreateMultipartUpload."""
        args = {
            "ServerSideEncryption": self.options.sse,
            "SSEKMSKeyId": self.options.sse_kms_key_id,
            "StorageClass": self.options.storage_class,
        }
        return {name: value for name, value in args.items() if value}

    @contextmanager
    def errors(self, doing: str, key: str | None = None) -> Iterator[None]:
        """Translate boto errors raised inside into StoreErrors (see :func:`error_for`)."""
        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise error_for(self, exc, doing, key) from exc

    def _make_client(self) -> S3Client:
        options = self.options
        core = botocore.session.Session(profile=options.profile)
        session = boto3.session.Session(
            botocore_session=core,
            region_name=options.region,
            aws_access_key_id=options.access_key_id,
            aws_secret_access_key=_reveal(options.secret_access_key),
            aws_session_token=_reveal(options.session_token),
        )
        # Honour AWS_MAX_ATTEMPTS / AWS_RETRY_MODE (or the profile); otherwise retry more than
        # boto's default of 3 tries, since a backup is long and one failed part loses it all.
        attempts = core.get_config_variable("max_attempts") or DEFAULT_ATTEMPTS
        mode = core.get_config_variable("retry_mode")
        config = BotoConfig(
            retries={
                "total_max_attempts": attempts,
                "mode": mode if mode in ("standard", "adaptive") else "standard",
            },
            connect_timeout=10,
            read_timeout=120,
            tcp_keepalive=True,
            max_pool_connections=self.in_flight + 4,
            user_agent_extra=f"monarch/{__version__}",
        )
        return session.client("s3", endpoint_url=options.endpoint_url, config=config)


def error_for(
    store: S3Store, exc: BotoCoreError | ClientError, doing: str, key: str | None = None
) -> StoreError:
    """The one translation of boto errors into monarch errors for the S3 store.

    ``doing`` is a verb (``"read"``, ``"list"``) and ``key`` the object concerned, if any. The
    message names the store and what to check; it is scrubbed of the configured secrets.
    """
    where = store.display_url
    what = f"{key!r} in {where}" if key else where
    endpoint = store.options.endpoint_url or "S3"
    message, hint, cls = f"cannot {doing} {what}: {exc}", None, StoreError
    credentials_hint = (
        "check aws_access_key_id/aws_secret_access_key in [backups], AWS_ACCESS_KEY_ID/"
        "AWS_SECRET_ACCESS_KEY, or the credentials of the profile in use"
    )
    if isinstance(exc, ClientError):
        code, status = _code(exc), _status(exc)
        server_says = exc.response.get("Error", {}).get("Message") or code
        message = f"cannot {doing} {what}: {code}: {server_says}"
        if code == "NoSuchBucket" or (status == 404 and exc.operation_name == "HeadBucket"):
            message = f"cannot {doing} {what}: bucket {store.bucket!r} does not exist"
            hint = "create the bucket, or fix the bucket name (and region or endpoint_url)"
        elif code in ("NoSuchKey", "404"):
            message, cls = f"no object {key!r} in {where}", ObjectNotFound
        elif code == "InvalidAccessKeyId":
            message = f"cannot {doing} {what}: the service does not know this access key id"
            hint = credentials_hint
        elif code == "SignatureDoesNotMatch":
            message = f"cannot {doing} {what}: the secret key does not match the access key id"
            hint = credentials_hint
        elif code in _TOKEN_CODES:
            message = f"cannot {doing} {what}: the session token has expired or is invalid"
            hint = "get fresh credentials (e.g. `aws sso login`, or a new aws_session_token)"
        elif code == "RequestTimeTooSkewed":  # a 403, so before the generic one
            hint = "this machine's clock is off; synchronise it (NTP)"
        elif code == "InvalidObjectState":  # also a 403
            message = f"cannot {doing} {what}: it is archived (GLACIER or DEEP_ARCHIVE)"
            hint = "restore the object in S3 first; keep backups in a class that reads directly"
        elif code in ("AccessDenied", "AllAccessDisabled", "403") or status == 403:
            message = f"access denied to {where} (trying to {doing} {key or 'objects'})"
            hint = (
                "check which credentials monarch uses (profile, AWS_PROFILE, AWS_ACCESS_KEY_ID) "
                "and that their policy allows s3:ListBucket, s3:GetObject, s3:PutObject, "
                "s3:DeleteObject and s3:AbortMultipartUpload on this bucket and prefix"
            )
            if store.options.sse == "aws:kms":
                hint += ", and kms:GenerateDataKey and kms:Decrypt on the KMS key"
        elif code == "PreconditionFailed" or status == 412:
            message, cls = f"{key!r} already exists in {where}", AlreadyExists
            hint = "choose another name, or delete the existing object first"
        elif code == "ConditionalRequestConflict":
            message, cls = f"another upload of {key!r} to {where} finished first", AlreadyExists
        elif code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocation"):
            hint = f"set region in [backups] to the region of bucket {store.bucket!r}"
        elif code == "InvalidStorageClass":
            hint = "fix storage_class in [backups] (e.g. STANDARD, STANDARD_IA, GLACIER_IR)"
        elif code.startswith("KMS.") or "KMS" in code:
            hint = "check sse_kms_key_id and that these credentials may use that KMS key"
        elif code in ("InvalidRequest", "InvalidArgument") and "lock" in server_says.lower():
            message = (f"cannot {doing} {what}: bucket {store.bucket!r} does not take a "
                       f"retention ({server_says})")
            hint = ("retain_days needs a bucket created with Object Lock enabled; create one, "
                    "or remove retain_days (and lock_mode) from [backups]")
        elif code == "NoSuchUpload":
            message = f"cannot {doing} {what}: the multipart upload was aborted meanwhile"
            hint = "a cleanup or lifecycle rule removed it; run the backup again"
        elif code in _BUSY_CODES or status >= 500:
            message = f"cannot {doing} {what}: {endpoint} kept failing ({code}) after retries"
            hint = "try again later; AWS_MAX_ATTEMPTS sets how many times each request is tried"
    elif isinstance(exc, NoCredentialsError | PartialCredentialsError):
        message = f"cannot {doing} {where}: no complete AWS credentials found"
        hint = (
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, choose a profile (profile in "
            "[backups] or AWS_PROFILE), or set aws_access_key_id/aws_secret_access_key"
        )
    elif isinstance(exc, ProfileNotFound):
        message = f"AWS profile {store.options.profile!r} not found (for {where})"
        hint = "fix profile in [backups] or AWS_PROFILE, or add it to ~/.aws/config"
    elif isinstance(exc, CredentialRetrievalError):
        message = f"cannot {doing} {where}: could not get AWS credentials"
        hint = "check the credential source of the profile in use (SSO login, role, process)"
    elif isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        target = _host_of(exc.kwargs.get("endpoint_url")) or endpoint
        message = f"cannot reach endpoint {target} (trying to {doing} {what})"
        hint = "check endpoint_url and region in [backups], and the network or proxy settings"
    elif isinstance(exc, FlexibleChecksumError):
        message = f"cannot {doing} {what}: the data failed its checksum in transit"
        hint = "try again; if it persists, the object in the bucket may be damaged"
    elif isinstance(exc, HTTPClientError | IncompleteReadError):
        message = f"connection to {endpoint} lost, even after retries (trying to {doing} {what})"
        hint = "check the network; AWS_MAX_ATTEMPTS sets how many times each request is tried"
    elif isinstance(exc, NoRegionError):
        hint = "set region in [backups] or AWS_DEFAULT_REGION"
    secrets = (store.options.secret_access_key, store.options.session_token)
    scrubbed = [secret.reveal() for secret in secrets if secret]
    return cls(redact_text(message, scrubbed), hint=redact_text(hint, scrubbed) if hint else None)


def _retention_of(head: dict[str, Any]) -> Retention | None:
    """The retention a HeadObject answer reports, if any."""
    mode, until = head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")
    if not mode or not isinstance(until, datetime):
        return None
    return Retention(str(mode).lower(), until.astimezone(UTC))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _host_of(url: object) -> str | None:
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else None


def _reveal(secret: Secret | None) -> str | None:
    return secret.reveal() if secret else None


def _is_key(key: str) -> bool:
    try:
        check_key(key)
    except StoreError:
        return False
    return True

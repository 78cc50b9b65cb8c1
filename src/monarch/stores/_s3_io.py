"""Streaming in and out of S3 for :class:`monarch.stores.s3.S3Store`.

:class:`S3Upload` turns a stream of writes into a multipart upload with a few parts in flight;
:class:`S3Stream` reads an object and resumes after a dropped connection. Errors are translated by
the store (``store.errors``), the one place that knows boto's exceptions.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar, cast

from botocore.exceptions import ClientError, HTTPClientError, IncompleteReadError

from monarch.errors import StoreError
from monarch.stores.base import Retention, UploadBase

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, GetObjectOutputTypeDef

MAX_PARTS = 10_000
PARTS_PER_STEP = 1_000
MAX_PART_SIZE = 5 << 30
READ_RESUMES = 5  # reconnections in a row without a byte read before a read fails
T = TypeVar("T")


class StreamStore(Protocol):
    """What the streams need of their store (:class:`monarch.stores.s3.S3Store` is the one);
    written here so that this module depends on the store's shape, not on its module."""

    bucket: str
    display_url: str
    part_size: int
    in_flight: int

    @property
    def client(self) -> S3Client: ...

    def exists(self, full_key: str) -> bool: ...

    def object_args(self) -> dict[str, Any]: ...

    def errors(self, doing: str, key: str | None = None) -> AbstractContextManager[None]: ...


def part_size_for(number: int, first: int) -> int:
    """Size of part ``number`` (1-based): ``first``, doubled every 1,000 parts, at most 5 GiB.

    The total size is unknown while streaming, so the parts grow: with 8 MiB first parts the
    10,000 parts S3 allows hold about 8.5 TB, while small backups still use small parts.
    """
    return min(first << ((number - 1) // PARTS_PER_STEP), MAX_PART_SIZE)


class S3Upload(UploadBase):
    """A streamed upload: one PutObject if it stays under a part, else a multipart upload.

    At most ``store.in_flight`` parts are being sent while the next one fills, so memory stays
    near ``part_size * (in_flight + 1)`` whatever the object's size. On any failure (and on
    ``abort()``) the multipart upload is aborted, so no parts are left behind to pay for.
    """

    def __init__(
        self,
        store: StreamStore,
        key: str,
        full_key: str,
        exclusive: bool,
        retention: Retention | None = None,
    ) -> None:
        self._store = store
        self._key = key
        self._full_key = full_key
        self._exclusive = exclusive
        self._lock_args: dict[str, Any] = (
            {}
            if retention is None
            else {
                # Given at creation (PutObject, or CreateMultipartUpload, whose object
                # CompleteMultipartUpload then makes visible under that retention).
                "ObjectLockMode": retention.mode.upper(),
                "ObjectLockRetainUntilDate": retention.until,
            }
        )
        self._buffer = bytearray()
        self._sent = 0  # parts handed to the pool
        self._parts: list[CompletedPartTypeDef] = []
        self._in_flight: set[Future[CompletedPartTypeDef]] = set()
        self._upload_id: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._state = "open"

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        """Append ``data``; a full part starts uploading (this waits if too many are in flight)."""
        self._check_open()
        view = memoryview(data).cast("B")
        taken = view.nbytes
        with self._aborting("upload"):
            while view:
                room = part_size_for(self._sent + 1, self._store.part_size) - len(self._buffer)
                self._buffer += view[:room]
                view = view[room:]
                if len(self._buffer) >= part_size_for(self._sent + 1, self._store.part_size):
                    self._send_part()
        return taken

    def commit(self) -> None:
        """Finish the upload so the object appears whole under its key. Idempotent."""
        if self._state == "committed":
            return
        self._check_open()
        store = self._store
        with self._aborting("upload"):
            if self._upload_id is None:
                body, self._buffer = self._buffer, bytearray()
                self._if_absent(
                    store.client.put_object,
                    Bucket=store.bucket,
                    Key=self._full_key,
                    Body=_as_body(body),
                    **store.object_args(),
                    **self._lock_args,
                )
            else:
                if self._buffer:
                    self._send_part()
                self._collect(self._in_flight)
                parts = sorted(self._parts, key=lambda part: part["PartNumber"])
                self._if_absent(
                    store.client.complete_multipart_upload,
                    Bucket=store.bucket,
                    Key=self._full_key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts},
                )
        self._state = "committed"
        self._stop_pool()

    def abort(self) -> None:
        """Discard everything: wait for parts in flight, then abort the multipart upload."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._buffer = bytearray()
        self._stop_pool()
        if self._upload_id is not None:
            store = self._store
            with store.errors("abort the upload of", self._key):
                try:
                    store.client.abort_multipart_upload(
                        Bucket=store.bucket, Key=self._full_key, UploadId=self._upload_id
                    )
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                        raise  # NoSuchUpload: cleanup() got there first, which is fine

    def _send_part(self) -> None:
        if self._sent >= MAX_PARTS:
            raise StoreError(
                f"{self._key!r} is too large for S3 ({MAX_PARTS} parts)",
                hint="raise part_size in [backups]",
            )
        body, self._buffer = self._buffer, bytearray()  # handed over whole, never touched again
        if self._upload_id is None:
            self._start()
        while len(self._in_flight) >= self._store.in_flight:
            done, _ = wait(self._in_flight, return_when=FIRST_COMPLETED)
            self._collect(done)
        self._sent += 1
        assert self._pool is not None
        self._in_flight.add(self._pool.submit(self._upload_part, self._sent, body))

    def _start(self) -> None:
        store = self._store
        response = store.client.create_multipart_upload(
            Bucket=store.bucket,
            Key=self._full_key,
            **self._checksum(),
            **store.object_args(),
            **self._lock_args,
        )
        self._upload_id = response["UploadId"]
        self._pool = ThreadPoolExecutor(store.in_flight, thread_name_prefix="monarch-s3-part")

    def _upload_part(self, number: int, body: bytearray) -> CompletedPartTypeDef:
        store = self._store
        assert self._upload_id is not None
        response = store.client.upload_part(
            Bucket=store.bucket,
            Key=self._full_key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=_as_body(body),
            **self._checksum(),
        )
        part: CompletedPartTypeDef = {"PartNumber": number, "ETag": response["ETag"]}
        if "ChecksumCRC32" in response:
            part["ChecksumCRC32"] = response["ChecksumCRC32"]
        return part

    def _checksum(self) -> dict[str, Any]:
        # Like boto3's own transfers: CRC32 per part whenever the client computes checksums
        # (the default; AWS_REQUEST_CHECKSUM_CALCULATION=when_required turns it off).
        config = self._store.client.meta.config
        calculation = getattr(config, "request_checksum_calculation", "when_supported")
        return {"ChecksumAlgorithm": "CRC32"} if calculation == "when_supported" else {}

    def _collect(self, done: set[Future[CompletedPartTypeDef]]) -> None:
        for future in list(done):
            self._in_flight.discard(future)
            self._parts.append(future.result())

    def _if_absent(self, call: Callable[..., T], **kwargs: Any) -> T:
        """Run a PutObject or CompleteMultipartUpload, refusing to replace when exclusive."""
        if not self._exclusive:
            return call(**kwargs)
        try:
            return call(IfNoneMatch="*", **kwargs)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if exc.response.get("Error", {}).get("Code") != "NotImplemented" and status != 501:
                raise
        # This service does not support conditional writes: look, then write. Another writer
        # could slip in between the two; only services with If-None-Match close that gap.
        if self._store.exists(self._full_key):
            raise self._already_exists(self._store.display_url)
        return call(**kwargs)

    @contextmanager
    def _aborting(self, doing: str) -> Iterator[None]:
        try:
            with self._store.errors(doing, self._key):
                yield
        except BaseException:
            self._abort_quietly()
            raise

    def _stop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._in_flight.clear()


def _as_body(buffer: bytearray) -> bytes:
    """Pass a bytearray as a request body, which botocore accepts though its stubs say bytes.

    A bytearray is sent as it is; a bytes body would be copied once more (joined to the headers)
    and a file-like one would cost an Expect: 100-continue round trip per part.
    """
    return cast(bytes, buffer)


class S3Stream(io.RawIOBase):
    """The body of a GetObject; if the connection drops, reads on from the same byte."""

    def __init__(
        self, store: StreamStore, key: str, full_key: str, response: GetObjectOutputTypeDef
    ) -> None:
        self._store = store
        self._key = key
        self._full_key = full_key
        self._body = response["Body"]
        self._etag = response.get("ETag")
        self._size = response.get("ContentLength", 0)
        self._position = 0
        self._resumes = READ_RESUMES

    @classmethod
    def open(
        cls, store: StreamStore, key: str, full_key: str, response: GetObjectOutputTypeDef
    ) -> BinaryIO:
        """Wrap a GetObject response as a buffered binary stream."""
        return io.BufferedReader(cls(store, key, full_key, response), buffer_size=1 << 20)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(view.nbytes)
        view[: len(data)] = data
        return len(data)

    def read(self, size: int = -1, /) -> bytes:
        while True:
            try:
                with self._store.errors("read", self._key):
                    try:
                        data = self._body.read(None if size < 0 else size)
                    except (HTTPClientError, IncompleteReadError):
                        if self._resumes <= 0 or self._position >= self._size:
                            raise
                        self._resumes -= 1
                        self._reopen()
                        continue
            except StoreError:
                self.close()
                raise
            if data:
                # Only drops in a row count: a long restore over a flaky link keeps going.
                self._resumes = READ_RESUMES
            self._position += len(data)
            return data

    def _reopen(self) -> None:
        self._body.close()
        store = self._store
        try:
            response = store.client.get_object(
                Bucket=store.bucket,
                Key=self._full_key,
                Range=f"bytes={self._position}-",
                **self._if_match(),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "PreconditionFailed":
                raise
            raise StoreError(
                f"{self._key!r} in {store.display_url} was replaced while it was being read",
                hint="read it again",
            ) from exc
        self._body = response["Body"]

    def _if_match(self) -> dict[str, Any]:
        # A resumed read must see the same object, not one written since.
        return {"IfMatch": self._etag} if self._etag else {}

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()

"""An S3 endpoint: an external one, or moto's S3 server running in this process."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.servers.process import StopsOnExit

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ENV_ENDPOINT = "MONARCH_TEST_S3_ENDPOINT"
# moto accepts any credentials; an external endpoint gets the real ones from the environment.
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
            self.client.delete_bucket(Bucket=self.name)
        except (BotoCoreError, ClientError):
            pass


@dataclass
class S3Server(StopsOnExit):
    """A running S3 endpoint and the credentials and region to use with it."""

    endpoint_url: str
    kind: str
    region: str
    access_key_id: str
    secret_access_key: str
    _moto: Any = field(default=None, repr=False)

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

    def create_bucket(self, client: S3Client | None = None) -> S3Bucket:
        """Create a bucket with a fresh name; its ``url`` points at a ``backups`` prefix."""
        client = client or self.client()
        name = f"t-{uuid.uuid4().hex[:16]}"
        if self.region == "us-east-1":
            client.create_bucket(Bucket=name)
        else:
            client.create_bucket(
                Bucket=name,
                CreateBucketConfiguration={"LocationConstraint": self.region},  # type: ignore[typeddict-item]
            )
        return S3Bucket(name, f"s3://{name}/backups", self.endpoint_url, client)

    def stop(self) -> None:
        if self._moto is not None:
            self._moto.stop()
            self._moto = None


def planned_kind() -> str:
    return "external" if os.environ.get(ENV_ENDPOINT) else "moto"


def start_s3() -> S3Server:
    """Use ``$MONARCH_TEST_S3_ENDPOINT``, else start moto's server on a free loopback port."""
    moto = None
    if planned_kind() == "external":
        endpoint = os.environ[ENV_ENDPOINT]
    else:
        from moto.server import ThreadedMotoServer

        # Port 0: the kernel picks a free port while binding, so no race with other workers.
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"

    def setting(name: str) -> str:
        return os.environ.get(name) or DUMMY_CREDENTIALS[name]

    return S3Server(
        endpoint_url=endpoint,
        kind=planned_kind(),
        region=setting("AWS_DEFAULT_REGION"),
        access_key_id=setting("AWS_ACCESS_KEY_ID"),
        secret_access_key=setting("AWS_SECRET_ACCESS_KEY"),
        _moto=moto,
    )

"""moto's S3 server in a child process, for tests that need one of their own.

The session's moto server runs inside the test process. Two kinds of test cannot share it: one that
switches on moto's credential checks (a process-wide setting), and one that measures this
process's memory (moto keeps uploaded bytes in the serving process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from types import TracebackType
from typing import Any

import boto3

_SERVE = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print("%s:%d" % server.get_host_and_port(), flush=True)
sys.stdin.read()  # until the parent closes our stdin
server.stop()
"""

REGION = "us-east-1"
ADMIN = {"aws_access_key_id": "AKIAMONARCHADMIN", "aws_secret_access_key": "admin-secret"}


class MotoProcess:
    """A moto server in a child process; stops when closed (or when this process dies)."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SERVE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._process.stdout is not None
        address = self._process.stdout.readline().strip()
        if not address:
            self.close()
            raise RuntimeError("moto's server did not start in the child process")
        self.endpoint_url = f"http://{address}"

    def client(self, service: str = "s3", **credentials: str) -> Any:
        """A boto3 client for this server (admin credentials unless others are given)."""
        make: Any = boto3.client  # the service name is a plain str here
        return make(
            service, endpoint_url=self.endpoint_url, region_name=REGION, **(credentials or ADMIN)
        )

    def user_with_policy(self, name: str, actions: list[str]) -> tuple[str, str]:
        """Create an IAM user allowed only ``actions``; return its (key id, secret key)."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
        iam.put_user_policy(UserName=name, PolicyName="only", PolicyDocument=json.dumps(policy))
        return key["AccessKeyId"], key["SecretAccessKey"]

    def require_credentials(self) -> None:
        """From now on, check every request's signature and IAM permissions, as AWS does."""
        request = urllib.request.Request(
            self.endpoint_url + "/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def close(self) -> None:
        """Stop the server and wait for the child to exit."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> MotoProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

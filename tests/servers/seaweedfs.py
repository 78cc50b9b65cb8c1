"""SeaweedFS: a real S3-compatible server (master, volume, filer and S3 gateway in one process)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.servers.cache import cache_dir, locked
from tests.servers.golang import build, module_copy
from tests.servers.ports import free_port_pairs
from tests.servers.process import ServerProcess

MODULE = "github.com/seaweedfs/seaweedfs"
# The module has no semver releases on the proxy; this pseudo-version pins one commit.
VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
# Each port P it listens on also opens P + GRPC_OFFSET for gRPC.
GRPC_OFFSET = 10000


def seaweedfs_binary() -> Path:
    """The cached ``weed`` binary, built from source the first time (minutes)."""
    binary = cache_dir() / f"seaweedfs-{VERSION[-12:]}" / "weed"
    if not binary.exists():
        with locked("seaweedfs"):
            if not binary.exists():
                with module_copy(MODULE, VERSION) as source:
                    build(source, "./weed", binary)
    return binary


def start_seaweedfs(
    workdir: Path, access_key_id: str, secret_access_key: str
) -> tuple[ServerProcess, int]:
    """Start ``weed server`` with its S3 gateway, its data and log under ``workdir``.

    The gateway knows one identity, these credentials, allowed everything. Returns the process
    and the S3 port; the caller waits until the gateway answers.
    """
    binary = seaweedfs_binary()
    data = workdir / "data"
    data.mkdir()
    identities = workdir / "identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "monarch-tests",
                        "credentials": [
                            {"accessKey": access_key_id, "secretKey": secret_access_key}
                        ],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    # Read from the working directory. Every bucket is a collection with volumes of its own,
    # grown 7 at a time by default: with the default 8 volumes per server the second bucket in
    # use would find no room. One volume per bucket, small ones, and room for many.
    (workdir / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\n")
    master, volume, filer, s3 = free_port_pairs(4, GRPC_OFFSET)
    argv = [
        str(binary),
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-volume.port={volume}",
        "-volume.max=200",
        "-master.volumeSizeLimitMB=256",
        f"-filer.port={filer}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.config={identities}",
        # Its Iceberg and Lance catalogs would take fixed ports (8181, 9101): clashes between
        # workers, and ports other software on the machine may own.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    # Not served as started here: SSE-S3 (``ServerSideEncryption: AES256``), refused with
    # InternalError.
    return ServerProcess("seaweedfs", argv, workdir), s3

"""Command line: ``python -m tests.servers prepare`` or ``python -m tests.servers run KIND``.

``prepare`` builds and caches every binary the tests need; ``run`` starts one server, prints
its address on the first line of stdout and stops it on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from typing import NoReturn

from tests.servers import mongo, postgres, s3
from tests.servers.ferretdb import ferretdb_binary
from tests.servers.mongotools import mongo_tools
from tests.servers.process import ServerStartError
from tests.servers.seaweedfs import seaweedfs_binary
from tests.servers.wire import wire_binary


def prepare() -> None:
    started = time.monotonic()
    print(f"ferretdb:     {ferretdb_binary()}")
    tools = mongo_tools()
    print(f"mongodump:    {tools.mongodump}")
    print(f"mongorestore: {tools.mongorestore}")
    print(f"sample dumps: {tools.testdata}")
    print(f"postgresql:   {postgres.find_bin_dir()}")
    print(f"seaweedfs:    {seaweedfs_binary()}")
    print(f"wire:         {wire_binary()}")
    print(f"ready in {time.monotonic() - started:.1f} s")


def run(kind: str) -> None:
    def stop(signum: int, frame: object) -> NoReturn:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    server: mongo.MongoServer | postgres.PostgresServer | s3.S3Server
    if kind == "mongo":
        server = mongo.start_mongo()
        print(server.uri, flush=True)
        print(f"({server.kind} {server.version})", file=sys.stderr)
    elif kind == "postgres":
        server = postgres.start_postgres()
        print(server.uri, flush=True)
        print(f"(tools in {server.bin_dir})", file=sys.stderr)
    else:
        server = s3.start_s3(None if kind == "s3" else kind)
        print(server.endpoint_url, flush=True)
        # The servers started here know only the test credentials; an external one's stay unsaid.
        login = "" if server.kind == "external" else f", access key {server.access_key_id}"
        print(f"({server.kind}, region {server.region}{login})", file=sys.stderr)
    with server, contextlib.suppress(KeyboardInterrupt):
        signal.pause()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.servers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare", help="build and cache the servers' binaries")
    runner = commands.add_parser("run", help="start one server until interrupted")
    runner.add_argument("kind", choices=["mongo", "postgres", "s3", *s3.LOCAL_KINDS])
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            prepare()
        else:
            run(args.kind)
    except ServerStartError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

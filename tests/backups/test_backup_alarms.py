"""Alarms when backups stop: check_backups, Prometheus textfile metrics, webhook events.

Real backups of a small SQLite database into a local folder; webhooks are real HTTP servers on
loopback (one that records events, one that is down, one too slow to answer in time).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import monarch
from monarch.backups.health import format_age, read_verify
from monarch.backups.manifest import ArchiveEntry, Manifest
from monarch.backups.naming import make_name
from monarch.backups.notify import NotifyTarget
from monarch.config import Config, config_from_dict, load_config
from monarch.errors import ConfigError
from monarch.secrets import Secret
from monarch.stores import open_store
from monarch.stores.memory import MemoryStore
from tests.backups.conftest import CliResult, run_cli

PASSWORD = "pw-SECRET-7f3a9c"
TOKEN = "hook-TOKEN-51d2e8"


def write_project(root: Path, **backups: object) -> Path:
    """A project: ``lite`` (a small SQLite database), ``broken`` (a SQLite file in a folder
    that does not exist), ``pg`` (a PostgreSQL URL with a password, where nothing listens)."""
    db = sqlite3.connect(root / "lite.db")
    with db:
        db.execute("create table t (id integer primary key, name text)")
        db.executemany("insert into t (name) values (?)", [(f"row {i}",) for i in range(200)])
    db.close()
    options = {"url": f"file://{root / 'backups'}", **backups}
    lines = ["[backups]"] + [f"{k} = {json.dumps(v)}" for k, v in options.items()]
    lines += ["", "[environments.lite]", 'url = "sqlite:///lite.db"',
              "", "[environments.broken]", 'url = "sqlite:///no/such/folder/x.db"',
              "", "[environments.pg]",
              f'url = "postgresql://app:{PASSWORD}@127.0.0.1:9/app"', ""]
    path = root / "monarch.toml"
    path.write_text("\n".join(lines))
    return path


def cli(config_path: Path, *args: str) -> CliResult:
    """Run ``monarch`` in this process, through its real entry point."""
    return run_cli(config_path, *args)


# check_backups over synthetic backups -------------------------------------------------------



@pytest.fixture
def config(tmp_path: Path) -> Iterator[Config]:
    name = f"alarms-{uuid.uuid4().hex[:8]}"
    url = "mongodb://127.0.0.1:1/app"
    yield config_from_dict(
        {"backups": f"memory://{name}",
         "environments": {"production": {"url": url}, "staging": {"url": url}}},
        None, {}, root=tmp_path,
    )
    MemoryStore.reset(name)


def fake(config: Config, env: str, finished: datetime, size: int = 1000) -> str:
    """A synthetic complete backup of ``size`` bytes that finished at ``finished``."""
    created = finished - timedelta(seconds=30)
    name = make_name(env, created)
    store = open_store(config.backups)
    key = f"{name}.archive.gz"
    with store.writer(key) as upload:
        upload.write(b"x" * size)
    manifest = Manifest(
        name=name, monarch_version="test", environment=env, engine="mongo", database="app",
        source_host="db", server_version="7.0", started_at=created, finished_at=finished,
        archive=ArchiveEntry(key, "gzip", size, "0" * 64, size), collections=(),
    )
    with store.writer(f"{name}.manifest.json") as upload:
        upload.write(manifest.to_json().encode())
    return name


def nightly(config: Config, env: str, sizes: list[int], last: timedelta) -> list[str]:
    """One backup a day, the newest ``last`` ago; ``sizes`` oldest first."""
    count = len(sizes)
    now = datetime.now(UTC).replace(microsecond=0)  # per test: a loaded machine takes minutes
    return [fake(config, env, now - last - timedelta(days=count - 1 - i), size)
            for i, size in enumerate(sizes)]


def test_healthy_backups_pass(config: Config) -> None:
    nightly(config, "production", [1000, 1100, 1050, 1200, 1150, 1180], timedelta(hours=3))
    report = monarch.check_backups(config, "production", max_age="26h")
    assert report.ok, report
    (verdict,) = report.environments
    assert verdict.problems == ()
    assert verdict.median_size == 1100  # of the 5 before the newest


def test_a_backup_older_than_max_age_fails_with_its_age(config: Config) -> None:
    names = nightly(config, "production", [1000, 1000], timedelta(hours=30))
    report = monarch.check_backups(config, max_age="26h")
    assert not report.ok
    (verdict,) = report.failing
    assert verdict.reason() == (f"newest backup {names[-1]} finished 30h ago "
                                f"(more than 26h)")


def test_a_backup_much_smaller_than_its_predecessors_fails(config: Config) -> None:
    names = nightly(config, "production", [10_000, 11_000, 9_000, 10_500, 9_500, 4_000],
                    timedelta(hours=1))
    (verdict,) = monarch.check_backups(config, "production").failing
    assert verdict.reason() == (f"newest backup {names[-1]} is 4.0 kB, less than 50% of the "
                                "median of the 5 before it (10.0 kB)")
    # Half the median exactly is still fine, and --min-ratio 0 turns the rule off.
    assert monarch.check_backups(config, "production", min_ratio=0.4).ok
    assert monarch.check_backups(config, "production", min_ratio=0).ok


def test_min_size_is_an_absolute_floor(config: Config) -> None:
    nightly(config, "production", [900], timedelta(hours=1))
    (verdict,) = monarch.check_backups(config, "production", min_size="1KiB").failing
    assert "(less than --min-size 1.0 kB)" in verdict.reason()
    assert monarch.check_backups(config, "production", min_size=900).ok


def test_an_environment_without_backups_fails_and_others_are_judged_apart(
    config: Config,
) -> None:
    nightly(config, "production", [1000], timedelta(hours=1))
    report = monarch.check_backups(config, ["production", "staging"])
    assert [(e.environment, e.ok) for e in report.environments] == \
        [("production", True), ("staging", False)]
    assert report.failing[0].reason().startswith("no backup in memory://")
    with pytest.raises(ConfigError, match="unknown environment 'prodution'"):
        monarch.check_backups(config, "prodution")


def test_an_empty_store_is_not_healthy(config: Config) -> None:
    report = monarch.check_backups(config)
    assert not report.ok
    assert "no backups at all" in report.failing[0].reason()


@pytest.mark.parametrize("bad", ["0h", "soon", "-3h", ""])
def test_max_age_must_be_a_duration(config: Config, bad: str) -> None:
    with pytest.raises(ConfigError, match="is not a duration"):
        monarch.check_backups(config, max_age=bad)


def test_ages_read_as_people_write_them() -> None:
    assert [format_age(s) for s in (40, 720, 93600 + 300, 3 * 86400 + 4 * 3600)] == \
        ["40s", "12m", "26h 5m", "3d 4h"]


# verify records, check_backups and the CLI on real backups ----------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path)


def corrupt(path: Path, name: str) -> None:
    (archive,) = (path.parent / "backups").glob(f"{name}.archive*")
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))


def test_verify_records_its_outcome_and_check_backups_reads_it(project: Path) -> None:
    config = load_config(project)
    first = monarch.backup(config, "lite")
    assert monarch.verify(config, first.name).ok
    store = open_store(config.backups)
    record = read_verify(store, first.name)
    assert record is not None and record.ok and record.name == first.name

    second = monarch.backup(config, "lite")
    corrupt(project, second.name)
    assert not monarch.verify(config, second.name).ok
    record = read_verify(store, second.name)
    assert record is not None and not record.ok and record.problems

    report = monarch.check_backups(config, "lite")
    assert not report.ok
    reason = report.failing[0].reason()
    assert reason.startswith(f"the last verify, of {second.name} at ")
    assert "failed: " in reason

    # The verify record goes with its backup; the environment is healthy again.
    monarch.delete_backup(config, second.name)
    assert read_verify(store, second.name) is None
    assert monarch.check_backups(config, "lite").ok


def test_check_backups_cli_prints_one_line_and_exits_by_the_verdict(project: Path) -> None:
    config = load_config(project)
    done = monarch.backup(config, "lite")
    monarch.verify(config, done.name)

    ok = cli(project, "check_backups", "lite", "--max-age", "1h")
    assert ok.code == 0, ok.output
    assert re.fullmatch(rf"OK 1 environment: lite \({done.name}, \d+s old, [\d.]+ kB, "
                        r"verified\)\n", ok.stdout)

    stale = cli(project, "check_backups", "lite", "--max-age", "1h", "--min-size", "1G")
    assert stale.code == 1
    assert stale.stdout.count("\n") == 1
    assert stale.stdout.startswith(f"FAIL lite: newest backup {done.name} is ")
    assert "less than --min-size 1.1 GB" in stale.stdout

    shown = json.loads(cli(project, "check_backups", "--json").stdout)
    assert shown["ok"] is True
    (entry,) = shown["environments"]
    assert entry["environment"] == "lite" and entry["newest"] == done.name
    assert entry["last_verify"]["ok"] is True
    assert shown["max_age_seconds"] == 26 * 3600


# Prometheus textfile metrics ----------------------------------------------------------------


def metric(text: str, name: str, env: str) -> float:
    match = re.search(rf'^{name}{{environment="{env}"}} (\S+)$', text, re.MULTILINE)
    assert match, f"{name} for {env} missing from:\n{text}"
    return float(match.group(1))


def test_backup_and_verify_write_textfile_metrics(project: Path, tmp_path: Path) -> None:
    prom = tmp_path / "textfile" / "monarch.prom"
    prom.parent.mkdir()
    config = load_config(project)
    before = time.time()
    done = monarch.backup(config, "lite", metrics_file=prom)
    text = prom.read_text()

    assert "# HELP monarch_backup_last_success_timestamp_seconds " in text
    assert "# TYPE monarch_backup_last_success_timestamp_seconds gauge" in text
    for family in ("success", "last_run_timestamp_seconds", "duration_seconds", "size_bytes",
                   "documents"):
        assert f"# TYPE monarch_backup_{family} gauge" in text
    assert metric(text, "monarch_backup_success", "lite") == 1
    assert before <= metric(text, "monarch_backup_last_success_timestamp_seconds",
                            "lite") <= time.time()
    assert metric(text, "monarch_backup_size_bytes", "lite") == done.size
    assert metric(text, "monarch_backup_documents", "lite") == done.documents
    assert 0 < metric(text, "monarch_backup_duration_seconds", "lite") < 60
    success_at = metric(text, "monarch_backup_last_success_timestamp_seconds", "lite")

    # A failed backup of another environment adds its own samples, keeps lite's.
    with pytest.raises(monarch.MonarchError):
        monarch.backup(config, "broken", metrics_file=prom)
    text = prom.read_text()
    assert metric(text, "monarch_backup_success", "broken") == 0
    assert "monarch_backup_last_success_timestamp_seconds{environment=\"broken\"}" not in text
    assert metric(text, "monarch_backup_last_success_timestamp_seconds", "lite") == success_at

    # verify writes its own family into the same file, and records a failure as 0.
    assert monarch.verify(config, done.name, metrics_file=prom).ok
    assert metric(prom.read_text(), "monarch_verify_success", "lite") == 1
    corrupt(project, done.name)
    assert not monarch.verify(config, done.name, metrics_file=prom).ok
    text = prom.read_text()
    assert metric(text, "monarch_verify_success", "lite") == 0
    assert metric(text, "monarch_backup_success", "lite") == 1
    # The format node_exporter reads: only comments and samples, nothing left of temp files.
    assert all(line.startswith("#") or re.fullmatch(r'monarch_\w+\{environment="\w+"\} \S+',
                                                     line) for line in text.splitlines())
    assert sorted(p.name for p in prom.parent.iterdir()) == [".monarch.prom.lock",
                                                            "monarch.prom"]


def test_a_metrics_file_that_cannot_be_written_does_not_fail_the_backup(
    project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="monarch"):
        done = monarch.backup(load_config(project), "lite",
                              metrics_file=tmp_path / "missing" / "m.prom")
    assert monarch.list_backups(load_config(project))[-1].name == done.name
    assert "cannot write the metrics file" in caplog.text


# Webhooks -------------------------------------------------------------------------------------


class Receiver:
    """An HTTP server on loopback that records the JSON bodies POSTed to it."""

    def __init__(self, delay: float = 0.0) -> None:
        self.events: list[dict[str, Any]] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if delay:
                    time.sleep(delay)
                receiver.paths.append(self.path)
                receiver.events.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/{TOKEN}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there now: connections are refused


def test_a_failed_backup_posts_an_event_without_secrets(
    tmp_path: Path, receiver: Receiver,
) -> None:
    path = write_project(tmp_path, notify_url=receiver.url)
    config = load_config(path)
    with pytest.raises(monarch.MonarchError):
        monarch.backup(config, "pg")
    (sent,) = receiver.events
    assert receiver.paths == [f"/hooks/{TOKEN}"]
    assert sent["event"] == "backup.failure" and sent["ok"] is False
    assert sent["environment"] == "pg" and sent["command"] == "backup"
    assert sent["source"] == "monarch" and sent["error"]
    assert sent["store"] == f"file://{tmp_path / 'backups'}"
    everything = json.dumps(sent)
    assert PASSWORD not in everything and TOKEN not in everything

    # By default a success sends nothing.
    monarch.backup(config, "lite")
    assert len(receiver.events) == 1


def test_notify_on_success_sends_the_backup_and_its_figures(
    tmp_path: Path, receiver: Receiver,
) -> None:
    path = write_project(tmp_path, notify_url=receiver.url, notify_on=["failure", "success"])
    done = monarch.backup(load_config(path), "lite")
    (sent,) = receiver.events
    assert sent["event"] == "backup.success"
    assert (sent["backup"], sent["size"], sent["documents"]) == \
        (done.name, done.size, done.documents)
    assert sent["duration_seconds"] >= 0 and sent["finished_at"] >= sent["started_at"]

    corrupt(path, done.name)
    assert not monarch.verify(load_config(path), done.name).ok
    assert receiver.events[-1]["event"] == "verify.failure"
    assert receiver.events[-1]["problems"]


def test_the_notify_option_overrides_the_setting(tmp_path: Path, receiver: Receiver) -> None:
    path = write_project(tmp_path, notify_url=f"http://127.0.0.1:{closed_port()}/x")
    done = cli(path, "backup", "broken", "--notify", receiver.url)
    assert done.code == 1
    assert [e["event"] for e in receiver.events] == ["backup.failure"]


def test_a_webhook_that_is_down_never_fails_a_backup(tmp_path: Path) -> None:
    path = write_project(tmp_path, notify_url=f"http://127.0.0.1:{closed_port()}/{TOKEN}",
                         notify_on=["success"])
    started = time.monotonic()
    done = cli(path, "backup", "lite")
    assert done.code == 0, done.output
    assert "Backed up lite" in done.stdout
    warning = done.stderr.strip().splitlines()[-1]
    assert warning.startswith("warning: could not notify http://127.0.0.1:")
    assert "cannot reach it" in warning and "the backup itself succeeded" in warning
    assert TOKEN not in done.output
    assert time.monotonic() - started < 30  # retries end after their patience


def test_a_slow_webhook_times_out_and_the_backup_stands(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    slow = Receiver(delay=3.0)
    try:
        path = write_project(tmp_path)
        target = NotifyTarget(Secret(slow.url), frozenset({"success"}), timeout=0.5,
                              patience=1.0)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="monarch"):
            done = monarch.backup(load_config(path), "lite", notify=target)
        assert time.monotonic() - started < 10
        assert "no answer within 0.5 s" in caplog.text
        assert monarch.list_backups(load_config(path))[-1].name == done.name
    finally:
        slow.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [({"notify_url": "ftp://example.com/x"}, "must be an http"),
     ({"notify_url": "http://example.com/x", "notify_on": ["failures"]}, "not 'failures'")],
)
def test_notify_settings_are_checked_before_the_backup(
    tmp_path: Path, options: dict[str, object], message: str,
) -> None:
    path = write_project(tmp_path, **options)
    with pytest.raises(ConfigError, match=message):
        monarch.backup(load_config(path), "lite")
    assert monarch.list_backups(load_config(path)) == []

"""What the fuzzer feeds, and to which parser: one :class:`Target` per kind of outside input.

A target turns a valid sample into a damaged one (``mutate``) and reads it the way monarch reads
such input (``run``), down to the values a restore or a migration would use next. ``run`` may
return (the damage left a valid input) or raise a :class:`~monarch.errors.MonarchError`; any
other exception, a hang or a memory blow-up is a finding.

Everything here runs without a server: the end-to-end cases, which restore into a real
database, are in ``test_restore_mutants.py``.
"""

from __future__ import annotations

import ast
import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import signal
import tomllib
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from monarch import list_backups, verify
from monarch.archive import DirectoryReader, open_archive
from monarch.archive.events import DumpReader
from monarch.archive.limits import restore_ceiling
from monarch.archive.zipdump import check_zip_dump
from monarch.backups.manifest import Manifest
from monarch.backups.naming import parse_name
from monarch.backups.sources import open_source
from monarch.config import Config, config_from_dict, load_config
from monarch.engines import engine_for
from monarch.engines.postgres.sql import split_postgres
from monarch.engines.sqlite.sql import split_sqlite
from monarch.engines.sqltext import has_sql
from monarch.io import Readable
from monarch.migrations.sqlfiles import parse as parse_sql
from monarch.stores import open_store
from monarch.stores.s3 import parse_part_size
from tests.fuzz.mutate import Mutator, length_fields
from tests.fuzz.samples import Tree, write_tree

Input = bytes | Tree

ENVIRON = {"PGPASSWORD": "pw", "MONGO_PASSWORD": "s3cr:t@", "AWS_KEY": "k", "AWS_SECRET": "s"}
"""The environment ``${VAR}`` references in the configuration samples are expanded from."""


@dataclass(frozen=True)
class Target:
    """One kind of outside input: the samples it starts from and how it is read."""

    name: str
    kind: str
    """The folder of the samples (see :mod:`tests.fuzz.samples`)."""
    mutate: Callable[[random.Random, Any, Sequence[Any]], Input]
    run: Callable[[Any, Path], None]
    enabled: bool = True


# ---------------------------------------------------------------- mutating structures and text


ARCHIVE = Mutator(lambda data: length_fields(data, 4))
BSON = Mutator(lambda data: length_fields(data, 0))
BYTES = Mutator()

_EXTREMES: tuple[Any, ...] = (
    None, True, False, 0, -1, 2**31, 2**63, 2**64 + 1, -(2**63) - 1, 1e308, -0.0, 0.5,
    "", " ", "x" * 5000, "9" * 5000, "1e999", "99999999999999999999T", "-1M", "0.5K",
    "\u0000", "..", "../../etc", "a.b", "$cmd", "é\u202e", "%2F", "${UNSET}",
    "${PGPASSWORD}", "2026-13-45T99:00:00", "2026-01-01T00:00:00", "ffffffffffffffffff", "zz",
    [], [1, "a", None], {}, {"$oid": "zz"}, {"$date": "x"}, {"$numberLong": "9" * 30},
    {"$binary": {"base64": "!!", "subType": "99"}}, {"": {"": []}},
)


def mutate_value(rng: random.Random, value: Any, extremes: Sequence[Any] = _EXTREMES) -> Any:
    """``value`` with one node somewhere inside it replaced, removed or added."""
    if isinstance(value, dict) and value and rng.random() < 0.75:
        key = rng.choice(list(value))
        out = dict(value)
        roll = rng.random()
        if roll < 0.1:
            del out[key]
        elif roll < 0.2:
            out[rng.choice(["", "x", "format_version", "url", "type", "__proto__"])] = rng.choice(
                extremes)
        else:
            out[key] = mutate_value(rng, value[key], extremes)
        return out
    if isinstance(value, list) and value and rng.random() < 0.75:
        out_list = list(value)
        at = rng.randrange(len(out_list))
        roll = rng.random()
        if roll < 0.15:
            del out_list[at]
        elif roll < 0.3:
            out_list.insert(at, out_list[at])
        else:
            out_list[at] = mutate_value(rng, out_list[at], extremes)
        return out_list
    if isinstance(value, int) and not isinstance(value, bool) and rng.random() < 0.5:
        return rng.choice((value + 1, value - 1, -value, value * 2**32, 0))
    if isinstance(value, str) and value and rng.random() < 0.5:
        at = rng.randrange(len(value))
        return value[:at] + rng.choice(("", "'", '"', "\\", "/", "@", ":", "%", "\n")) + value[
            at + 1:]
    return rng.choice(extremes)


def deep_json(rng: random.Random) -> str:
    """A JSON value nested far deeper than any real document."""
    depth = rng.choice((100, 1000, 5000, 100_000))
    return "[" * depth + "]" * depth if rng.random() < 0.5 else '{"a":' * depth + "1" + "}" * depth


def mutate_json_text(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    """Half the time bytes, half the time one value of the parsed document."""
    roll = rng.random()
    if roll < 0.05:
        return deep_json(rng).encode()
    if roll < 0.5:
        return BYTES.mutate(rng, data, others)
    try:
        doc = json.loads(data)
    except ValueError:
        return BYTES.mutate(rng, data, others)
    return json.dumps(mutate_value(rng, doc), ensure_ascii=rng.random() < 0.5).encode()


# ------------------------------------------------------------------------ reading like a restore


def _config(root: Path, backups: str = "file://backups") -> Config:
    data = {"backups": backups, "environments": {"dev": {"url": "mongodb://127.0.0.1:9/fuzz"}}}
    return config_from_dict(data, None, {}, root=root)


def consume(reader: DumpReader) -> None:
    """Read everything a restore reads: the header, each collection's options and indexes,
    and every event."""
    _ = reader.header
    for meta in reader.collections:
        _ = (meta.namespace, meta.data_collection, meta.options, meta.indexes, meta.uuid)
    for _event in reader:
        pass


def restore_source(config: Config, name: str) -> None:
    """Open ``name`` as ``restore`` does (a backup name, an archive file or a dump folder)."""
    engine = engine_for(config.environment("dev"))
    with open_source(open_store(config.backups), name, engine, None) as source:
        assert not isinstance(source.input, Readable)  # a MongoDB dump is read as events
        consume(source.input)


# ------------------------------------------------------------------------------------ archives


def _compress(method: str, data: bytes) -> bytes:
    if method == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    return zstandard.ZstdCompressor(level=1, write_checksum=True).compress(data)


def _decompress(method: str, data: bytes) -> bytes:
    if method == "gzip":
        return gzip.decompress(data)
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def compressed_mutant(method: str) -> Callable[[random.Random, bytes, Sequence[bytes]], bytes]:
    """Damage the compressed bytes, or the archive inside them (then compress it again)."""

    def mutate(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
        if rng.random() < 0.5:
            return BYTES.mutate(rng, data, others)
        inner = [_decompress(method, o) for o in others]
        return _compress(method, ARCHIVE.mutate(rng, _decompress(method, data), inner))

    return mutate


def archive_reader(method: str | None) -> Callable[[bytes, Path], None]:
    """Read an archive as a file given to ``restore`` and as a stream of known compression."""

    def run(data: bytes, scratch: Path) -> None:
        consume(open_archive(io.BytesIO(data), method))  # type: ignore[arg-type]
        path = scratch / "dump.archive"
        path.write_bytes(data)
        restore_source(_config(scratch), str(path))

    return run


# ------------------------------------------------------------------------------ directory dumps


_ODD_NAMES = ("..%2F..%2Fetc", "%24cmd", "%00", "a" * 200, "system.indexes", "oplog", "prelude",
              "caf%C3%A9s", "%ZZ", ".", "x.y", "%2E%2E")
_DUMP_SUFFIXES = (".bson", ".bson.gz", ".metadata.json", ".metadata.json.gz", ".json", "")


def mutate_file(rng: random.Random, name: str, data: bytes, others: Sequence[bytes]) -> bytes:
    """Damage one file of a dump by what it is (BSON, JSON, gzip of either)."""
    if name.endswith(".gz"):
        if rng.random() < 0.5:
            return BYTES.mutate(rng, data, others)
        try:
            inner = gzip.decompress(data)
        except (OSError, EOFError):
            return BYTES.mutate(rng, data, others)
        return gzip.compress(mutate_file(rng, name[:-3], inner, []), mtime=0)
    if name.endswith(".bson"):
        return BSON.mutate(rng, data, others)
    if name.endswith(".json"):
        return mutate_json_text(rng, data, others)
    return BYTES.mutate(rng, data, others)


def mutate_tree(rng: random.Random, tree: Tree, others: Sequence[Tree]) -> Tree:
    """Damage a dump: a file's bytes (mostly), a file's name, a missing or an extra file."""
    out = dict(tree)
    names = sorted(out)
    if not names:
        return {"db/x.bson": b"\x05\x00\x00\x00\x00"}
    name = rng.choice(names)
    roll = rng.random()
    if roll < 0.7:
        same = [t[name] for t in others if name in t]
        out[name] = mutate_file(rng, name, out[name], same)
    elif roll < 0.8:
        data = out.pop(name)
        folder = name.rpartition("/")[0] if rng.random() < 0.8 else ""
        out[_new_name(rng, out, folder)] = data
    elif roll < 0.9:
        del out[name]
    else:
        folder = rng.choice(names).rpartition("/")[0]
        out[_new_name(rng, out, folder)] = out[rng.choice(names)]
    return out


def _new_name(rng: random.Random, tree: Tree, folder: str) -> str:
    """An odd file name in ``folder`` that is neither taken nor a folder of ``tree``."""
    new = rng.choice(_ODD_NAMES) + rng.choice(_DUMP_SUFFIXES)
    path = f"{folder}/{new}" if folder else new
    while new in (".", "..") or path in tree or any(k.startswith(path + "/") for k in tree):
        new += "_"
        path = f"{folder}/{new}" if folder else new
    return path


def read_dump(tree: Tree, scratch: Path) -> None:
    root = scratch / "dump"
    write_tree(root, tree)
    consume(DirectoryReader(root))
    restore_source(_config(scratch), str(root))


# ------------------------------------------------------------------------ manifests and backups


def read_manifest(data: bytes, scratch: Path) -> None:
    manifest = Manifest.from_json(data, "fuzz.manifest.json")
    _ = (manifest.duration, manifest.documents, manifest.data_bytes)
    manifest.collection("users")
    Manifest.from_json(manifest.to_json(), "the manifest written again")


def _backup_parts(tree: Tree) -> tuple[bytes, bytes]:
    return tree.get("manifest.json", b""), tree.get("archive", b"")


def mutate_backup(rng: random.Random, tree: Tree, others: Sequence[Tree]) -> Tree:
    """Damage the manifest, the archive (telling the manifest its new size and SHA-256, so that
    the archive's own checks are what must catch it), or both."""
    manifest, archive = _backup_parts(tree)
    roll = rng.random()
    if roll < 0.6:
        doc: Any = None
        try:
            doc = json.loads(manifest)
            method = doc["archive"]["compression"]
        except (ValueError, KeyError, TypeError):
            method = "none"
        if method in ("gzip", "zstd"):
            archive = compressed_mutant(method)(rng, archive, [])
        else:
            archive = ARCHIVE.mutate(rng, archive, [])
        if isinstance(doc, dict) and isinstance(doc.get("archive"), dict) and rng.random() < 0.8:
            # A manifest that agrees with the damaged archive.
            doc["archive"].update(size=len(archive), sha256=hashlib.sha256(archive).hexdigest())
            manifest = json.dumps(doc).encode()
    if roll >= 0.4:
        manifest = mutate_json_text(rng, manifest, [])
    return {"manifest.json": manifest, "archive": archive}


def read_backup(tree: Tree, scratch: Path) -> None:
    """Put the backup in a local store under its own name and key, then list, verify and
    restore-read it."""
    manifest, archive = _backup_parts(tree)
    try:
        doc = json.loads(manifest)
        name, key = str(doc["name"]), str(doc["archive"]["key"])
    except (ValueError, KeyError, TypeError, RecursionError):
        name, key = "dev-20260101T000000Z", "dev-20260101T000000Z.archive"
    if parse_name(name) is None or "/" in name or len(name) > 200:
        name = "dev-20260101T000000Z"
    store = scratch / "backups"
    store.mkdir()
    (store / f"{name}.manifest.json").write_bytes(manifest)
    if "/" not in key and key not in ("", ".", ".."):
        # A key no file can have (too long, a NUL) leaves the manifest naming a missing archive.
        with contextlib.suppress(OSError, ValueError):
            (store / key).write_bytes(archive)
    config = _config(scratch, f"file://{store}")
    list_backups(config)
    verify(config, name)
    restore_source(config, name)


# -------------------------------------------------------------------------------- SQL migrations


_SQL_TOKENS = ("'", '"', "$$", "$a$", "$a", "E'", "\\", "/*", "*/", "--", ";", "(", ")", "\r",
               "\n-- monarch:rollback\n", "\n-- monarch:transactional=false\n", "-- monarch:",
               "\n--monarch: rollback = \r\n", "BEGIN ATOMIC ", " END", " CASE ",
               "CREATE FUNCTION ", "BEGIN;", "ROLLBACK TO", "\ufeff", "\u2028", "\x00")


def mutate_text(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    """Bytes, or tokens that change how text is cut into statements, inserted or repeated."""
    if rng.random() < 0.4:
        return BYTES.mutate(rng, data, others)
    text = data.decode("utf-8", "replace")
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(text))
        token = rng.choice(_SQL_TOKENS) * rng.choice((1, 1, 1, 3, 1000))
        text = text[:at] + token + text[at:]
    return text.encode("utf-8", "surrogatepass")


def read_sql(data: bytes, scratch: Path) -> None:
    script = parse_sql(scratch / "20260101120000_fuzz.sql", data)
    for section in (script.up, script.down):
        if section is None:
            continue
        has_sql(section.text)
        for statement in [*split_postgres(section.text), *split_sqlite(section.text)]:
            _ = statement.controls_transaction
            script.line_of(section.offset + statement.start)


# ------------------------------------------------------------------------ monarch.toml settings


def toml_value(value: Any) -> str:
    """``value`` as TOML (tables inline)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if abs(value) < 2**63 else json.dumps(str(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}"
                               for k, v in value.items()) + "}"
    if value is None:
        return '""'
    return json.dumps(str(value))


_TOML_TOKENS = ("[", "]", "[[", "=", '"', "'''", '"""', "\\u0000", "${", "}", "\n[environments]\n",
                "\nurl = 1\n", "#", ".", "\n[backups.x]\n")


def mutate_toml(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    """Bytes, TOML tokens, or one value of the parsed file changed and written out again."""
    roll = rng.random()
    if roll < 0.3:
        return BYTES.mutate(rng, data, others)
    if roll < 0.5:
        text = data.decode("utf-8", "replace")
        at = rng.randint(0, len(text))
        return (text[:at] + rng.choice(_TOML_TOKENS) + text[at:]).encode()
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return BYTES.mutate(rng, data, others)
    doc = mutate_value(rng, doc)
    if not isinstance(doc, dict):
        return f"value = {toml_value(doc)}\n".encode()
    return "\n".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in doc.items()).encode()


def _use_config(config: Config) -> None:
    """Everything a command takes from a loaded configuration, sizes included."""
    for name, env in config.environments.items():
        _ = (env.display_url, env.host, env.database, env.protected_reason)
        config.environment(name)
    options = config.backups.options
    if isinstance(ceiling := options.get("max_restore_size"), str):
        restore_ceiling(1, ceiling, "[backups] max_restore_size")
    if isinstance(part := options.get("part_size"), str):
        parse_part_size(part)


def read_toml(data: bytes, scratch: Path) -> None:
    path = scratch / "monarch.toml"
    path.write_bytes(data)
    _use_config(load_config(path, environ=ENVIRON))


# -------------------------------------------------------------------------- legacy settings.py


def settings_structure(data: bytes) -> dict[str, Any]:
    """The literal values a settings.py assigns at its top level."""
    found: dict[str, Any] = {}
    for node in ast.parse(data).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


_SETTINGS_EXTREMES = (*_EXTREMES[:17], b"bytes", (1, 2), {"host": None}, {"LOCAL": None},
                      {"S3": {"bucket_name": ""}}, {"db_name": "a/b"}, "host:notaport", "[::1]:1",
                      "user@host", "h1:1,h2:2", "db name", "\u00e9\u0000")


def mutate_settings(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    """Values and structure only: settings.py is Python that runs, so its code is not fuzzed."""
    values = settings_structure(data)
    for _ in range(rng.randint(1, 3)):
        values = mutate_value(rng, values, _SETTINGS_EXTREMES)
    if not isinstance(values, dict):
        values = {"ENVIRONMENTS": values}
    return "".join(f"{name} = {value!r}\n" for name, value in values.items()
                   if str(name).isidentifier()).encode()


def read_settings(data: bytes, scratch: Path) -> None:
    folder = scratch / "project" / "migrations"
    folder.mkdir(parents=True)
    path = folder / "settings.py"
    path.write_bytes(data)
    _use_config(load_config(path, environ=ENVIRON))


# ---------------------------------------------------------------------------------- the targets


# ------------------------------------------------------------------- monarch 0.0.x .dmp.zip


def zip_fields(data: bytes) -> list[int]:
    """Offsets of a zip's size, count and offset fields (local headers, central directory and
    its end record)."""
    found: list[int] = []
    for magic, fields in ((b"PK\x03\x04", (14, 18, 22)), (b"PK\x01\x02", (16, 20, 24, 42)),
                          (b"PK\x05\x06", (8, 12, 16))):
        at = data.find(magic)
        while at >= 0:
            found.extend(at + f for f in fields if at + f + 4 <= len(data))
            at = data.find(magic, at + 1)
    return found


ZIP = Mutator(zip_fields)


def mutate_zip(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    """Damage the zip's bytes (its size and offset fields most), or the files inside it (then
    zip them again)."""
    if rng.random() < 0.6:
        return ZIP.mutate(rng, data, others)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        tree = {info.filename: archive.read(info) for info in archive.infolist()}
        method = archive.infolist()[0].compress_type if tree else zipfile.ZIP_DEFLATED
    flat = {name.replace("/", "_") or "_": content
            for name, content in mutate_tree(rng, tree, []).items()}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, content in flat.items():
            archive.writestr(name, content)
    return out.getvalue()


LEGACY_NAME = "legacy_app__2016_11_01"


def read_legacy_zip(data: bytes, scratch: Path) -> None:
    """Check the zip, restore-read it as a file, then as a backup in the store."""
    path = scratch / "copy.dmp.zip"
    path.write_bytes(data)
    check_zip_dump(path)
    config = _config(scratch, f"file://{scratch / 'backups'}")
    restore_source(config, str(path))
    (scratch / "backups").mkdir()
    (scratch / "backups" / f"{LEGACY_NAME}.dmp.zip").write_bytes(data)
    verify(config, LEGACY_NAME)
    restore_source(config, LEGACY_NAME)


TARGETS: tuple[Target, ...] = (
    Target("archive", "archive", ARCHIVE.mutate, archive_reader(None)),
    Target("archive-gzip", "archive-gzip", compressed_mutant("gzip"), archive_reader("gzip")),
    Target("archive-zstd", "archive-zstd", compressed_mutant("zstd"), archive_reader("zstd")),
    Target("dump", "dump", mutate_tree, read_dump),
    Target("manifest", "manifest", mutate_json_text, read_manifest),
    Target("backup", "backup", mutate_backup, read_backup),
    Target("sql", "sql", mutate_text, read_sql),
    Target("toml", "toml", mutate_toml, read_toml),
    Target("settings", "settings", mutate_settings, read_settings),
    Target("legacy-zip", "legacy-zip", mutate_zip, read_legacy_zip),
)


def _raise(data: bytes, scratch: Path) -> None:
    raise ValueError("not a monarch error")


def _hang(data: bytes, scratch: Path) -> None:
    while True:
        pass


def _allocate(data: bytes, scratch: Path) -> None:
    _ = bytearray(8 * 2**30)


def _grow(data: bytes, scratch: Path) -> None:
    # Every byte written: a zeroed buffer may be untouched pages (calloc) that never count in
    # the RSS, as on Python 3.12 and later.
    kept = [bytearray(b"\xff") * 2**20 for _ in range(160)]
    del kept


def _die(data: bytes, scratch: Path) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _keep(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    return data


# Targets that misbehave on purpose, to show that the runner catches each kind of crash.
SELF_TESTS: tuple[Target, ...] = tuple(
    Target(f"selftest-{name}", "sql", _keep, run, enabled=False)
    for name, run in (("exception", _raise), ("hang", _hang), ("allocate", _allocate),
                      ("grow", _grow), ("die", _die))
)


def target(name: str) -> Target:
    """The target called ``name``."""
    for found in (*TARGETS, *SELF_TESTS):
        if found.name == name:
            return found
    raise KeyError(f"no fuzz target {name!r}; known: {', '.join(t.name for t in TARGETS)}")


def enabled_targets() -> Iterator[Target]:
    """The targets that run."""
    return (t for t in TARGETS if t.enabled)

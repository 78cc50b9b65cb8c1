"""Streaming compression: standard formats out, any member/frame layout in, damage refused."""

from __future__ import annotations

import gzip
import io
import os
import re

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from monarch.archive import (
    Method,
    TruncatedArchive,
    open_compressed_writer,
    open_decompressed_reader,
    sniff,
)
from monarch.archive import compression as compression_module
from monarch.errors import ArchiveError

PAYLOAD = b"".join(os.urandom(64) + b"repetitive text " * 40 for _ in range(200))


def compress(data: bytes, method: Method, level: int | None = None, pieces: int = 7) -> bytes:
    out = io.BytesIO()
    writer = open_compressed_writer(out, method, level)
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):
        writer.write(memoryview(data)[start : start + step])
    writer.close()
    assert not out.closed
    return out.getvalue()


def decompress(data: bytes, method: Method | None = None, read_size: int = 65536) -> bytes:
    reader = open_decompressed_reader(io.BytesIO(data), method)
    parts = []
    while chunk := reader.read(read_size):
        assert len(chunk) <= read_size
        parts.append(chunk)
    return b"".join(parts)


@pytest.mark.parametrize("method", ["zstd", "gzip", "none"])
def test_round_trip_with_sniffing(method: Method) -> None:
    data = compress(PAYLOAD, method)
    assert sniff(data) == (None if method == "none" else method)
    assert decompress(data) == PAYLOAD
    assert decompress(data, method, read_size=1000) == PAYLOAD


@settings(deadline=None)
@given(st.binary(max_size=5000), st.sampled_from(["zstd", "gzip", "none"]), st.integers(1, 5000))
def test_any_bytes_round_trip(data: bytes, method: Method, read_size: int) -> None:
    assert decompress(compress(data, method), method, read_size) == data


def test_gzip_output_is_standard_gzip() -> None:
    assert gzip.decompress(compress(PAYLOAD, "gzip")) == PAYLOAD


def test_zstd_output_is_a_standard_zstd_frame() -> None:
    data = compress(PAYLOAD, "zstd")
    assert zstandard.ZstdDecompressor().decompressobj().decompress(data) == PAYLOAD


@pytest.mark.parametrize("level", [1, 2, 3, 6, 9])
def test_every_gzip_level_is_standard(level: int) -> None:
    assert gzip.decompress(compress(PAYLOAD, "gzip", level)) == PAYLOAD


def test_gzip_works_without_isal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compression_module, "_isal_zlib", lambda: None)
    data = compress(PAYLOAD, "gzip")
    assert gzip.decompress(data) == PAYLOAD
    assert decompress(data) == PAYLOAD


def test_concatenated_gzip_members_and_zstd_frames_are_read_whole() -> None:
    halves = PAYLOAD[:5000], PAYLOAD[5000:]
    assert decompress(gzip.compress(halves[0]) + gzip.compress(halves[1])) == PAYLOAD
    zstd = zstandard.ZstdCompressor()
    assert decompress(zstd.compress(halves[0]) + zstd.compress(halves[1])) == PAYLOAD


@pytest.mark.parametrize("method", ["zstd", "gzip"])
def test_truncated_compressed_data_is_refused(method: Method) -> None:
    data = compress(PAYLOAD, method)
    for cut in (len(data) - 1, len(data) - 8, len(data) // 2, 5):
        with pytest.raises(TruncatedArchive, match=method):
            decompress(data[:cut])
    with pytest.raises(TruncatedArchive, match="empty"):
        decompress(b"", method)


@pytest.mark.parametrize("method", ["zstd", "gzip"])
def test_corrupt_compressed_data_is_refused(method: Method) -> None:
    data = bytearray(compress(PAYLOAD, method))
    data[len(data) // 2] ^= 0xFF
    data[len(data) // 2 + 1] ^= 0xFF
    with pytest.raises(ArchiveError):
        decompress(bytes(data))


@pytest.mark.parametrize("method", ["zstd", "gzip"])
def test_corruption_is_reported_where_it_was_found_not_at_byte_0(method: Method) -> None:
    payload = b"".join(os.urandom(64) + b"repetitive text " * 40 for _ in range(1600))
    data = bytearray(compress(payload, method))
    assert len(data) > 60_000
    data[25_000] ^= 0xFF

    with pytest.raises(ArchiveError) as caught:
        decompress(bytes(data))

    found = re.search(r"compressed bytes ([\d,]+)-([\d,]+)", caught.value.message)
    assert found is not None, caught.value.message
    start, end = (int(n.replace(",", "")) for n in found.groups())
    assert 25_000 - 4096 < start <= end < len(data)  # never before the damage
    assert end - start < 4096 and caught.value.hint


def test_garbage_after_a_gzip_stream_is_refused() -> None:
    with pytest.raises(ArchiveError):
        decompress(compress(PAYLOAD, "gzip") + b"not gzip")


def test_closing_does_not_close_the_raw_stream_unless_asked() -> None:
    out = io.BytesIO()
    open_compressed_writer(out, "zstd").close()
    assert not out.closed
    open_compressed_writer(out, "zstd", close_raw=True).close()
    assert out.closed


def test_the_context_manager_does_not_finish_the_stream_after_an_error() -> None:
    out = io.BytesIO()
    with pytest.raises(RuntimeError), open_compressed_writer(out, "gzip") as writer:
        writer.write(PAYLOAD)
        raise RuntimeError("dump failed")
    with pytest.raises(TruncatedArchive):
        decompress(out.getvalue(), "gzip")


def test_writing_after_close_is_an_error() -> None:
    writer = open_compressed_writer(io.BytesIO(), "none")
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"x")


@pytest.mark.parametrize(
    ("method", "level"), [("zstd", 0), ("zstd", 23), ("gzip", 0), ("gzip", 10)]
)
def test_out_of_range_levels_are_refused(method: Method, level: int) -> None:
    with pytest.raises(ValueError, match="level"):
        open_compressed_writer(io.BytesIO(), method, level)


def test_unknown_methods_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown compression"):
        open_compressed_writer(io.BytesIO(), "lz4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown compression"):
        open_decompressed_reader(io.BytesIO(b"abcd"), "lz4")  # type: ignore[arg-type]

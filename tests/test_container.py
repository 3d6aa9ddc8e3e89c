"""The .gcz container: round trip, and FormatError (never anything else) for malformed files."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import pytest

from gencompress import container
from gencompress.container import Container, FormatError, Header, TileData

GOLDEN_V1 = Path(__file__).parent / "data" / "golden" / "vae_q3_rgb.gcz"


def make(tiles=None, alpha=b"xyz", **kw) -> bytes:
    fields = dict(model="vae", weights_sha256=bytes(range(32)), quality=3, width=7, height=5, channels=4) | kw
    header = Header(**fields)
    if tiles is None:
        tiles = [TileData((b"ab", b"cd"), 123 + i, 456 + i) for i in range(header.grid.count)]
    return container.pack(Container(header, tuple(tiles), alpha if header.channels == 4 else None))


def test_round_trip():
    c = container.unpack(make())
    assert c.header.model == "vae" and (c.header.width, c.header.height, c.header.channels) == (7, 5, 4)
    assert c.header.weights_sha256 == bytes(range(32)) and c.header.version == container.FORMAT_VERSION
    assert c.tiles == (TileData((b"ab", b"cd"), 123, 456),) and c.alpha == b"xyz"
    assert container.pack(c) == make()


def test_tiled_round_trip():
    data = make(width=300, height=130, tile_size=128, overlap=16, channels=3)
    c = container.unpack(data)
    assert (c.header.tile_size, c.header.overlap, len(c.tiles)) == (128, 16, 3 * 2)
    assert [t.symbols_crc for t in c.tiles] == list(range(123, 129)) and c.alpha is None
    assert container.pack(c) == data


def test_version_1_files_read_as_one_tile():
    c = container.unpack(GOLDEN_V1.read_bytes())
    assert c.header.version == 1 and len(c.tiles) == 1
    assert c.header.grid.tiles()[0].width == c.header.width and c.tiles[0].pixels_crc is None
    assert container.read_header(GOLDEN_V1.read_bytes()[:container.HEADER_MAX_BYTES]) == c.header.__class__(
        **{**c.header.__dict__, "tile_size": Header.tile_size, "overlap": Header.overlap})


@pytest.mark.parametrize("field, value, message", [
    ("tile_size", 8, "tiles of 8 pixels"),
    ("tile_size", 4096, "tiles of 4096 pixels exceed the limit of 2048"),
    ("overlap", 600, "overlapping by 600"),
])
def test_invalid_tiling(field, value, message):
    with pytest.raises(FormatError, match=message):
        container.unpack(_with_tiling(**{field: value}))


def _with_tiling(**kw) -> bytes:
    """A valid file whose tiling fields are then overwritten (and the CRC re-sealed)."""
    data = bytearray(make())
    start = 8 + 1 + 4 + 1 + 3 + 32 + 1 + 4 + 4 + 4  # prefix, header length, name, image fields
    for i, key in enumerate(("tile_size", "overlap")):
        if key in kw:
            data[start + 4 * i:start + 4 * i + 4] = kw[key].to_bytes(4, "little")
    data[-4:] = zlib.crc32(bytes(data[:-4])).to_bytes(4, "little")
    return bytes(data)


def test_wrong_tile_count():
    data = make(width=300, height=130, tile_size=128, overlap=16, channels=3,
                tiles=[TileData((b"a",), 0, 0)] * 5)
    with pytest.raises(FormatError, match="tile count"):
        container.unpack(data)


@pytest.mark.parametrize("data, message", [
    (b"", "empty input"),
    (b"hello world, this is text", "wrong magic"),
    (b"\x89PNG\r\n\x1a\n" + bytes(40), "wrong magic"),
])
def test_not_gcz(data, message):
    with pytest.raises(FormatError, match=message):
        container.unpack(data)


def test_unknown_version():
    data = bytearray(make())
    data[8] = container.FORMAT_VERSION + 1
    with pytest.raises(FormatError, match=f"version {container.FORMAT_VERSION + 1}"):
        container.unpack(bytes(data))


def test_every_truncation_is_a_format_error():
    data = make()
    for n in range(len(data)):
        with pytest.raises(FormatError):
            container.unpack(data[:n])


def test_every_flipped_byte_is_a_format_error():
    data = make()
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            bad = bytearray(data)
            bad[i] ^= bit
            with pytest.raises(FormatError):
                container.unpack(bytes(bad))


@pytest.mark.parametrize("field, value, message", [
    ("channels", 2, "unsupported image layout"),
    ("bit_depth", 16, "unsupported image layout"),
    ("coder", 9, "unknown entropy coder"),
    ("width", 0, "zero image size"),
])
def test_invalid_fields(field, value, message):
    with pytest.raises(FormatError, match=message):
        container.unpack(make(**{field: value}))


def test_huge_claim_is_refused_before_allocation():
    data = make(width=100_000, height=100_000)
    start = time.perf_counter()
    with pytest.raises(FormatError, match="exceeds the limit"):
        container.unpack(data)
    assert time.perf_counter() - start < 0.1
    assert container.unpack(make(width=1000, height=1000), max_pixels=10**6).header.pixels == 10**6


def test_unpacking_leaves_the_garbage_collector_as_it_found_it():
    import gc

    data = make()
    assert gc.isenabled()
    container.unpack(data)
    assert gc.isenabled()
    gc.disable()
    try:
        container.unpack(data)
        with pytest.raises(FormatError, match="tile count"):  # raised while the collector is paused
            container.unpack(make(tiles=[]))
        assert not gc.isenabled()
    finally:
        gc.enable()

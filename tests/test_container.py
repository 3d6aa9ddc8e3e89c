"""The .gcz container: round trip, and FormatError (never anything else) for malformed files."""

from __future__ import annotations

import time

import pytest

from gencompress import container
from gencompress.container import Container, FormatError, Header, StreamKind


def make(streams=((StreamKind.LATENTS, b"abcd"), (StreamKind.ALPHA, b"xyz")), **kw) -> bytes:
    fields = dict(model="vae", weights_sha256=bytes(range(32)), quality=3, width=7, height=5, channels=4,
                  symbols_crc=123, pixels_crc=456) | kw
    return container.pack(Container(Header(**fields), tuple(streams)))


def test_round_trip():
    c = container.unpack(make())
    assert c.header.model == "vae" and (c.header.width, c.header.height, c.header.channels) == (7, 5, 4)
    assert c.header.weights_sha256 == bytes(range(32)) and c.header.pixels_crc == 456
    assert c.stream(StreamKind.LATENTS) == [b"abcd"] and c.stream(StreamKind.ALPHA) == [b"xyz"]
    assert container.pack(c) == make()


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
    data[8] = 2
    with pytest.raises(FormatError, match="version 2"):
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

"""The .gcz file: header, streams and checks. Pure Python (struct, zlib): no torch, fast to fuzz.

Layout (all integers little-endian; docs/FORMAT.md is the specification):

    magic        8 bytes  b"\\x89GCZ\\r\\n\\x1a\\n"
    version      u8       FORMAT_VERSION
    header_len   u16      bytes of the header fields that follow
    header       model name (u8 length + ASCII), weights SHA-256 (32 bytes), quality u8,
                 width u32, height u32, channels u8, bit depth u8, coder u8, device u8,
                 symbols CRC32 u32, pixels CRC32 u32, stream count u8, then per stream:
                 kind u8, length u32
    streams      the stream bytes, in header order
    crc          u32      CRC32 of every byte before it

Every length is checked against the file's size before anything is sliced, and every field
against its allowed values, so malformed input raises FormatError and nothing else.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

MAGIC = b"\x89GCZ\r\n\x1a\n"
FORMAT_VERSION = 1
CODER_CONSTRICTION_ANS = 1  # entropy.py: AnsCoder, Categorical(perfect=False), 16-bit CDF tables
DEFAULT_MAX_PIXELS = 1 << 28  # 268 MP: refuse larger claims before allocating anything

_PREFIX = struct.Struct("<8sBH")
_FIXED = struct.Struct("<32sBIIBBBBIIB")
_STREAM = struct.Struct("<BI")
_CRC = struct.Struct("<I")
HEADER_MAX_BYTES = _PREFIX.size + 0xFFFF  # the header length is a u16


class FormatError(ValueError):
    """The data is not a valid .gcz file (or not one this version can decode)."""


class ChecksumError(FormatError):
    """The file is intact but decoding it did not reproduce what the encoder recorded."""


class StreamKind(IntEnum):
    LATENTS = 0  # entropy-coded latents, in the model's order
    ALPHA = 1  # the alpha plane, zlib-compressed, lossless


class Device(IntEnum):
    CPU = 0
    CUDA = 1


@dataclass(frozen=True)
class Header:
    model: str
    weights_sha256: bytes
    quality: int
    width: int
    height: int
    channels: int  # 1 gray, 3 RGB, 4 RGBA
    bit_depth: int = 8
    coder: int = CODER_CONSTRICTION_ANS
    device: Device = Device.CPU  # where the encoder computed the reconstruction
    symbols_crc: int = 0  # CRC32 of all coded symbols (int32 little-endian, in stream order)
    pixels_crc: int = 0  # CRC32 of the decoded pixels (uint8, H x W x C row-major)

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Container:
    header: Header
    streams: tuple[tuple[StreamKind, bytes], ...]

    def stream(self, kind: StreamKind) -> list[bytes]:
        return [data for k, data in self.streams if k == kind]


def pack(container: Container) -> bytes:
    """Serialize a container; the inverse of unpack()."""
    h = container.header
    name = h.model.encode("ascii")
    fields = bytes([len(name)]) + name + _FIXED.pack(
        h.weights_sha256, h.quality, h.width, h.height, h.channels, h.bit_depth, h.coder,
        int(h.device), h.symbols_crc, h.pixels_crc, len(container.streams),
    )
    fields += b"".join(_STREAM.pack(int(kind), len(data)) for kind, data in container.streams)
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(fields)) + fields
    body += b"".join(data for _, data in container.streams)
    return body + _CRC.pack(zlib.crc32(body))


def unpack(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Container:
    """Parse and check a .gcz file; raise FormatError with a one-line reason if anything is wrong."""
    data = bytes(data)
    end = _header_end(data)
    if end + _CRC.size > len(data):
        raise FormatError("truncated .gcz file (header)")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[:-_CRC.size]) != crc:
        raise FormatError("corrupt .gcz file (CRC mismatch)" if _claims_fit(data, end) else "truncated .gcz file")
    header, streams = _parse_header(data[_PREFIX.size:end], max_pixels)
    payload = data[end:-_CRC.size]
    if sum(length for _, length in streams) != len(payload):
        raise FormatError("corrupt .gcz file (stream lengths do not match the file size)")
    out, pos = [], 0
    for kind, length in streams:
        out.append((kind, payload[pos:pos + length]))
        pos += length
    return Container(header, tuple(out))


def read_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Header:
    """The header alone, from the first bytes of a file (at most HEADER_MAX_BYTES are needed).

    Checks the magic, version, field ranges and pixel limit but not the file CRC, which needs the
    whole file: for learning size and channels before decoding (Pillow's open, a bomb check).
    """
    end = _header_end(data)
    if end > len(data):
        raise FormatError("truncated .gcz file (header)")
    return _parse_header(bytes(data[_PREFIX.size:end]), max_pixels)[0]


def _header_end(data: bytes) -> int:
    """Check magic and version; return where the header ends."""
    if len(data) < _PREFIX.size:
        raise FormatError("not a .gcz file (too short)" if data else "empty input")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise FormatError("not a .gcz file (wrong magic bytes)")
    if version != FORMAT_VERSION:
        raise FormatError(f"unsupported .gcz format version {version} (this build reads {FORMAT_VERSION})")
    return _PREFIX.size + header_len


def _claims_fit(data: bytes, end: int) -> bool:
    """Whether the header's stream lengths add up to the file size (to tell truncation from corruption)."""
    try:
        _, streams = _parse_header(data[_PREFIX.size:end], DEFAULT_MAX_PIXELS * 64)
    except FormatError:
        return True
    return end + sum(length for _, length in streams) + _CRC.size <= len(data)


def _parse_header(fields: bytes, max_pixels: int) -> tuple[Header, list[tuple[StreamKind, int]]]:
    if not fields:
        raise FormatError("corrupt .gcz header (empty)")
    name_len = fields[0]
    pos = 1 + name_len
    if pos + _FIXED.size > len(fields):
        raise FormatError("corrupt .gcz header (too short)")
    try:
        model = fields[1:pos].decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("corrupt .gcz header (model name is not ASCII)") from None
    (sha, quality, width, height, channels, depth, coder, device, sym_crc, pix_crc,
     n_streams) = _FIXED.unpack_from(fields, pos)
    pos += _FIXED.size
    if pos + n_streams * _STREAM.size != len(fields):
        raise FormatError("corrupt .gcz header (stream table size)")
    if coder != CODER_CONSTRICTION_ANS:
        raise FormatError(f"unknown entropy coder id {coder}")
    if channels not in (1, 3, 4) or depth != 8:
        raise FormatError(f"unsupported image layout: {channels} channels of {depth} bits")
    if width < 1 or height < 1:
        raise FormatError("corrupt .gcz header (zero image size)")
    if width * height > max_pixels:
        raise FormatError(f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels")
    if device not in Device._value2member_map_:
        raise FormatError(f"corrupt .gcz header (device {device})")
    streams = []
    for i in range(n_streams):
        kind, length = _STREAM.unpack_from(fields, pos + i * _STREAM.size)
        if kind not in StreamKind._value2member_map_:
            raise FormatError(f"unknown stream kind {kind}")
        streams.append((StreamKind(kind), length))
    header = Header(model, sha, quality, width, height, channels, depth, coder, Device(device), sym_crc, pix_crc)
    return header, streams

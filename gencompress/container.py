"""The .gcz file: header, tiles, streams and checks. struct, zlib and numpy: no torch, fast to fuzz.

Version 3 layout, the same as version 2's (all integers little-endian; docs/FORMAT.md is the
specification; what changed in 3 is how the amortized models reconstruct pixels):

    magic        8 bytes  b"\\x89GCZ\\r\\n\\x1a\\n"
    version      u8       FORMAT_VERSION
    header_len   u32      bytes of the header fields that follow
    image        model name (u8 length + ASCII), weights SHA-256 (32 bytes), quality u8,
                 width u32, height u32, channels u8, bit depth u8, coder u8, device u8
    tiling       tile size u32, overlap u32, tile count u32, alpha length u32
    tile table   per tile: symbols CRC32 u32, pixels CRC32 u32, stream count u8, stream lengths u32...
    streams      every tile's streams in tile order, then the alpha stream
    crc          u32      CRC32 of every byte before it

Version 1 files (one untiled image, u16 header length, image-wide checksums) and version 2 files
are still read.
Every length is checked against the file's size before anything is sliced, and every field
against its allowed values, so malformed input raises FormatError and nothing else.
"""

from __future__ import annotations

import gc
import struct
import zlib
from contextlib import contextmanager

import numpy as np
from dataclasses import dataclass
from enum import IntEnum

from . import tiling

MAGIC = b"\x89GCZ\r\n\x1a\n"
FORMAT_VERSION = 3  # 3: the amortized models decode in exact fixed point (same layout as 2)
CODER_CONSTRICTION_ANS = 1  # entropy.py: AnsCoder, Categorical(perfect=False), 16-bit CDF tables
DEFAULT_MAX_PIXELS = 1 << 28  # 268 MP: refuse larger claims before allocating anything
MIN_TILE_SIZE = 16
# Tiles bound decoding memory (a 2048x2048 tile of the `vae` peaks near 2.5 GB): files with larger
# tiles are refused, and a version-1 file, one untiled image, may hold at most this many pixels.
MAX_TILE_SIZE = 2048

_PREFIX = struct.Struct("<8sB")
_HEADER_LEN = {1: struct.Struct("<H"), 2: struct.Struct("<I"), 3: struct.Struct("<I")}
_IMAGE = struct.Struct("<32sBIIBBBB")
_TILING = struct.Struct("<IIII")
_TILE = struct.Struct("<IIB")
_LENGTH = struct.Struct("<I")
_CRC = struct.Struct("<I")
_V1_CHECKS = struct.Struct("<IIB")  # version 1: symbols CRC, pixels CRC, stream count
_V1_STREAM = struct.Struct("<BI")  # version 1: stream kind (0 latents, 1 alpha), length
# Enough leading bytes for read_header: prefix, header length, name and the image fields.
HEADER_MAX_BYTES = _PREFIX.size + 4 + 1 + 255 + _IMAGE.size


class FormatError(ValueError):
    """The data is not a valid .gcz file (or not one this version can decode)."""


class ChecksumError(FormatError):
    """The file is intact but decoding it did not reproduce what the encoder recorded."""


class Device(IntEnum):
    CPU = 0
    CUDA = 1

    @classmethod
    def of(cls, device) -> "Device":
        """The kind of a torch.device or of its name ("cpu", "cuda:0")."""
        kind = device if isinstance(device, str) else device.type
        return cls.CUDA if kind.split(":")[0] == "cuda" else cls.CPU


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
    tile_size: int = 1024  # tiles of at most tile_size x tile_size pixels ...
    overlap: int = 32  # ... overlapping by this many pixels (tiling.py)
    version: int = FORMAT_VERSION

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def grid(self) -> tiling.Grid:
        return tiling.Grid(self.width, self.height, self.tile_size, self.overlap)


@dataclass(frozen=True)
class TileData:
    streams: tuple[bytes, ...]  # entropy-coded latents, in the model's order
    symbols_crc: int  # CRC32 of the tile's coded symbols (int32 little-endian, in stream order)
    pixels_crc: int | None  # CRC32 of the tile's RGB reconstruction (uint8, h x w x 3); None in version 1


@dataclass(frozen=True)
class Container:
    header: Header
    tiles: tuple[TileData, ...]  # in raster order, header.grid.count of them
    alpha: bytes | None = None  # zlib-compressed alpha plane, exactly when channels == 4


def pack(container: Container) -> bytes:
    """Serialize a container as the current format version; the inverse of unpack()."""
    h = container.header
    name = h.model.encode("ascii")
    alpha = container.alpha or b""
    fields = bytes([len(name)]) + name + _IMAGE.pack(
        h.weights_sha256, h.quality, h.width, h.height, h.channels, h.bit_depth, h.coder, int(h.device))
    fields += _TILING.pack(h.tile_size, h.overlap, len(container.tiles), len(alpha))
    for t in container.tiles:
        fields += _TILE.pack(t.symbols_crc, t.pixels_crc, len(t.streams))
        fields += b"".join(_LENGTH.pack(len(s)) for s in t.streams)
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION) + _HEADER_LEN[FORMAT_VERSION].pack(len(fields)) + fields
    body += b"".join(s for t in container.tiles for s in t.streams) + alpha
    return body + _CRC.pack(zlib.crc32(body))


def unpack(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Container:
    """Parse and check a .gcz file; raise FormatError with a one-line reason if anything is wrong."""
    data = bytes(data)
    version, start, end = _prefix(data)
    if end + _CRC.size > len(data):
        raise FormatError("truncated .gcz file (header)")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[:-_CRC.size]) != crc:
        raise FormatError("corrupt .gcz file (CRC mismatch)" if _claims_fit(data) else "truncated .gcz file")
    with _collector_paused():
        header, tiles, alpha_len = _parse(version, data[start:end], max_pixels)
        payload = data[end:-_CRC.size]
        if sum(sum(lengths) for _, _, lengths in tiles) + alpha_len != len(payload):
            raise FormatError("corrupt .gcz file (stream lengths do not match the file size)")
        out, pos = [], 0
        for sym_crc, pix_crc, lengths in tiles:
            streams = []
            for n in lengths:
                streams.append(payload[pos:pos + n])
                pos += n
            out.append(TileData(tuple(streams), sym_crc, pix_crc))
    return Container(header, tuple(out), payload[pos:] if alpha_len else None)


@contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off while a tile table becomes objects: the table's tuples
    and lists hold no cycles, but a file of 65,536 tiles allocates enough of them to trigger
    collections of the whole heap (torch's included), which took 70% of its parse time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Header:
    """The image fields alone, from the first bytes of a file (at most HEADER_MAX_BYTES are needed).

    Checks the magic, version, field ranges and pixel limit but not the file CRC or the tile table,
    which need more of the file: for learning size and channels before decoding (Pillow's open, a
    bomb check).
    """
    version, start, _ = _prefix(data)
    return _parse_image(version, bytes(data[start:start + HEADER_MAX_BYTES]), max_pixels)[0]


def _prefix(data: bytes) -> tuple[int, int, int]:
    """Check magic and version; return the version and where the header fields start and end."""
    if len(data) < _PREFIX.size:
        raise FormatError("not a .gcz file (too short)" if data else "empty input")
    magic, version = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise FormatError("not a .gcz file (wrong magic bytes)")
    if version not in _HEADER_LEN:
        raise FormatError(f"unsupported .gcz format version {version} (this build reads 1 to {FORMAT_VERSION})")
    length = _HEADER_LEN[version]
    if _PREFIX.size + length.size > len(data):
        raise FormatError("truncated .gcz file (header)")
    start = _PREFIX.size + length.size
    return version, start, start + length.unpack_from(data, _PREFIX.size)[0]


def _claims_fit(data: bytes) -> bool:
    """Whether the header's stream lengths add up to within the file (to tell truncation from corruption)."""
    try:
        version, start, end = _prefix(data)
        _, tiles, alpha_len = _parse(version, data[start:end], DEFAULT_MAX_PIXELS * 64)
    except FormatError:
        return True
    return end + sum(sum(lengths) for _, _, lengths in tiles) + alpha_len + _CRC.size <= len(data)


_Tiles = list[tuple[int, int | None, list[int]]]  # per tile: symbols CRC, pixels CRC, stream lengths


def _parse(version: int, fields: bytes, max_pixels: int) -> tuple[Header, _Tiles, int]:
    """Header, tile table and alpha length from the header fields; every field checked."""
    header, pos = _parse_image(version, fields, max_pixels)
    if version == 1:
        return _parse_v1_tail(header, fields, pos)
    if pos + _TILING.size > len(fields):
        raise FormatError("corrupt .gcz header (too short)")
    size, overlap, count, alpha_len = _TILING.unpack_from(fields, pos)
    pos += _TILING.size
    if size < MIN_TILE_SIZE or 2 * overlap > size:
        raise FormatError(f"corrupt .gcz header (tiles of {size} pixels overlapping by {overlap})")
    if size > MAX_TILE_SIZE:
        raise FormatError(f"tiles of {size} pixels exceed the limit of {MAX_TILE_SIZE} (memory)")
    header = Header(**{**header.__dict__, "tile_size": size, "overlap": overlap})
    if count != header.grid.count or count * _TILE.size > len(fields) - pos:
        raise FormatError("corrupt .gcz header (tile count)")
    if (alpha_len > 0) != (header.channels == 4):
        raise FormatError(f"corrupt .gcz file (alpha stream for {header.channels} channels)")
    tiles, pos = _tile_table(fields, pos, count)
    if pos != len(fields):
        raise FormatError("corrupt .gcz header (tile table size)")
    return header, tiles, alpha_len


def _tile_table(fields: bytes, pos: int, count: int) -> tuple[_Tiles, int]:
    """The tile table at pos: per tile (symbols CRC, pixels CRC, stream lengths), and where it ends.
    Tables whose tiles all have the first tile's stream count (what encoders write) are read in
    one step, so that a file of many tiles parses in time proportional to its size, not slower."""
    if count and pos + _TILE.size <= len(fields):
        n = fields[pos + 8]
        record = np.dtype([("sym", "<u4"), ("pix", "<u4"), ("n", "u1"), ("lengths", "<u4", (n,))])
        if pos + count * record.itemsize <= len(fields):
            table = np.frombuffer(fields, record, count, pos)
            if (table["n"] == n).all():
                lengths = table["lengths"].reshape(count, n).tolist()
                return list(zip(table["sym"].tolist(), table["pix"].tolist(), lengths)), pos + count * record.itemsize
    tiles: _Tiles = []
    for _ in range(count):
        if pos + _TILE.size > len(fields):
            raise FormatError("corrupt .gcz header (tile table size)")
        sym_crc, pix_crc, n = _TILE.unpack_from(fields, pos)
        pos += _TILE.size
        if pos + n * _LENGTH.size > len(fields):
            raise FormatError("corrupt .gcz header (tile table size)")
        tiles.append((sym_crc, pix_crc, list(struct.unpack_from(f"<{n}I", fields, pos))))
        pos += n * _LENGTH.size
    return tiles, pos


def _parse_image(version: int, fields: bytes, max_pixels: int) -> tuple[Header, int]:
    if not fields:
        raise FormatError("corrupt .gcz header (empty)")
    pos = 1 + fields[0]
    if pos + _IMAGE.size > len(fields):
        raise FormatError("corrupt .gcz header (too short)")
    try:
        model = fields[1:pos].decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("corrupt .gcz header (model name is not ASCII)") from None
    sha, quality, width, height, channels, depth, coder, device = _IMAGE.unpack_from(fields, pos)
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
    header = Header(model, sha, quality, width, height, channels, depth, coder, Device(device), version=version)
    return header, pos + _IMAGE.size


def _parse_v1_tail(header: Header, fields: bytes, pos: int) -> tuple[Header, _Tiles, int]:
    """Version 1: image-wide checksums and a flat stream table; read as one tile covering the image."""
    if pos + _V1_CHECKS.size > len(fields):
        raise FormatError("corrupt .gcz header (too short)")
    sym_crc, _, n = _V1_CHECKS.unpack_from(fields, pos)  # (the pixel CRC of a float reconstruction: unchecked)
    pos += _V1_CHECKS.size
    if pos + n * _V1_STREAM.size != len(fields):
        raise FormatError("corrupt .gcz header (stream table size)")
    streams = [_V1_STREAM.unpack_from(fields, pos + i * _V1_STREAM.size) for i in range(n)]
    if any(kind > 1 for kind, _ in streams):
        raise FormatError("unknown stream kind")
    if [kind for kind, _ in streams] != [0] * (n - (header.channels == 4)) + [1] * (header.channels == 4):
        raise FormatError(f"corrupt .gcz file (stream kinds for {header.channels} channels)")
    if header.width * header.height > MAX_TILE_SIZE ** 2:
        raise FormatError(f"a version-1 file of {header.width}x{header.height} pixels exceeds the limit of "
                          f"{MAX_TILE_SIZE ** 2} pixels for untiled images (memory)")
    latents = [length for kind, length in streams if kind == 0]
    alpha_len = streams[-1][1] if header.channels == 4 else 0
    header = Header(**{**header.__dict__, "tile_size": max(header.width, header.height, MIN_TILE_SIZE),
                       "overlap": 0})
    return header, [(sym_crc, None, latents)], alpha_len

"""The seam between the Codec and a codec family: what a family does for one tile, both ways.

The Codec (codec.py) cuts images into tiles, packs and checks containers and blends decoded tiles;
a family turns a tile's pixels into streams and checksums, and back. Two families stand behind
this interface: amortized models with trained transforms (models/amortized.py: `ae`, `vae`), and
the per-image overfitted codec (overfit/coder.py), which optimizes a decoder for every tile and
sends it in the file. The registry names each model's family (models/registry.py).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from .container import Header, TileData
from .tiling import Tile


class SharpenError(ValueError):
    """Sharpening was asked for a file whose model has no (matching) GAN decoder, or a bad strength."""


class TileCoder(Protocol):
    """A loaded model of one family, on one device; shared by every Codec and thread."""

    sha256: bytes  # of the model's shipped file: files name it, decoders refuse others
    device: Any  # torch.device the family computes on

    def encode_tiles(self, tiles: Sequence[np.ndarray], quality: int, effort: str | None,
                     progress: bool, time_budget: float | None = None) -> list[TileData]:
        """Code tiles (uint8 h x w x 3 each, any sizes) at a quality (1..8): their streams, the
        CRC-32 of their symbols (symbols_crc below) and of the pixels the decoder will make.
        time_budget: seconds for all of them (families with efforts only; Codec checks)."""

    def check_streams(self, header: Header, tiles: Sequence[TileData]) -> None:
        """Raise FormatError when the streams are too short for the image the header claims
        (before anything is allocated for it)."""

    def decode_tile(self, header: Header, tile: Tile, data: TileData, verify: bool,
                    sharpen: float | None) -> np.ndarray:
        """One tile's pixels (uint8 h x w x 3), its checksums checked (pixels: if verify and
        comparable); FormatError / ChecksumError otherwise."""

    def decode_tiles(self, items: Sequence[tuple[Header, Tile, TileData]], verify: bool) -> list[np.ndarray]:
        """decode_tile for several tiles (a family may batch them): the same pixels."""


def symbols_crc(arrays: Iterable[np.ndarray]) -> int:
    """CRC-32 of symbol arrays as int32 little-endian, in order: what a tile's symbols_crc holds."""
    crc = 0
    for sym in arrays:
        crc = zlib.crc32(np.ascontiguousarray(sym, dtype="<i4").tobytes(), crc)
    return crc

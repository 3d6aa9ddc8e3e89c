"""The overfitted family for the Codec: fit each tile, code it; decode it with the integer decoder.

Tiles do not share networks: each tile gets its own latents and decoder (1,075 parameters with
the default architecture), fitted to its own pixels. That keeps tiles independent as the format
requires (a region decodes from the tiles it touches), lets tiles be encoded in parallel on
different machines, and bounds the encoder's memory by the tile, not the image. Decoding is pure
numpy in exact integer arithmetic (integer.py): the pixels are the same on every machine, so the
pixel checksum is checked whatever device encoded the file.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Sequence

import numpy as np

from ..container import ChecksumError, FormatError, Header, TileData
from ..family import SharpenError
from ..tiling import Tile
from . import bitstream, presets, tables


class OverfitCoder:
    """The coding tables (the shipped file `overfit.safetensors`) and a device to optimize on."""

    def __init__(self, name: str, data: bytes, device: str):
        import torch

        self.name = name
        self.device = torch.device(device)
        self.tables = tables.load(data)
        self.sha256 = hashlib.sha256(data).digest()

    def encode_tiles(self, tiles: Sequence[np.ndarray], quality: int, effort: str | None = None,
                     progress: bool = False, time_budget: float | None = None) -> list[TileData]:
        """Fit and code each tile in turn (seeded: the same tile, settings and machine give the same
        bytes). Under a time budget each tile gets the share of the time left that its pixels are
        of the pixels left, so time a tile leaves unused goes to the next ones. Once a tile has been
        coded, the time its coding took is known: the tiles after it keep that much each for their
        own coding, instead of the first tile's guess (fit.Budget), which on small tiles falls short
        of coding's fixed costs."""
        from .fit import Budget, fit

        lam = presets.LAMBDAS[quality - 1]
        preset = presets.EFFORTS[effort or presets.DEFAULT_EFFORT]
        begin = time.perf_counter()
        pixels_left = sum(t.shape[0] * t.shape[1] for t in tiles)
        coding: list[float] = []  # seconds each tile's coding took
        out = []
        for i, rgb in enumerate(tiles):
            label = "overfit" if len(tiles) == 1 else f"overfit tile {i + 1}/{len(tiles)}"
            budget = None
            if time_budget is not None:
                share = rgb.shape[0] * rgb.shape[1] / pixels_left
                left = max(time_budget - (time.perf_counter() - begin), 0.0)
                if coding:
                    reserve = max(coding) * (len(tiles) - i)
                    budget = Budget(max(left - reserve, 0.0) * share, reserve_steps=0.0)
                else:
                    budget = Budget(left * share)
                pixels_left -= rgb.shape[0] * rgb.shape[1]
            net = fit(rgb, lam, preset, self.device, progress, label, quality=quality, budget=budget)
            start = time.perf_counter()
            coded = bitstream.encode(net, rgb, lam, self.tables)
            coding.append(time.perf_counter() - start)
            out.append(TileData(coded.streams, coded.symbols_crc, zlib.crc32(coded.pixels.tobytes())))
        return out

    def check_streams(self, header: Header, tiles: Sequence[TileData]) -> None:
        """Each tile needs a preamble and an entropy stream long enough for the latents its size
        implies at the cheapest table's rate (half of it: constriction's rounding), so a small file
        cannot make the decoder allocate for a large image."""
        if any(len(t.streams) != 2 or len(t.streams[1]) < 4 for t in tiles):
            raise FormatError("corrupt .gcz file (an overfit tile needs a preamble and an entropy stream)")
        cheapest = float(self.tables.min_bits.min())
        latents = header.grid.areas()  # the finest grid alone: any architecture has it
        stream_bits = 8 * np.array([len(t.streams[1]) for t in tiles], np.int64) + 64
        if (0.5 * latents * cheapest > stream_bits).any():
            raise FormatError("corrupt .gcz file (streams too short for the image size it claims)")

    def decode_tile(self, header: Header, tile: Tile, data: TileData, verify: bool,
                    sharpen: float | None = None) -> np.ndarray:
        if sharpen is not None:
            raise SharpenError(f"model {self.name!r} has no GAN decoder, so its files cannot be sharpened")
        crc, pixels = bitstream.decode(data.streams, tile.height, tile.width, self.tables)
        if crc != data.symbols_crc:
            raise ChecksumError("decoded latents differ from the encoder's (symbols CRC mismatch)")
        if verify and data.pixels_crc is not None and zlib.crc32(pixels.tobytes()) != data.pixels_crc:
            raise ChecksumError(f"decoded pixels of tile {tile.index} differ from the encoder's (pixel CRC mismatch)")
        return pixels

    def decode_tiles(self, items: Sequence[tuple[Header, Tile, TileData]], verify: bool) -> list[np.ndarray]:
        return [self.decode_tile(h, t, d, verify) for h, t, d in items]

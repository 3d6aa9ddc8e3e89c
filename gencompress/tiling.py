"""Tiles: how an image is cut for coding in bounded memory, and how decoded tiles are put back.

Each axis of length L is cut into spans of `size` pixels that overlap by `overlap` pixels: span i
starts at i * (size - overlap) and ends at min(start + size, L), and there are
max(1, ceil((L - overlap) / (size - overlap))) of them (one when L <= size). A tile is a pair of
spans; tiles are numbered in raster order (row of tiles, then column). Each tile is coded on its
own, so memory follows the tile size, not the image size, and a region decodes from the tiles it
touches.

Seams are hidden by blending: where two tiles overlap, the decoder cross-fades them linearly,
weight (k + 0.5) / overlap rising across the overlap for the later tile and the complement for the
earlier one (per axis; a pixel's weight is the product of its two axis weights, so the weights of
the up-to-four tiles covering it sum to one). Outside overlaps a tile's pixels are used as decoded.
Pure numpy, no torch: docs/FORMAT.md states the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Region = tuple[int, int, int, int]  # x, y, width, height


def span_count(length: int, size: int, overlap: int) -> int:
    """How many spans cut an axis of `length` pixels (computed without building them)."""
    return 1 if length <= size else -(-(length - overlap) // (size - overlap))


def spans(length: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """The [start, end) pixel spans cutting an axis of `length` pixels."""
    step = size - overlap
    return [(i * step, min(i * step + size, length)) for i in range(span_count(length, size, overlap))]


def axis_weights(all_spans: list[tuple[int, int]], i: int, overlap: int) -> np.ndarray:
    """Blend weight of each pixel of span i: ramps over the overlaps with its neighbours, 1 elsewhere."""
    start, end = all_spans[i]
    w = np.ones(end - start, np.float32)
    if overlap and len(all_spans) > 1:  # (a lone span ignores the overlap a file may claim, however large)
        ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        if i > 0:
            w[:overlap] = ramp
        if i < len(all_spans) - 1:
            w[-overlap:] = ramp[::-1]
    return w


@dataclass(frozen=True)
class Tile:
    index: int  # raster order
    row: int
    col: int
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


@dataclass(frozen=True)
class Grid:
    """The tiles of a width x height image cut into size-pixel tiles overlapping by overlap pixels."""

    width: int
    height: int
    size: int
    overlap: int

    def __post_init__(self) -> None:
        if not 0 <= 2 * self.overlap <= self.size:
            raise ValueError(f"tile overlap must be between 0 and half the tile size, got {self.overlap} "
                             f"for tiles of {self.size}")

    @property
    def count(self) -> int:
        return span_count(self.width, self.size, self.overlap) * span_count(self.height, self.size, self.overlap)

    def tiles(self, region: Region | None = None) -> list[Tile]:
        """The tiles in raster order, or only those that cover part of region (x, y, w, h)."""
        rx, ry, rw, rh = region or (0, 0, self.width, self.height)
        xs = spans(self.width, self.size, self.overlap)
        out = []
        for r, (y0, y1) in enumerate(spans(self.height, self.size, self.overlap)):
            for c, (x0, x1) in enumerate(xs):
                if y0 < ry + rh and ry < y1 and x0 < rx + rw and rx < x1:
                    out.append(Tile(r * len(xs) + c, r, c, x0, y0, x1, y1))
        return out

    def check_region(self, region: Region) -> Region:
        """region as ints, or ValueError when it is empty or reaches outside the image."""
        x, y, w, h = (int(v) for v in region)
        if w < 1 or h < 1 or x < 0 or y < 0 or x + w > self.width or y + h > self.height:
            raise ValueError(f"region {x},{y},{w},{h} (x,y,width,height) is empty or outside the "
                             f"{self.width}x{self.height} image")
        return x, y, w, h

    def assemble(self, decode_tile: Callable[[Tile], np.ndarray], region: Region | None = None) -> np.ndarray:
        """Blend decoded tiles (uint8 tile.height x tile.width x 3) into the region's uint8 pixels.

        Works down one row of tiles at a time and calls decode_tile once per tile that touches the
        region: only one row of tiles (plus the overlap rows) is held in float32 at once.
        """
        rx, ry, rw, rh = region or (0, 0, self.width, self.height)
        xs = spans(self.width, self.size, self.overlap)
        ys = spans(self.height, self.size, self.overlap)
        out = np.empty((rh, rw, 3), np.uint8)
        pending = np.zeros((0, rw, 3), np.float32)  # blended rows [done, done + len(pending)) not yet final
        done = ry
        by_row: dict[int, list[Tile]] = {}
        for t in self.tiles(region):
            by_row.setdefault(t.row, []).append(t)
        for r, row_tiles in sorted(by_row.items()):
            y0, y1 = ys[r]
            band_end = min(y1, ry + rh)
            if band_end > done + len(pending):
                pending = np.concatenate([pending, np.zeros((band_end - done - len(pending), rw, 3), np.float32)])
            wy = axis_weights(ys, r, self.overlap)
            a0 = max(y0, ry)
            for t in row_tiles:
                pixels = decode_tile(t)
                b0, b1 = max(t.x0, rx), min(t.x1, rx + rw)
                w = wy[a0 - y0:band_end - y0, None] * axis_weights(xs, t.col, self.overlap)[None, b0 - t.x0:b1 - t.x0]
                pending[a0 - done:band_end - done, b0 - rx:b1 - rx] += (
                    pixels[a0 - y0:band_end - y0, b0 - t.x0:b1 - t.x0] * w[..., None])
            final = min(ys[r + 1][0], ry + rh) if r + 1 < len(ys) else ry + rh
            final = max(final, done)
            out[done - ry:final - ry] = np.clip(np.rint(pending[:final - done]), 0, 255)
            pending, done = pending[final - done:], final
        return out

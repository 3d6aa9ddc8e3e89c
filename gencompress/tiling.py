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

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterator

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

    def shapes(self) -> dict[tuple[int, int], int]:
        """How many tiles there are of each (height, width): a few shapes, however many tiles."""
        rows = Counter(y1 - y0 for y0, y1 in spans(self.height, self.size, self.overlap))
        cols = Counter(x1 - x0 for x0, x1 in spans(self.width, self.size, self.overlap))
        return {(h, w): m * n for h, m in rows.items() for w, n in cols.items()}

    def areas(self) -> np.ndarray:
        """Each tile's pixel count (int64), in raster order: per-tile checks on files of many tiles
        without building a Tile for each."""
        rows = np.array([y1 - y0 for y0, y1 in spans(self.height, self.size, self.overlap)], np.int64)
        cols = np.array([x1 - x0 for x0, x1 in spans(self.width, self.size, self.overlap)], np.int64)
        return np.outer(rows, cols).ravel()

    def tiles(self, region: Region | None = None) -> list[Tile]:
        """The tiles in raster order, or only those that cover part of region (x, y, w, h)."""
        return [t for row in self._rows(region) for t in row]

    def _rows(self, region: Region | None = None) -> Iterator[list[Tile]]:
        """The tiles that cover part of region, one row of tiles at a time (built as they are asked for)."""
        rx, ry, rw, rh = region or (0, 0, self.width, self.height)
        xs = spans(self.width, self.size, self.overlap)
        cols = [(c, x0, x1) for c, (x0, x1) in enumerate(xs) if x0 < rx + rw and rx < x1]
        for r, (y0, y1) in enumerate(spans(self.height, self.size, self.overlap)):
            if y0 < ry + rh and ry < y1:
                yield [Tile(r * len(xs) + c, r, c, x0, y0, x1, y1) for c, x0, x1 in cols]

    def check_region(self, region: Region) -> Region:
        """region as ints, or ValueError when it is empty or reaches outside the image."""
        x, y, w, h = (int(v) for v in region)
        if w < 1 or h < 1 or x < 0 or y < 0 or x + w > self.width or y + h > self.height:
            raise ValueError(f"region {x},{y},{w},{h} (x,y,width,height) is empty or outside the "
                             f"{self.width}x{self.height} image")
        return x, y, w, h

    def assemble(self, decode_tile: Callable[[Tile], np.ndarray], region: Region | None = None) -> np.ndarray:
        """Blend decoded tiles (uint8 tile.height x tile.width x 3) into the region's uint8 pixels.

        Calls decode_tile once per tile that touches the region, in raster order, and finishes each
        tile's pixels before the next: besides the output, only the overlap strips still waiting for
        a neighbour (overlap rows across the region, overlap columns of one tile) and one tile are
        held in float32. Sums run in tile order, as docs/FORMAT.md states.
        """
        rx, ry, rw, rh = region or (0, 0, self.width, self.height)
        xs = spans(self.width, self.size, self.overlap)
        ys = spans(self.height, self.size, self.overlap)
        out = np.empty((rh, rw, 3), np.uint8)
        left = None  # the strips' column origin: the first tile's
        strip = np.zeros((0, 0, 3), np.float32)  # partial sums of the rows shared with the next row of tiles
        strip_y = 0
        for row_tiles in self._rows(region):
            r = row_tiles[0].row
            left = row_tiles[0].x0 if left is None else left
            y0, y1 = ys[r]
            ny = ys[r + 1][0] if r + 1 < len(ys) else y1  # rows from here on are shared with the next row
            next_strip = np.zeros((y1 - ny, max(t.x1 for t in row_tiles) - left, 3), np.float32)
            carry = None  # partial sums of the columns shared with the next tile of this row
            wy = axis_weights(ys, r, self.overlap)
            for t in row_tiles:
                nx = xs[t.col + 1][0] if t.col + 1 < len(xs) else t.x1
                acc = np.zeros((t.height, t.width, 3), np.float32)
                if strip_y <= y0 < strip_y + len(strip):  # the row of tiles above summed into the shared rows
                    acc[:strip_y + len(strip) - y0] = strip[y0 - strip_y:, t.x0 - left:t.x1 - left]
                if carry is not None and carry[0] == t.x0:  # the tile to the left summed into the shared columns
                    acc[:, :carry[1].shape[1]] = carry[1]
                w = wy[:, None] * axis_weights(xs, t.col, self.overlap)[None, :]
                acc += decode_tile(t) * w[..., None]
                carry = (nx, acc[:, nx - t.x0:])
                next_strip[:, t.x0 - left:t.x1 - left] = acc[ny - y0:]
                self._finish(out, acc[:ny - y0, :nx - t.x0], t.x0, y0, (rx, ry, rw, rh))
            strip, strip_y = next_strip, ny
        return out

    @staticmethod
    def _finish(out: np.ndarray, final: np.ndarray, x0: int, y0: int, region: Region) -> None:
        """Round the final sums of a rectangle at (x0, y0) into the part of out (the region) it covers."""
        rx, ry, rw, rh = region
        a, b = max(y0, ry), min(y0 + final.shape[0], ry + rh)
        c, d = max(x0, rx), min(x0 + final.shape[1], rx + rw)
        if a < b and c < d:
            out[a - ry:b - ry, c - rx:d - rx] = np.clip(np.rint(final[a - y0:b - y0, c - x0:d - x0]), 0, 255)

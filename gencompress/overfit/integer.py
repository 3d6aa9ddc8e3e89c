"""The overfitted codec's decoder in exact integer arithmetic (numpy), shared by encoder and decoder.

Every value is an integer held in float64: parameters are integers at a step 2^-k chosen per
module, activations integers at 2^-FRACTION_BITS, and each layer ends with a floor division by a
power of two. Magnitudes are clipped so that every product and every partial sum stays below 2^53,
where float64 is exact: BLAS may sum in any order, on any number of threads, with or without
AVX-512 or FMA, and get the same integers. So a file decodes to the same latents and the same
pixels on every machine, which is what lets the pixel checksum be checked everywhere.

The encoder runs this same code on its final parameters, which makes its reconstruction, its
symbols and its coding tables those of the decoder by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import tables
from .architecture import (ACTIVATION_LIMIT, FRACTION_BITS, LATENT_LIMIT, NEIGHBOUR_OFFSETS, PARENT_OFFSETS,
                           Architecture)

ONE = float(1 << FRACTION_BITS)

# take(grid, anchors, shift, table_index) -> symbols: the encoder hands over its known symbols,
# the decoder reads them from the stream.
Take = Callable[[int, bool, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class IntegerDecoder:
    """An architecture with its quantized parameters: tensors of integers (float64) and per
    module the step exponent k (a parameter's value is integer * 2^-k)."""

    arch: Architecture
    params: dict[str, np.ndarray]
    steps: dict[str, int]

    def latents(self, height: int, width: int, take: Take) -> list[np.ndarray]:
        """The integer latent grids (finest first), decoded coarsest first in checkerboard passes.

        For each pass the entropy model computes every element's shift and table from the grids
        decoded so far, and take() supplies the symbols (latent - shift).
        """
        shapes = self.arch.grid_shapes(height, width)
        grids: list[np.ndarray] = [np.zeros(0)] * len(shapes)
        parent = None
        for i in reversed(range(len(shapes))):
            h, w = shapes[i]
            grid = np.zeros((h, w))
            for anchors in (True, False):
                where = checkerboard(h, w, anchors)
                if not where.any():
                    continue
                shift, index = self._pass_tables(grid, parent, anchors, where)
                grid[where] = take(i, anchors, shift, index) + shift
            grids[i] = grid
            parent = grid
        return grids

    def _pass_tables(self, grid: np.ndarray, parent: np.ndarray | None, anchors: bool,
                     mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shift and table index of every latent of one pass (mask: its checkerboard), in raster
        order, computed over bands of rows so that the contexts held at once stay small."""
        h, w = grid.shape
        band = max(1, ROW_BLOCK // w)
        shifts, indexes = [], []
        for r0 in range(0, h, band):
            r1 = min(h, r0 + band)
            where = mask[r0:r1]
            context = parent_context(parent, h, w, r0, r1)
            feats = context[:, where] if anchors else np.concatenate(
                [neighbour_context(grid, r0, r1)[:, where], context[:, where]])
            shift, index = tables.table_index(*self.arm(feats.T, "arm_anchor" if anchors else "arm_other"))
            shifts.append(shift)
            indexes.append(index)
        return np.concatenate(shifts), np.concatenate(indexes)

    def arm(self, feats: np.ndarray, module: str) -> tuple[np.ndarray, np.ndarray]:
        """Fixed-point mean and ln-scale (int64, at 2^-FRACTION_BITS) from contexts (n, inputs) of latents."""
        k = self.steps[module]
        layers = [(self.params[f"{module}.{i}.weight"], self.params[f"{module}.{i}.bias"], k) for i in range(3)]
        x = _rows_mlp(feats, layers, LATENT_LIMIT)
        return x[:, 0].astype(np.int64), x[:, 1].astype(np.int64)

    def synthesize(self, grids: list[np.ndarray]) -> np.ndarray:
        """Pixels (H, W, 3) uint8 from the latent grids: upsampling, then the synthesis network."""
        h, w = grids[0].shape
        taps, k = self.params["upsampling.taps"], self.steps["upsampling"]
        x = np.clip(grids[-1], -LATENT_LIMIT, LATENT_LIMIT)[None] * ONE
        for i in reversed(range(len(grids) - 1)):
            x = upsample(x, taps[i], k)[:, :grids[i].shape[0], :grids[i].shape[1]]
            x = np.concatenate([x, np.clip(grids[i], -LATENT_LIMIT, LATENT_LIMIT)[None] * ONE])
        p, ks = self.params, self.steps["synthesis"]
        layers = [(p[f"synthesis.{i}.weight"], p[f"synthesis.{i}.bias"], ks) for i in range(2)]
        x = _rows_mlp(x.reshape(x.shape[0], -1).T, layers).T.reshape(3, h, w)
        x = np.maximum(x + conv3x3(x, p["synthesis.2.weight"], p["synthesis.2.bias"], ks), 0)
        x = x + conv3x3(x, p["synthesis.3.weight"], p["synthesis.3.bias"], ks)
        pixels = np.floor(np.clip(x, 0, ONE) * 255 / ONE + 0.5)
        return pixels.transpose(1, 2, 0).astype(np.uint8)


ROW_BLOCK = 1 << 16  # rows per block in _rows_mlp: memory stays that of a block, whatever the tile


def _rows_mlp(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray, int]], clip: float | None = None) -> np.ndarray:
    """(n, in) -> (n, out): per row, fixed-point layers floor((x W^T + b 2^F) / 2^k), clipped, with
    ReLU between them; with `clip`, x holds integers clipped to +-clip and scaled by 2^F first.
    Computed in blocks of rows, each row on its own: exact whatever the block."""
    out = np.empty((x.shape[0], layers[-1][0].shape[0]))
    for start in range(0, x.shape[0], ROW_BLOCK):
        block = x[start:start + ROW_BLOCK]
        if clip is not None:
            block = np.clip(block, -clip, clip) * ONE
        for i, (weight, bias, k) in enumerate(layers):
            block = block @ weight.T
            block += bias * ONE
            block = _rescale(block, k)
            if i < len(layers) - 1:
                block = np.maximum(block, 0)
        out[start:start + ROW_BLOCK] = block
    return out


def checkerboard(h: int, w: int, anchors: bool) -> np.ndarray:
    """Boolean (h, w) mask of the anchors ((row + col) even) or of the other half."""
    parity = (np.arange(h)[:, None] + np.arange(w)[None]) % 2
    return parity == (0 if anchors else 1)


def _shifted(padded: np.ndarray, pad: int, dy: int, dx: int, h: int, w: int) -> np.ndarray:
    return padded[pad + dy:pad + dy + h, pad + dx:pad + dx + w]


def neighbour_context(grid: np.ndarray, r0: int = 0, r1: int | None = None) -> np.ndarray:
    """(12, r1 - r0, w): each element's values at NEIGHBOUR_OFFSETS (0 outside the grid), rows r0..r1."""
    h, w = grid.shape
    r1 = h if r1 is None else r1
    padded = np.pad(grid[max(r0 - 2, 0):r1 + 2], ((2 - min(r0, 2), 2 - min(h - r1, 2)), (2, 2)))
    return np.stack([_shifted(padded, 2, dy, dx, r1 - r0, w) for dy, dx in NEIGHBOUR_OFFSETS])


def parent_context(parent: np.ndarray | None, h: int, w: int, r0: int = 0, r1: int | None = None) -> np.ndarray:
    """(9, r1 - r0, w): the 3x3 neighbourhood of each element's parent (row // 2, col // 2) in the
    coarser grid (0 outside it, and everywhere for the coarsest grid), rows r0..r1 of an h x w grid."""
    r1 = h if r1 is None else r1
    if parent is None:
        return np.zeros((len(PARENT_OFFSETS), r1 - r0, w))
    ph, pw = parent.shape
    p0, p1 = r0 // 2, (r1 + 1) // 2  # the parent rows of rows r0..r1
    padded = np.pad(parent[max(p0 - 1, 0):p1 + 1], ((1 - min(p0, 1), 1 - min(ph - p1, 1)), (1, 1)))
    near = np.stack([_shifted(padded, 1, dy, dx, p1 - p0, pw) for dy, dx in PARENT_OFFSETS])
    return near.repeat(2, axis=1).repeat(2, axis=2)[:, r0 - 2 * p0:r0 - 2 * p0 + r1 - r0, :w]


def upsample(x: np.ndarray, taps: np.ndarray, k: int) -> np.ndarray:
    """(C, h, w) -> (C, 2h, 2w): the separable symmetric filter along rows, then columns."""
    return _upsample_last(_upsample_last(x, taps, k).swapaxes(1, 2), taps, k).swapaxes(1, 2)


def _upsample_last(x: np.ndarray, taps: np.ndarray, k: int) -> np.ndarray:
    n = x.shape[-1]
    p = np.pad(x, ((0, 0), (0, 0), (2, 2)), mode="edge")
    g0, g1, g2, g3 = taps
    even = g0 * p[..., 0:n] + g1 * p[..., 1:n + 1] + g2 * p[..., 2:n + 2] + g3 * p[..., 3:n + 3]
    odd = g3 * p[..., 1:n + 1] + g2 * p[..., 2:n + 2] + g1 * p[..., 3:n + 3] + g0 * p[..., 4:n + 4]
    return _rescale(np.stack([even, odd], axis=-1).reshape(*x.shape[:-1], 2 * n), k)


def conv3x3(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, k: int) -> np.ndarray:
    """(C, h, w) -> (C', h, w), edge-replicated borders, in fixed point."""
    c, h, w = x.shape
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    acc = np.broadcast_to(bias[:, None, None] * ONE, (weight.shape[0], h, w)).copy()
    for dy in range(3):
        for dx in range(3):
            acc += np.tensordot(weight[:, :, dy, dx], p[:, dy:dy + h, dx:dx + w], axes=1)
    return _rescale(acc, k)


def _rescale(acc: np.ndarray, k: int) -> np.ndarray:
    """floor(acc / 2^k), clipped to the activation range, in place (exact: a power-of-two scaling)."""
    acc *= 2.0 ** -k
    np.floor(acc, out=acc)
    np.minimum(acc, ACTIVATION_LIMIT, out=acc)  # (np.clip is several times slower in numpy 1.x)
    return np.maximum(acc, -ACTIVATION_LIMIT, out=acc)


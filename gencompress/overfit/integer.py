"""The overfitted codec's decoder in exact integer arithmetic (numpy), shared by encoder and decoder.

Every value is an integer held in float64: parameters are integers at a step 2^-k per module
(its tensors' finest: bitstream.py scales the others' integers to it), activations integers at
2^-FRACTION_BITS, and each layer ends with a floor division by a power of two. Magnitudes are
clipped so that every product and every partial sum stays below 2^53, where float64 is exact:
BLAS may sum in any order, on any number of threads, with or without AVX-512 or FMA, and get the
same integers. So a file decodes to the same latents and the same
pixels on every machine, which is what lets the pixel checksum be checked everywhere. For the
same reason a layer's bands of rows may run on several threads (_map): each band's arithmetic is
the same whichever thread runs it.

The encoder runs this same code on its final parameters, which makes its reconstruction, its
symbols and its coding tables those of the decoder by construction.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

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
        for i in reversed(range(len(shapes))):
            h, w = shapes[i]
            grid = np.zeros((h, w))
            coarser = grids[i + 1:i + 2 + self.arch.ancestors]  # the parent, then the ancestors read
            for anchors in (True, False):
                where = checkerboard(h, w, anchors)
                if not where.any():
                    continue
                shift, index = self._pass_tables(grid, coarser, anchors, where)
                grid[where] = take(i, anchors, shift, index) + shift
            grids[i] = grid
        return grids

    def _pass_tables(self, grid: np.ndarray, coarser: list[np.ndarray], anchors: bool,
                     mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shift and table index of every latent of one pass (mask: its checkerboard), in raster
        order, given the decoded coarser grids it reads (parent first, then ancestors; fewer near
        the coarsest grid, read as zeros). A pass is two strided rectangles of the grid
        (pass_regions), whose contexts are strided windows of the padded grids: no context is
        built for the other half. Computed over bands of rectangle rows, so that the contexts
        held at once stay small."""
        module = "arm_anchor" if anchors else "arm_other"
        padded = np.pad(np.clip(grid, -LATENT_LIMIT, LATENT_LIMIT), 2)  # what the entropy model may see
        parent = np.pad(np.clip(coarser[0], -LATENT_LIMIT, LATENT_LIMIT), 1) if coarser else None
        ancestors = [np.clip(g, -LATENT_LIMIT, LATENT_LIMIT) for g in coarser[1:]]
        shift, index = np.zeros(grid.shape, np.int64), np.zeros(grid.shape, np.int64)

        def band(job: tuple[int, int, int, int, int]) -> None:
            row, col, cols, i0, i1 = job
            zeros = np.zeros((i1 - i0, cols))
            # position (row + 2i, col + 2j) has its parent at (i, j), ancestor d at (i >> d, j >> d)
            feats = [parent[1 + i0 + dy:1 + i1 + dy, 1 + dx:1 + cols + dx] if parent is not None else zeros
                     for dy, dx in PARENT_OFFSETS]
            for d in range(1, self.arch.ancestors + 1):
                feats.append(ancestors[d - 1][(np.arange(i0, i1) >> d)[:, None], (np.arange(cols) >> d)[None]]
                             if d <= len(ancestors) else zeros)
            if not anchors:
                r, c = 2 + row + 2 * i0, 2 + col
                feats = [padded[r + dy:r + dy + 2 * (i1 - i0):2, c + dx:c + dx + 2 * cols:2]
                         for dy, dx in NEIGHBOUR_OFFSETS] + feats
            x = np.stack(feats).reshape(len(feats), -1).T
            band_shift, band_index = tables.table_index(*self.arm(x, module))
            shift[row + 2 * i0:row + 2 * i1:2, col::2] = band_shift.reshape(i1 - i0, cols)
            index[row + 2 * i0:row + 2 * i1:2, col::2] = band_index.reshape(i1 - i0, cols)

        jobs = []
        for row, col in pass_regions(anchors):
            rows, cols = len(range(row, grid.shape[0], 2)), len(range(col, grid.shape[1], 2))
            step = max(1, ROW_BLOCK // max(cols, 1))
            jobs += [(row, col, cols, i0, min(rows, i0 + step)) for i0 in range(0, rows, step)]
        if grid.size > ROW_BLOCK:
            _map(band, jobs)
        else:  # a small grid's two rectangles: threads would cost more than they share
            for job in jobs:
                band(job)
        return shift[mask], index[mask]

    def arm(self, feats: np.ndarray, module: str) -> tuple[np.ndarray, np.ndarray]:
        """Fixed-point mean and ln-scale (int64, at 2^-FRACTION_BITS) from contexts (n, inputs) of
        latents, integers within +-LATENT_LIMIT."""
        k = self.steps[module]
        layers = [(self.params[f"{module}.{i}.weight"], self.params[f"{module}.{i}.bias"], k) for i in range(3)]
        x = _rows_mlp(feats, layers, ONE)
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
        x = conv3x3(x, p["synthesis.2.weight"], p["synthesis.2.bias"], ks, residual=x, relu=True)
        x = conv3x3(x, p["synthesis.3.weight"], p["synthesis.3.bias"], ks, residual=x)
        pixels = np.empty((h, w, 3), np.uint8)
        rows = max(1, ROW_BLOCK // w)

        def band(r0: int) -> None:  # to 8 bits: floor(clip(x, 0, 1) * 255 + 1/2)
            q = np.clip(x[:, r0:r0 + rows], 0, ONE) * (255 / ONE)
            q += 0.5
            pixels[r0:r0 + rows] = np.floor(q, out=q).transpose(1, 2, 0)

        _map(band, range(0, h, rows))
        return pixels


ROW_BLOCK = 1 << 16  # values per block (_rows_mlp, passes, convolutions): memory bounded whatever the tile


def _rows_mlp(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray, int]], scale: float = 1.0) -> np.ndarray:
    """(n, in) -> (n, out): per row, fixed-point layers floor((x W^T + b 2^F) / 2^k), clipped, with
    ReLU between them, of x * scale (ONE for integer inputs: activations are at 2^-F). The scales
    go into the weights, exactly (powers of two), so no pass over the activations is spent on them.
    Computed in blocks of rows, each row on its own: exact whatever the block."""
    out = np.empty((x.shape[0], layers[-1][0].shape[0]))
    scaled = [(weight.T * (2.0 ** -k * (scale if i == 0 else 1.0)), bias * (ONE * 2.0 ** -k))
              for i, (weight, bias, k) in enumerate(layers)]

    def block(start: int) -> None:
        y = x[start:start + ROW_BLOCK]
        for i, (weight, bias) in enumerate(scaled):
            y = y @ weight
            y += bias
            _floor_clip(y, 0.0 if i < len(scaled) - 1 else -ACTIVATION_LIMIT)  # ReLU between layers
        out[start:start + ROW_BLOCK] = y

    _map(block, range(0, x.shape[0], ROW_BLOCK))
    return out


def checkerboard(h: int, w: int, anchors: bool) -> np.ndarray:
    """Boolean (h, w) mask of the anchors ((row + col) even) or of the other half."""
    parity = (np.arange(h)[:, None] + np.arange(w)[None]) % 2
    return parity == (0 if anchors else 1)


def pass_regions(anchors: bool) -> tuple[tuple[int, int], tuple[int, int]]:
    """A checkerboard pass as two strided rectangles, each (first row, first column) of a stride
    of 2: the anchors are (even, even) and (odd, odd) positions, the other half the rest. The
    parent of position (2i + a, 2j + b) is (i, j) in either."""
    return ((0, 0), (1, 1)) if anchors else ((0, 1), (1, 0))


def upsample(x: np.ndarray, taps: np.ndarray, k: int) -> np.ndarray:
    """(C, h, w) -> (C, 2h, 2w): the separable symmetric filter along rows, then columns."""
    return _upsample_last(_upsample_last(x, taps, k).swapaxes(1, 2), taps, k).swapaxes(1, 2)


def _upsample_last(x: np.ndarray, taps: np.ndarray, k: int) -> np.ndarray:
    c, h, n = x.shape
    p = np.pad(x, ((0, 0), (0, 0), (2, 2)), mode="edge")
    g0, g1, g2, g3 = taps * 2.0 ** -k
    out = np.empty((c, h, n, 2))  # even and odd outputs interleaved
    rows = max(1, ROW_BLOCK // n)

    def band(r0: int) -> None:
        q, o = p[:, r0:r0 + rows], out[:, r0:r0 + rows]
        o[..., 0] = g0 * q[..., 0:n] + g1 * q[..., 1:n + 1] + g2 * q[..., 2:n + 2] + g3 * q[..., 3:n + 3]
        o[..., 1] = g3 * q[..., 1:n + 1] + g2 * q[..., 2:n + 2] + g1 * q[..., 3:n + 3] + g0 * q[..., 4:n + 4]
        _floor_clip(o)

    _map(band, range(0, h, rows))
    return out.reshape(c, h, 2 * n)


def conv3x3(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, k: int, residual: np.ndarray | None = None,
            relu: bool = False) -> np.ndarray:
    """(C, h, w) -> (C', h, w), edge-replicated borders, in fixed point: one product per band of
    rows of the weights (C', 9 C) and the band's nine shifted copies (9 C, pixels), which runs 2-3x
    faster than nine small products over strided views. With residual, that added to the result
    (then max(., 0) if relu) in the same band, while its rows are in cache."""
    c, h, w = x.shape
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    matrix = (weight * 2.0 ** -k).transpose(0, 2, 3, 1).reshape(weight.shape[0], 9 * c)
    bias = (bias * (ONE * 2.0 ** -k))[:, None]
    out = np.empty((weight.shape[0], h, w))
    rows = max(1, ROW_BLOCK // w)

    def band(r0: int) -> None:
        r1 = min(h, r0 + rows)
        shifted = np.empty((3, 3, c, r1 - r0, w))
        for dy in range(3):
            for dx in range(3):
                shifted[dy, dx] = p[:, r0 + dy:r1 + dy, dx:dx + w]
        acc = matrix @ shifted.reshape(9 * c, -1)
        acc += bias
        acc = _floor_clip(acc).reshape(-1, r1 - r0, w)
        if residual is not None:
            acc += residual[:, r0:r1]
            if relu:
                np.maximum(acc, 0, out=acc)
        out[:, r0:r1] = acc

    _map(band, range(0, h, rows))
    return out


T = TypeVar("T")
_worker = threading.local()
_pools: dict[int, ThreadPoolExecutor] = {}


def threads() -> int:
    """Threads the decoder spreads a layer's bands over: OMP_NUM_THREADS where set (the knob torch
    and BLAS read too), else the CPUs this process may use, at most 4."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _map(fn: Callable[[T], None], items: Iterable[T]) -> None:
    """fn on every item (independent bands of one layer, each writing its own rows), on threads():
    numpy releases the interpreter lock inside its products and elementwise loops, so bands run on
    several cores at once. A band's arithmetic does not depend on which thread runs it, so the
    integers are the same as one thread's. Serial for one item, or inside a band already."""
    items, n = list(items), threads()
    if getattr(_worker, "busy", False):
        for item in items:
            fn(item)
        return

    def run(item: T) -> None:
        _worker.busy = True
        try:
            fn(item)
        finally:
            _worker.busy = False

    with _blas_at_one_thread:  # BLAS's own threads would compete with the bands'
        if n < 2 or len(items) < 2:
            for item in items:
                run(item)
            return
        pool = _pools.get(n) or _pools.setdefault(n, ThreadPoolExecutor(n, thread_name_prefix="gcz-decode"))
        for _ in pool.map(run, items):  # re-raises a band's exception here
            pass


@functools.cache
def _blas() -> ThreadpoolController:
    """The BLAS libraries loaded (numpy's OpenBLAS)."""
    return ThreadpoolController()


class _BlasAtOneThread:
    """BLAS held at one thread while a layer's bands run: its products are too small for BLAS's
    threads to pay, and theirs spin beside the bands' threads (kodim01 decoded in 0.41 s with BLAS
    at one thread, 0.48 s at two; benchmarks/overfit_ab.py). Counted, so that decodes running in
    several threads at once give BLAS back its own thread count when the last of them is done."""

    def __init__(self) -> None:
        self.lock, self.users, self.limiter = threading.Lock(), 0, None

    def __enter__(self) -> None:
        with self.lock:
            if not self.users:
                self.limiter = _blas().limit(limits=1, user_api="blas")
            self.users += 1

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.users -= 1
            if not self.users:
                self.limiter.restore_original_limits()


_blas_at_one_thread = _BlasAtOneThread()


def _after_fork_in_child() -> None:
    """A forked child has none of its parent's threads: it makes its own pools and counts afresh."""
    global _blas_at_one_thread
    _pools.clear()
    _blas_at_one_thread = _BlasAtOneThread()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _floor_clip(acc: np.ndarray, low: float = -ACTIVATION_LIMIT) -> np.ndarray:
    """floor(acc), clipped to [low, ACTIVATION_LIMIT], in place. The callers scale weights and
    biases by 2^-k before the products, which is exact (a power of two; every partial sum is an
    integer times 2^-k below 2^53 of them) and saves a pass over the activations: the floor of the
    scaled sum is floor(sum / 2^k)."""
    np.floor(acc, out=acc)
    np.minimum(acc, ACTIVATION_LIMIT, out=acc)  # (np.clip is several times slower in numpy 1.x)
    return np.maximum(acc, low, out=acc)


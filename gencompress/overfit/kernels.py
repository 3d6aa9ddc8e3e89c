"""Hand-written autograd functions for the fit's three hot spots (network.py uses them).

Each computes what a few lines of plain torch would; what differs is the backward. Autograd
differentiates a slice by allocating a zero tensor the size of its source and copying the
gradient in, once per slice: the entropy model's contexts (12 neighbours and 9 parents of every
latent) and the upsampling's shifted taps made hundreds of such tensors per step. Here each
backward accumulates into one buffer, and the rate's Laplace term is one function with its
derivatives written out instead of a dozen recorded operations. Measured by
`python benchmarks/overfit_ab.py` (README, "Cheaper steps").

- windows(): values of grids at given offsets, read over strided rectangles (checkerboard
  passes, parent positions), zero outside the grid, stacked in one buffer;
- laplace_bits(): bits of latents under discretized Laplace distributions;
- upsample(): the learned x2 upsampling (architecture.py), separable and replicate-padded.

tests/test_overfit_kernels.py checks each against plain torch, gradients by torch.autograd.gradcheck.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

# A rectangle of a grid read with a stride: (row0, row_step, rows, col0, col_step, cols).
Region = tuple[int, int, int, int, int, int]


def windows(*reads: tuple[Tensor | None, Sequence[tuple[int, int]], int, Sequence[Region]]) -> Tensor:
    """Rows of values read from grids, stacked: for each read (grid, offsets, radius, regions),
    one row per offset (dy, dx) holding grid[y + dy, x + dx] for every position (y, x) of the
    regions in turn (each in raster order), zero where that falls outside the grid or where the
    grid is None. `radius` bounds |dy| and |dx|; the reads' regions must hold as many positions.
    One output buffer for all reads: the entropy model's features need no concatenation."""
    specs = tuple((grid is not None, tuple(offsets), radius, tuple(regions)) for grid, offsets, radius, regions in reads)
    sizes = {sum(r[2] * r[5] for r in regions) for *_, regions in specs}
    if len(sizes) != 1 or not any(present for present, *_ in specs):
        raise ValueError("windows: reads over different numbers of positions, or no grid")
    return _Windows.apply(specs, sizes.pop(), *(grid for grid, *_ in reads if grid is not None))


def _views(padded: Tensor, offsets, radius: int, regions):
    """(offset index, column slice, strided view of padded, its shape) for every offset and region."""
    for k, (dy, dx) in enumerate(offsets):
        start = 0
        for r0, rs, rows, c0, cs, cols in regions:
            y, x = radius + dy + r0, radius + dx + c0
            view = padded[y:y + rs * (rows - 1) + 1:rs, x:x + cs * (cols - 1) + 1:cs] if rows and cols else None
            yield k, slice(start, start + rows * cols), view, (rows, cols)
            start += rows * cols


class _Windows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, specs, size: int, *grids: Tensor) -> Tensor:
        rows = sum(len(offsets) for _, offsets, _, _ in specs)
        # every entry of a present grid's rows is written (from its zero padding outside it)
        full = all(present for present, *_ in specs)
        out = grids[0].new_empty(rows, size) if full else grids[0].new_zeros(rows, size)
        row, it = 0, iter(grids)
        for present, offsets, radius, regions in specs:
            if present:
                grid = next(it)
                padded = F.pad(grid, (radius,) * 4) if radius else grid
                for k, columns, view, shape in _views(padded, offsets, radius, regions):
                    if view is not None:
                        out[row + k, columns].view(shape).copy_(view)
            row += len(offsets)
        ctx.specs, ctx.shapes = specs, [g.shape for g in grids]
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        grads, row, shapes = [], 0, iter(ctx.shapes)
        for present, offsets, radius, regions in ctx.specs:
            if present:
                h, w = next(shapes)
                padded = grad.new_zeros(h + 2 * radius, w + 2 * radius)
                for k, columns, view, shape in _views(padded, offsets, radius, regions):
                    if view is not None:
                        view += grad[row + k, columns].view(shape)
                grads.append(padded[radius:radius + h, radius:radius + w])
            row += len(offsets)
        return None, None, *grads


def laplace_bits(values: Tensor, mean: Tensor, log_b: Tensor, log_range: tuple[float, float],
                 floor: float) -> Tensor:
    """Sum over elements of -log2 P(values), P the mass of Laplace(mean, exp(log_b)) over
    [value - 0.5, value + 0.5], log_b clamped to log_range and P to at least floor (the coding
    tables' smallest probability)."""
    return _LaplaceBits.apply(values, mean, log_b, log_range, floor)


def laplace_bits_each(values: Tensor, mean: Tensor, log_b: Tensor, log_range: tuple[float, float],
                     floor: float) -> Tensor:
    """The terms laplace_bits sums, each value's bits (no gradient)."""
    return -torch.log2(_laplace_terms(values, mean, log_b, log_range)[0].clamp_(min=floor))


def _laplace_terms(values: Tensor, mean: Tensor, log_b: Tensor, log_range: tuple[float, float]):
    """With a = |values - mean|, u = 0.5 - a, b the scale: the mass p = F(u) - e2 where F(u) is
    e_u = exp(-|u| / b) / 2 for u < 0 and 1 - e_u otherwise, and e2 = exp(-(a + 0.5) / b) / 2."""
    inv_b = log_b.clamp(*log_range).neg_().exp_()
    a = (values - mean).abs_()
    u = 0.5 - a
    e_u = (u.abs() * inv_b).neg_().exp_().mul_(0.5)
    e2 = ((a + 0.5) * inv_b).neg_().exp_().mul_(0.5)
    p = torch.where(u < 0, e_u, 1 - e_u).sub_(e2)
    return p, a, u, e_u, e2, inv_b


class _LaplaceBits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values: Tensor, mean: Tensor, log_b: Tensor, log_range, floor: float) -> Tensor:
        ctx.save_for_backward(values, mean, log_b)
        ctx.meta = (log_range, floor)
        p = _laplace_terms(values, mean, log_b, log_range)[0]
        return -torch.log2(p.clamp_(min=floor)).sum()

    @staticmethod
    def backward(ctx, grad: Tensor):
        """Recomputes the terms (cheaper than keeping them): dp/da = (e2 - e_u) / b and
        b dp/db = -(u e_u + (a + 0.5) e2) / b, for both signs of u."""
        values, mean, log_b = ctx.saved_tensors
        log_range, floor = ctx.meta
        p, a, u, e_u, e2, inv_b = _laplace_terms(values, mean, log_b, log_range)
        d_p = torch.where(p > floor, p.mul_(-math.log(2)).reciprocal_(), 0.0).mul_(grad)
        d_values = (e2 - e_u).mul_(inv_b).mul_(d_p).mul_(torch.sign(values - mean))
        d_log_b = e_u.mul_(u).add_(e2.mul_(a.add_(0.5))).mul_(inv_b).neg_().mul_(d_p)
        d_log_b = torch.where((log_b >= log_range[0]) & (log_b <= log_range[1]), d_log_b, 0.0)
        return d_values, -d_values, d_log_b, None, None


def upsample(x: Tensor, taps: Tensor) -> Tensor:
    """x (..., h, w) upsampled to (..., 2h, 2w) by the symmetric 8-tap filter of `taps` (4):
    along each axis, output 2k is taps . p[k:k+4] and 2k+1 is reversed(taps) . p[k+1:k+5], p the
    input replicate-padded by 2."""
    return _UpsampleLast.apply(_UpsampleLast.apply(x, taps).transpose(-1, -2), taps).transpose(-1, -2)


class _UpsampleLast(torch.autograd.Function):
    """x2 along the last axis. Each phase is a sum of four shifted copies of the padded rows; the
    rows are shifted as one flat array (a shift by s < 5 only moves values into the last 4 columns
    of the row before, which are computed and discarded), so every operation is a contiguous
    axpy or dot product rather than a strided one: about twice as fast."""

    @staticmethod
    def forward(ctx, x: Tensor, taps: Tensor) -> Tensor:
        n = x.shape[-1]
        p = F.pad(x, (2, 2), mode="replicate")
        flat, length = p.view(-1), p.numel() - 4
        g = taps.tolist()
        phases = x.new_empty(2, *p.shape)  # even and odd outputs over the padded width
        even, odd = phases[0].view(-1)[:length], phases[1].view(-1)[:length]
        torch.mul(flat[0:length], g[0], out=even)
        torch.mul(flat[1:length + 1], g[3], out=odd)
        for t in range(1, 4):
            even.add_(flat[t:t + length], alpha=g[t])
            odd.add_(flat[1 + t:1 + t + length], alpha=g[3 - t])
        ctx.save_for_backward(p, taps)
        return torch.stack([phases[0, ..., :n], phases[1, ..., :n]], dim=-1).view(*x.shape[:-1], 2 * n)

    @staticmethod
    def backward(ctx, grad: Tensor):
        p, taps = ctx.saved_tensors
        n = p.shape[-1] - 4
        flat, length = p.view(-1), p.numel() - 4
        g = taps.tolist()
        grad = grad.reshape(*grad.shape[:-1], n, 2)
        phases = grad.new_zeros(2, *p.shape)  # the phases' gradients, zero in the discarded columns
        phases[0, ..., :n] = grad[..., 0]
        phases[1, ..., :n] = grad[..., 1]
        even, odd = phases[0].view(-1)[:length], phases[1].view(-1)[:length]
        d_taps = None
        if ctx.needs_input_grad[1]:
            d_taps = torch.stack([torch.dot(even, flat[t:t + length]) + torch.dot(odd, flat[4 - t:4 - t + length])
                                  for t in range(4)])
        d_p = grad.new_zeros(p.shape)
        d_flat = d_p.view(-1)
        for t in range(4):
            d_flat[t:t + length].add_(even, alpha=g[t])
            d_flat[1 + t:1 + t + length].add_(odd, alpha=g[3 - t])
        d_x = d_p[..., 2:n + 2].clone()  # replicate padding: the pads' gradients go to the edges
        d_x[..., 0] += d_p[..., 0] + d_p[..., 1]
        d_x[..., -1] += d_p[..., n + 2] + d_p[..., n + 3]
        return d_x, d_taps

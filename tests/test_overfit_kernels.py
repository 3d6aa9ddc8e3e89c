"""The fit's hand-written autograd functions (overfit/kernels.py) against plain torch: the same
values, and gradients checked by finite differences (torch.autograd.gradcheck, float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gencompress.overfit import kernels
from gencompress.overfit.architecture import CUBIC_TAPS, NEIGHBOUR_OFFSETS, PARENT_OFFSETS

DOUBLE = torch.float64


def plain_windows(grid, offsets, radius, regions):
    p = F.pad(grid, (radius,) * 4)
    rows = []
    for dy, dx in offsets:
        parts = [p[radius + dy + r0:, radius + dx + c0:][::rs, ::cs][:rows_, :cols].reshape(-1)
                 for r0, rs, rows_, c0, cs, cols in regions]
        rows.append(torch.cat(parts))
    return torch.stack(rows)


def plain_laplace_bits(values, mean, log_b, log_range, floor):
    b = torch.exp(log_b.clamp(*log_range))
    cdf = lambda x: torch.where(x < 0, 0.5 * torch.exp(x.clamp(max=0) / b), 1 - 0.5 * torch.exp(-x.clamp(min=0) / b))
    return -torch.log2((cdf(values - mean + 0.5) - cdf(values - mean - 0.5)).clamp(min=floor)).sum()


def plain_upsample_last(x, taps):
    n = x.shape[-1]
    p = F.pad(x, (2, 2), mode="replicate")
    g0, g1, g2, g3 = taps
    even = g0 * p[..., 0:n] + g1 * p[..., 1:n + 1] + g2 * p[..., 2:n + 2] + g3 * p[..., 3:n + 3]
    odd = g3 * p[..., 1:n + 1] + g2 * p[..., 2:n + 2] + g1 * p[..., 3:n + 3] + g0 * p[..., 4:n + 4]
    return torch.stack([even, odd], dim=-1).reshape(*x.shape[:-1], 2 * n)


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (5, 1), (6, 7), (9, 4)])
def test_windows_reads_offsets_over_strided_rectangles(shape):
    torch.manual_seed(0)
    grid = torch.randn(*shape, dtype=DOUBLE, requires_grad=True)
    h, w = shape
    cases = [(((0, 0),), 0, [(0, 2, -(-h // 2), 1, 2, w // 2), (1, 2, h // 2, 0, 2, -(-w // 2))]),
             (NEIGHBOUR_OFFSETS, 2, [(0, 2, -(-h // 2), 0, 2, -(-w // 2)), (1, 2, h // 2, 1, 2, w // 2)]),
             (PARENT_OFFSETS, 1, [(0, 1, h, 0, 1, w), (0, 1, h // 2, 0, 1, w)])]
    for offsets, radius, regions in cases:
        got = kernels.windows((grid, offsets, radius, regions))
        assert torch.equal(got, plain_windows(grid, offsets, radius, regions))
        assert torch.autograd.gradcheck(lambda g: kernels.windows((g, offsets, radius, regions)), (grid,))


def test_windows_stacks_reads_of_several_grids_and_reads_none_as_zeros():
    torch.manual_seed(0)
    fine = torch.randn(6, 7, dtype=DOUBLE, requires_grad=True)
    coarse = torch.randn(3, 4, dtype=DOUBLE, requires_grad=True)
    here = [(0, 2, 3, 1, 2, 3), (1, 2, 3, 0, 2, 4)]  # a checkerboard pass of fine: 21 positions
    above = [(0, 1, 3, 0, 1, 3), (0, 1, 3, 0, 1, 4)]  # their parents in coarse
    reads = lambda f, c: kernels.windows((f, NEIGHBOUR_OFFSETS, 2, here), (c, PARENT_OFFSETS, 1, above))
    expected = torch.cat([plain_windows(fine, NEIGHBOUR_OFFSETS, 2, here), plain_windows(coarse, PARENT_OFFSETS, 1, above)])
    assert torch.equal(reads(fine, coarse), expected)
    assert torch.autograd.gradcheck(reads, (fine, coarse))
    with_none = kernels.windows((fine, NEIGHBOUR_OFFSETS, 2, here), (None, PARENT_OFFSETS, 1, above))
    assert torch.equal(with_none[:12], expected[:12]) and not with_none[12:].any()
    with pytest.raises(ValueError):
        kernels.windows((fine, NEIGHBOUR_OFFSETS, 2, here), (coarse, PARENT_OFFSETS, 1, above[:1]))


def test_laplace_bits_matches_the_laplace_mass_and_its_gradients():
    torch.manual_seed(0)
    n = 400
    values = (torch.round(3 * torch.randn(n)) + 0.3 * torch.randn(n)).to(DOUBLE).requires_grad_()
    mean = (2 * torch.randn(n, dtype=DOUBLE)).requires_grad_()
    log_b = (2 * torch.randn(n, dtype=DOUBLE)).requires_grad_()  # some beyond the range: clamped
    log_range, floor = (-2.0, 3.0), 2.0 ** -16
    args = (values, mean, log_b, log_range, floor)
    assert torch.allclose(kernels.laplace_bits(*args), plain_laplace_bits(*args), rtol=1e-12)
    assert torch.autograd.gradcheck(lambda v, m, b: kernels.laplace_bits(v, m, b, log_range, floor),
                                    (values, mean, log_b))


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 5), (3, 8, 2)])
def test_upsample_is_the_separable_replicate_padded_filter(shape):
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=DOUBLE, requires_grad=True)
    taps = (torch.tensor(CUBIC_TAPS, dtype=DOUBLE) + 0.05 * torch.randn(4, dtype=DOUBLE)).requires_grad_()
    expected = plain_upsample_last(plain_upsample_last(x, taps).transpose(1, 2), taps).transpose(1, 2)
    assert torch.allclose(kernels.upsample(x, taps), expected, rtol=1e-12)
    assert torch.autograd.gradcheck(kernels.upsample, (x, taps))

"""The amortized models' decoding networks in exact fixed-point arithmetic: the same integers on every machine.

Float convolutions sum in an order that depends on the thread count, oneDNN, the instruction set
and the device, so the same file decoded elsewhere differed in a few pixels by one level, and its
pixel checksum failed. Here every activation is an integer at a scale of 2^-FRACTION held in
float64, every weight an integer at 2^-WEIGHT_FRACTION, and each layer ends in a floor to the
activation grid. Inputs are clipped so that every product and partial sum of a convolution stays
below 2^52 in magnitude (the bound is computed from the integer weights): float64 holds such
integers exactly, so any summation order gives the same result. The only other operations, on
single values, are IEEE's correctly rounded ones (multiply, divide, square root), which give the
same result on every conforming machine, CPU or GPU.

They run on the CPU, whatever device encodes or decodes: a GPU's float64 convolutions may choose
algorithms (FFT, Winograd) that are not exact. Covers what the decoders run: Conv2d, ConvTranspose2d, GDN (plain and inverse), LeakyReLU, ReLU.
The weights are quantized once, when a model loads; the quantization moves a reconstruction by
one level at most, in a few per cent of the samples (tests/test_codec.py). in_bands() runs a
network over bands of rows: the same integers with a fraction of the memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.layers import GDN
from torch import Tensor, nn

FRACTION = 12  # activations: integers at 2^-12
WEIGHT_FRACTION = 16  # weights: integers at 2^-16
SUM_LIMIT = float(1 << 52)  # |every partial sum| stays below this
ONE = float(1 << FRACTION)


def to_fixed(x: Tensor) -> Tensor:
    """Real values (any float dtype) -> integers at 2^-FRACTION (float64), round half up."""
    return torch.floor(x.double() * ONE + 0.5)


def to_pixels(x: Tensor) -> Tensor:
    """Fixed-point image values (0 .. ONE is 0 .. 1) -> integers 0 .. 255 (float64), exactly:
    floor(clip(v, 0, 2^F) * 255 / 2^F + 1/2)."""
    return torch.floor((x.clamp(0, ONE) * 255 + ONE / 2) / ONE)


def _weight(w: Tensor) -> Tensor:
    return torch.round(w.detach().cpu().double() * (1 << WEIGHT_FRACTION))


class _Conv(nn.Module):
    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d):
        super().__init__()
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        self.geometry = (conv.stride, conv.padding, conv.output_padding, conv.groups, conv.dilation)
        self.weight = _weight(conv.weight)
        # at 2^-(FRACTION + WEIGHT_FRACTION), the scale of the products
        self.bias = torch.round(conv.bias.detach().cpu().double() * ONE * (1 << WEIGHT_FRACTION))
        per_output = self.weight.abs().sum(dim=(1, 2, 3) if isinstance(conv, nn.Conv2d) else (0, 2, 3))
        self.limit = float(torch.floor((SUM_LIMIT - self.bias.abs().max()) / per_output.max().clamp(min=1)))

    def forward(self, x: Tensor) -> Tensor:
        x = x.clamp(-self.limit, self.limit)
        stride, padding, output_padding, groups, dilation = self.geometry
        if self.transposed:
            acc = F.conv_transpose2d(x, self.weight, None, stride, padding, output_padding, groups, dilation)
        else:
            acc = F.conv2d(x, self.weight, None, stride, padding, dilation, groups)
        acc += self.bias[None, :, None, None]
        return acc.mul_(2.0 ** -WEIGHT_FRACTION).floor_()


class _GDN(nn.Module):
    """y = x / sqrt(beta + gamma . x^2), or x * sqrt(...) for the inverse: the sum in integers,
    the square root and the product or quotient correctly rounded, then a floor."""

    def __init__(self, gdn: GDN):
        super().__init__()
        self.inverse = gdn.inverse
        with torch.no_grad():
            gamma = gdn.gamma_reparam(gdn.gamma.double()).cpu()  # (element-wise: the same on any device)
            beta = gdn.beta_reparam(gdn.beta.double()).cpu()
        self.gamma = _weight(gamma)[:, :, None, None]
        # beta at 2^-(FRACTION + WEIGHT_FRACTION), the scale of gamma . x^2; at least 1: the root is positive
        self.beta = torch.round(beta * ONE * (1 << WEIGHT_FRACTION)).clamp(min=1)
        self.square_limit = float(torch.floor((SUM_LIMIT - self.beta.max()) / self.gamma.abs().sum(1).max().clamp(min=1)))

    def forward(self, x: Tensor) -> Tensor:
        x = x.clamp(-(1 << 26), 1 << 26)  # x^2 below 2^52
        squares = x.square().mul_(1 / ONE).floor_().clamp_(max=self.square_limit)  # x^2 at 2^-FRACTION
        root = F.conv2d(squares, self.gamma, self.beta).mul_(2.0 ** -(FRACTION + WEIGHT_FRACTION)).sqrt_()
        return (root.mul_(x) if self.inverse else torch.div(x, root, out=root)).floor_()


class _LeakyReLU(nn.Module):
    def __init__(self, slope: float):
        super().__init__()
        self.slope = slope

    def forward(self, x: Tensor) -> Tensor:
        return torch.where(x >= 0, x, torch.floor(x * self.slope))


def in_bands(net: nn.Module, x: Tensor, scale: int, band: int, halo: int) -> Tensor:
    """net(x) computed over bands of `band` input rows, each with `halo` rows of context on either
    side, its output rows (`scale` per input row) cut to the band's. Identical to net(x) whenever
    the halo covers the network's receptive field: the computation is exact, so the order of work
    cannot change it, and the rows a band's edge disturbs are the ones cut away."""
    height = x.shape[2]
    if height <= band + 2 * halo:
        return net(x)
    parts = []
    for start in range(0, height, band):
        end = min(height, start + band)
        lo, hi = max(0, start - halo), min(height, end + halo)
        parts.append(net(x[:, :, lo:hi])[:, :, (start - lo) * scale:(end - lo) * scale])
    return torch.cat(parts, 2)


@torch.no_grad()
def exact(module: nn.Module) -> nn.Module:
    """The fixed-point twin of a decoding network (an nn.Sequential of the layers above), on the
    CPU: it maps integers at 2^-FRACTION (float64) to integers at 2^-FRACTION, identically on
    every machine."""
    if isinstance(module, nn.Sequential):
        return nn.Sequential(*(exact(m) for m in module))
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return _Conv(module)
    if isinstance(module, GDN):
        return _GDN(module)
    if isinstance(module, nn.LeakyReLU):
        return _LeakyReLU(module.negative_slope)
    if isinstance(module, nn.ReLU):
        return nn.ReLU()
    raise TypeError(f"no exact version of {type(module).__name__}")

"""The encoder's float model of one tile: latent grids and decoder networks, trained by fit.py.

It computes what integer.py computes, in float32 and differentiably: the same contexts, the same
upsampling and synthesis (architecture.py), plus a rate in bits from continuous Laplace
distributions. During training the latents are soft-rounded with noise, or rounded and held
fixed (quantize()); the file is made from the integer decoder, not from this.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import kernels, tables
from .architecture import CUBIC_TAPS, MODULES, NEIGHBOUR_OFFSETS, PARENT_OFFSETS, Architecture

LATENT_GAIN = 16.0  # latents are stored divided by this: Adam's steps move them 16x faster
COLUMN_CHUNK = 32768  # columns per block in _columns_mlp
LOG_SCALE_RANGE = (float(tables.log_scale(0)), float(tables.log_scale(tables.SCALE_BINS - 1)))
PROBABILITY_FLOOR = 2.0 ** -tables.PRECISION  # the coding tables' smallest probability


class OverfitNet(nn.Module):
    def __init__(self, arch: Architecture, height: int, width: int, seed: int = 0,
                 start: dict[str, Tensor] | None = None):
        """Latents at zero; networks from `start` (parameter name -> tensor, all of them) or,
        without one, from a seeded random initialization."""
        super().__init__()
        # Its own random numbers (initialization, quantization noise), not torch's global ones:
        # fits running in several threads at once stay reproducible.
        self.generator = torch.Generator().manual_seed(seed)
        self.arch, self.height, self.width = arch, height, width
        self.latents = nn.ParameterList(nn.Parameter(torch.zeros(h, w)) for h, w in arch.grid_shapes(height, width))
        layout = arch.parameters()
        self.weights = nn.ParameterDict()
        for module in MODULES:
            for name, shape in layout[module]:
                self.weights[_key(name)] = nn.Parameter(torch.zeros(shape))
        self._initialize()
        if start is not None:
            with torch.no_grad():
                for name, _ in (item for m in MODULES for item in layout[m]):
                    self.weights[_key(name)].copy_(start[name])

    def _initialize(self) -> None:
        """PyTorch's default uniform init for linear layers; zero residual convolutions (identity);
        cubic upsampling; entropy model outputs start at mean 0, scale 1."""
        w = self.weights
        for name, p in w.items():
            if name.endswith("_weight") and p.dim() == 2:
                nn.init.kaiming_uniform_(p, a=math.sqrt(5), generator=self.generator)
            elif name.endswith("_bias"):
                fan_in = w[name[:-5] + "_weight"].shape[1]
                if w[name[:-5] + "_weight"].dim() == 2:
                    nn.init.uniform_(p, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=self.generator)
        for module in ("arm_anchor", "arm_other"):
            nn.init.zeros_(w[f"{module}_2_weight"])
            nn.init.zeros_(w[f"{module}_2_bias"])
        with torch.no_grad():
            # The synthesis starts at mid-grey: its first residual layer ends in a ReLU, which a
            # negative start would close, and no gradient would reach the latents.
            w["synthesis_1_bias"].fill_(0.5)
            w["upsampling_taps"].copy_(torch.tensor(CUBIC_TAPS).repeat(w["upsampling_taps"].shape[0], 1))

    def named_for_coding(self) -> dict[str, list[tuple[str, Tensor]]]:
        """Per module, its parameters in coding order (architecture.parameters())."""
        layout = self.arch.parameters()
        return {m: [(name, self.weights[_key(name)]) for name, _ in layout[m]] for m in MODULES}

    def network_parameters(self) -> list[Tensor]:
        return list(self.weights.values())

    def quantize(self, mode: str, temperature: float = 0.3, noise: float = 0.0) -> list[Tensor]:
        """The latents as the decoder would see them. "round": the integers themselves, constants
        (no gradient reaches the latents, see fit.py's hard phase). "soft": soft rounding at this
        temperature, plus uniform noise of this width, soft-rounded again (as in C3): the second
        rounding brings what the synthesis and the entropy model see close to integers as the
        temperature falls, so less changes when true rounding takes over
        (benchmarks/overfit_heldout.py: README gives its figures)."""
        if mode == "round":
            return [torch.round(p.detach() * LATENT_GAIN) for p in self.latents]
        out = []
        for p in self.latents:
            y = p * LATENT_GAIN
            u = torch.rand(y.shape, generator=self.generator).to(y.device)  # (the same numbers on any device)
            out.append(_soft_round(_soft_round(y, temperature) + noise * (u - 0.5), temperature))
        return out

    def rate(self, grids: list[Tensor]) -> Tensor:
        """Bits of the latent grids under the entropy model (checkerboard contexts, parent and
        ancestor grids)."""
        total = grids[0].new_zeros(())
        for module, values, feats in self.passes(grids):
            total = total + self.pass_bits(module, values, feats)
        return total

    def pass_bits(self, module: str, values: Tensor, feats: Tensor) -> Tensor:
        """Bits of one pass's values given its contexts, under ARM `module`."""
        mean, log_b = self._arm(feats, module)
        return kernels.laplace_bits(values, mean, log_b, LOG_SCALE_RANGE, PROBABILITY_FLOOR)

    def passes(self, grids: list[Tensor]) -> Iterator[tuple[str, Tensor, Tensor]]:
        """Each checkerboard pass as (its ARM module, its values, their contexts: features x
        values). Values and contexts of a pass are read in the same order (that of
        kernels.windows over the pass's two strided rectangles), not the decoder's, which a sum of
        bits does not mind."""
        for i in reversed(range(len(grids))):
            for module, values, feats, _ in self.grid_passes(grids, i):
                yield module, values, feats

    def grid_passes(self, grids: list[Tensor], i: int) -> Iterator[tuple[str, Tensor, Tensor, list[kernels.Region]]]:
        """passes() of grid i alone, each with the two strided rectangles its values are read from."""
        g = grids[i]
        h, w = g.shape
        parent = grids[i + 1] if i + 1 < len(grids) else None
        ancestors = self._ancestors(grids, i)
        for anchors in (True, False):
            if not anchors and h * w == 1:
                continue
            here, above = _pass_regions(h, w, anchors)
            values = kernels.windows((g, ((0, 0),), 0, here))[0]
            # none above the coarsest grid, nor ancestors above the coarsest two: zeros
            reads = [(parent, PARENT_OFFSETS, 1, above)] + [(a, ((0, 0),), 0, above) for a in ancestors]
            if not anchors:
                feats = kernels.windows((g, NEIGHBOUR_OFFSETS, 2, here), *reads)
            elif parent is not None:
                feats = kernels.windows(*reads)
            else:
                feats = g.new_zeros(len(PARENT_OFFSETS) + len(ancestors), values.shape[0])
            yield "arm_anchor" if anchors else "arm_other", values, feats, here

    def position_bits(self, grids: list[Tensor], i: int) -> Tensor:
        """Bits of each latent of grid i (h x w) under the entropy model, given the grids it reads."""
        out = grids[i].new_zeros(grids[i].shape)
        for module, values, feats, here in self.grid_passes(grids, i):
            mean, log_b = self._arm(feats, module)
            bits = kernels.laplace_bits_each(values, mean, log_b, LOG_SCALE_RANGE, PROBABILITY_FLOOR)
            start = 0
            for r0, rs, rows, c0, cs, cols in here:
                out[r0::rs, c0::cs][:rows, :cols] = bits[start:start + rows * cols].reshape(rows, cols)
                start += rows * cols
        return out

    def _ancestors(self, grids: list[Tensor], i: int) -> list[Tensor | None]:
        """The grids an ARM of grid i reads beyond its parent, each repeated (nearest) to the
        parent's shape, so that the parent's positions read them: ancestor i + 1 + d at (y >> d,
        x >> d) of the parent's (y, x). None where the grid does not exist."""
        if i + 1 >= len(grids):
            return [None] * self.arch.ancestors
        h, w = grids[i + 1].shape
        out: list[Tensor | None] = []
        for d in range(1, self.arch.ancestors + 1):
            if i + 1 + d >= len(grids):
                out.append(None)
                continue
            f = 1 << d
            out.append(grids[i + 1 + d].repeat_interleave(f, 0).repeat_interleave(f, 1)[:h, :w])
        return out

    def _arm(self, feats: Tensor, module: str) -> tuple[Tensor, Tensor]:
        """Mean and log-scale of each column of feats (features x latents)."""
        w = self.weights
        x = _columns_mlp(feats, [(w[f"{module}_{i}_weight"], w[f"{module}_{i}_bias"]) for i in range(3)])
        return x[0], x[1]

    def synthesize(self, grids: list[Tensor]) -> Tensor:
        """(3, H, W) float image in about [0, 1] from the latent grids."""
        return self.synthesis(self.upsample(grids))

    def upsample(self, grids: list[Tensor]) -> Tensor:
        """The synthesis's input (levels, H, W): the coarsest grid upsampled, the next joining as
        a channel, and so on to full resolution."""
        x = grids[-1][None]
        for i in reversed(range(len(grids) - 1)):
            x = kernels.upsample(x, self.weights["upsampling_taps"][i])[:, :grids[i].shape[0], :grids[i].shape[1]]
            x = torch.cat([x, grids[i][None]])
        return x

    def synthesis(self, x: Tensor) -> Tensor:
        """(3, H, W) from the upsampled grids (levels, H, W)."""
        w = self.weights
        layers = [(w[f"synthesis_{i}_weight"], w[f"synthesis_{i}_bias"]) for i in range(2)]
        x = _columns_mlp(x.reshape(x.shape[0], -1), layers).reshape(3, *x.shape[1:])
        x = x[None].contiguous(memory_format=torch.channels_last)  # 3 channels: 3x faster convolutions
        x = F.relu(x + _conv3x3(x, w["synthesis_2_weight"], w["synthesis_2_bias"]))
        return (x + _conv3x3(x, w["synthesis_3_weight"], w["synthesis_3_bias"]))[0]


def _soft_round(y: Tensor, temperature: float) -> Tensor:
    """A differentiable rounding: the identity as temperature grows, rounding as it shrinks."""
    m = torch.floor(y) + 0.5
    return m + 0.5 * torch.tanh((y - m) / temperature) / math.tanh(0.5 / temperature)


def _key(name: str) -> str:
    return name.replace(".", "_")


def _pass_regions(h: int, w: int, anchors: bool) -> tuple[list[kernels.Region], list[kernels.Region]]:
    """A checkerboard pass of an h x w grid as two strided rectangles (rows 0::2 and 1::2), and
    the same positions' parents (y // 2, x // 2) as rectangles of the parent grid."""
    h0, w0, h1, w1 = -(-h // 2), -(-w // 2), h // 2, w // 2  # even and odd rows and columns
    if anchors:  # (row + col) even
        return [(0, 2, h0, 0, 2, w0), (1, 2, h1, 1, 2, w1)], [(0, 1, h0, 0, 1, w0), (0, 1, h1, 0, 1, w1)]
    return [(0, 2, h0, 1, 2, w1), (1, 2, h1, 0, 2, w0)], [(0, 1, h0, 0, 1, w1), (0, 1, h1, 0, 1, w0)]


def _columns_mlp(x: Tensor, layers: list[tuple[Tensor, Tensor]]) -> Tensor:
    """A per-column MLP (ReLU between layers) of x (features x N), in chunks of columns: small
    matrices times cache-sized blocks run about 8x faster than one product over a whole image."""
    out = []
    for block in x.split(COLUMN_CHUNK, dim=1):
        for i, (weight, bias) in enumerate(layers):
            block = torch.addmm(bias[:, None], weight, block)
            if i < len(layers) - 1:
                block = F.relu(block)
        out.append(block)
    return torch.cat(out, dim=1)


def _conv3x3(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight, bias)

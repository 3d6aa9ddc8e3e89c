"""The encoder's float model of one tile: latent grids and decoder networks, trained by fit.py.

It computes what integer.py computes, in float32 and differentiably: the same contexts, the same
upsampling and synthesis (architecture.py), plus a rate in bits from continuous Laplace
distributions. During training the latents are soft-rounded with noise, or rounded with a
straight-through gradient (quantize()); the file is made from the integer decoder, not from this.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import tables
from .architecture import CUBIC_TAPS, MODULES, NEIGHBOUR_OFFSETS, PARENT_OFFSETS, Architecture

LATENT_GAIN = 16.0  # latents are stored divided by this: Adam's steps move them 16x faster
COLUMN_CHUNK = 32768  # columns per block in _columns_mlp
LOG_SCALE_RANGE = (float(tables.log_scale(0)), float(tables.log_scale(tables.SCALE_BINS - 1)))


def _taps(offsets: tuple[tuple[int, int], ...], size: int) -> Tensor:
    """(len(offsets), size * size): row k puts 1 at offset k of a size x size kernel centred on 0."""
    taps = torch.zeros(len(offsets), size * size)
    for k, (dy, dx) in enumerate(offsets):
        taps[k, (dy + size // 2) * size + dx + size // 2] = 1
    return taps


_PARENT_TAPS = _taps(PARENT_OFFSETS, 3)
_NEIGHBOUR_TAPS = _taps(NEIGHBOUR_OFFSETS, 5)


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
        """The latents as the decoder would see them: "round" (straight-through gradient) or "soft":
        soft rounding at this temperature, plus uniform noise of this width, soft-rounded again
        (as in C3): the second rounding brings what the synthesis and the entropy model see
        close to integers as the temperature falls, so less changes when true rounding takes
        over (benchmarks/overfit_heldout.py: README gives its figures)."""
        out = []
        for p in self.latents:
            y = p * LATENT_GAIN
            if mode == "round":
                out.append(y + (torch.round(y) - y).detach())
            else:
                u = torch.rand(y.shape, generator=self.generator).to(y.device)  # (the same numbers on any device)
                out.append(_soft_round(_soft_round(y, temperature) + noise * (u - 0.5), temperature))
        return out

    def rate(self, grids: list[Tensor]) -> Tensor:
        """Bits of the latent grids under the entropy model (checkerboard contexts, parent grids).

        Computed per sub-lattice of the checkerboard ((even, even) and (odd, odd) rows and columns
        are anchors, the other two the second pass): each ARM's first layer is a convolution of the
        parent grid (3x3, at the parent's resolution, since a latent's parent is at (row // 2,
        col // 2)) plus, for the second pass, a strided convolution of the grid itself over the
        neighbour offsets. The same function as gathering each latent's context and multiplying,
        without context tensors (less memory, about the same time).
        """
        total = grids[0].new_zeros(())
        parent = None
        anchor, other = self._arm_layers("arm_anchor"), self._arm_layers("arm_other")
        a, n = anchor[0][0].shape[0], len(NEIGHBOUR_OFFSETS)
        first = torch.cat([anchor[0][0], other[0][0][:, n:]])  # both first layers' parent columns
        bias = torch.cat([anchor[0][1], other[0][1]])
        parent_kernel = (first @ _PARENT_TAPS.to(first)).reshape(-1, 1, 3, 3)
        neighbour_kernel = (other[0][0][:, :n] @ _NEIGHBOUR_TAPS.to(first)).reshape(-1, 1, 5, 5)
        for g in reversed(grids):
            h, w = g.shape
            if parent is None:
                from_parent = bias[:, None, None].expand(-1, -(-h // 2), -(-w // 2))
            else:
                from_parent = F.conv2d(F.pad(parent, (1, 1, 1, 1))[None, None], parent_kernel, bias)[0]
            for rows, cols in ((0, 0), (1, 1)):  # anchors
                values = g[rows::2, cols::2]
                if values.numel():
                    total = total + _bits(values, from_parent[:a, :values.shape[0], :values.shape[1]], anchor)
            padded = F.pad(g, (2, 2, 2, 2))[None, None]
            for rows, cols in ((0, 1), (1, 0)):  # the other half
                values = g[rows::2, cols::2]
                if values.numel():
                    near = F.conv2d(padded[..., rows:, cols:], neighbour_kernel, stride=2)[0]
                    total = total + _bits(values, near + from_parent[a:, :values.shape[0], :values.shape[1]], other)
            parent = g
        return total

    def _arm_layers(self, module: str) -> list[tuple[Tensor, Tensor]]:
        w = self.weights
        return [(w[f"{module}_{i}_weight"], w[f"{module}_{i}_bias"]) for i in range(3)]

    def synthesize(self, grids: list[Tensor]) -> Tensor:
        """(3, H, W) float image in about [0, 1] from the latent grids."""
        w = self.weights
        x = grids[-1][None]
        for i in reversed(range(len(grids) - 1)):
            x = _upsample(x, w["upsampling_taps"][i])[:, :grids[i].shape[0], :grids[i].shape[1]]
            x = torch.cat([x, grids[i][None]])
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


def _bits(values: Tensor, first: Tensor, layers: list[tuple[Tensor, Tensor]]) -> Tensor:
    """Bits of a sub-lattice's values given its ARM's first layer before the ReLU (width x the
    values' shape): the rest of the MLP gives each value's mean and log-scale."""
    x = _columns_mlp(F.relu(first).reshape(first.shape[0], -1), layers[1:])
    return _laplace_bits(values.reshape(-1), x[0], x[1])


def _laplace_bits(values: Tensor, mean: Tensor, log_b: Tensor) -> Tensor:
    """Bits of integer-ish values under Laplace(mean, exp(log_b)) integrated over [v - 0.5, v + 0.5]."""
    b = torch.exp(log_b.clamp(*LOG_SCALE_RANGE))
    a = (values - mean).abs()
    upper, lower = 0.5 - a, -0.5 - a  # by symmetry, the mass of [-a - 0.5, -a + 0.5]
    cdf_upper = torch.where(upper < 0, 0.5 * torch.exp(upper.clamp(max=0) / b), 1 - 0.5 * torch.exp(-upper.clamp(min=0) / b))
    p = cdf_upper - 0.5 * torch.exp(lower / b)
    return -torch.log2(p.clamp(min=2.0 ** -tables.PRECISION)).sum()


def _upsample(x: Tensor, taps: Tensor) -> Tensor:
    return _upsample_last(_upsample_last(x, taps).transpose(1, 2), taps).transpose(1, 2)


def _upsample_last(x: Tensor, taps: Tensor) -> Tensor:
    n = x.shape[-1]
    p = F.pad(x, (2, 2), mode="replicate")
    g0, g1, g2, g3 = taps
    even = g0 * p[..., 0:n] + g1 * p[..., 1:n + 1] + g2 * p[..., 2:n + 2] + g3 * p[..., 3:n + 3]
    odd = g3 * p[..., 1:n + 1] + g2 * p[..., 2:n + 2] + g1 * p[..., 3:n + 3] + g0 * p[..., 4:n + 4]
    return torch.stack([even, odd], dim=-1).reshape(*x.shape[:-1], 2 * n)


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

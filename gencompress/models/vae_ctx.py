"""`vae-ctx`: the mean-scale hyperprior plus a checkerboard context model (He et al. 2021), variable rate.

The latents are coded in two parallel passes, never a per-pixel loop. Half of the positions (the
anchors, (i + j) even) are coded with Gaussian parameters from the hyperprior alone; the other half
with parameters that also see their four decoded anchor neighbours through compressai's
CheckerboardMaskedConv2d. The entropy-parameter network is pointwise (1x1 convolutions), so each
pass evaluates it only on the positions it codes.

Everything that chooses a coding table (hyper-synthesis, context convolution, entropy
parameters) runs in float64 on the CPU while coding, so that the encoder and the decoder pick
the same tables whatever their devices; not yet in `vae`'s exact fixed point (this model ships no
weights: read_latents' `exact` is accepted for the family's interface and has no effect). Shares every module of `vae`, so `vae` weights warm-start it.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from compressai.layers import CheckerboardMaskedConv2d
from torch import Tensor, nn

from .ae import SymbolReader, channel_indexes
from .base import bits, full_precision, round_ste
from .vae import MeanScaleHyperprior, scale_indexes


def anchor_mask(h: int, w: int, device: torch.device | str = "cpu") -> Tensor:
    """(1, 1, h, w) bool, True on the anchors: positions with (i + j) even, coded first."""
    i = torch.arange(h, device=device)[:, None]
    j = torch.arange(w, device=device)[None, :]
    return ((i + j) % 2 == 0)[None, None]


class CheckerboardHyperprior(MeanScaleHyperprior):
    def __init__(self, n: int = 128, m: int = 192):
        super().__init__(n, m)
        self.context = CheckerboardMaskedConv2d(m, 2 * m, kernel_size=5, padding=2, stride=1)
        self.entropy_parameters = nn.Sequential(
            nn.Conv2d(4 * m, 10 * m // 3, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(10 * m // 3, 8 * m // 3, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(8 * m // 3, 2 * m, 1),
        )
        self._ctx64: tuple[nn.Module, nn.Module] | None = None

    def forward(self, x: Tensor, quality: Tensor) -> dict[str, Tensor]:
        y = self.gains(self.g_a(x), quality)
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_z(z, quality)
        z_med = self.entropy_z.medians(quality)
        hyper = self.h_s(round_ste(z - z_med) + z_med)
        anchors = anchor_mask(*y.shape[2:], device=y.device)
        # Pass 1, anchors: no context. Pass 2, the rest: context from the (STE-)rounded anchors.
        scales_a, means_a = self.entropy_parameters(torch.cat([hyper, torch.zeros_like(hyper)], 1)).chunk(2, 1)
        y_hat_anchors = (round_ste(y - means_a) + means_a) * anchors
        scales_n, means_n = self.entropy_parameters(torch.cat([hyper, self.context(y_hat_anchors)], 1)).chunk(2, 1)
        scales, means = torch.where(anchors, scales_a, scales_n), torch.where(anchors, means_a, means_n)
        with full_precision(y):
            _, y_likelihoods = self.gaussian(y.float(), scales.float(), means=means.float())
        y_hat = round_ste(y - means) + means
        x_hat = self.g_s(self.gains(y_hat, quality, inverse=True))
        return {"x_hat": x_hat, "bits": bits(y_likelihoods) + bits(z_likelihoods)}

    def _params_at(self, hyper: Tensor, ctx: Tensor, where: Tensor) -> tuple[Tensor, np.ndarray]:
        """Means (float64) and table indexes (numpy int32) of the positions `where` (h, w bool), pointwise."""
        ep = self._float64_nets()[1]
        feats = torch.cat([hyper, ctx], 1)[0][:, where]  # (4M, n): the positions, in raster order
        scales, means = ep(feats[None, :, :, None]).chunk(2, 1)
        indexes = scale_indexes(scales)[0, :, :, 0].numpy()
        return means[0, :, :, 0], indexes

    def _context64(self, y_hat: Tensor, first_pass: bool) -> Tensor:
        """Context features from the decoded anchors in y_hat (C, h, w); zeros in the anchors' own pass."""
        if first_pass:
            return torch.zeros((1, 2 * y_hat.shape[0], *y_hat.shape[1:]), dtype=torch.float64)
        return self._float64_nets()[0](y_hat[None])

    def _float64_nets(self) -> tuple[nn.Module, nn.Module]:
        with self._lock:
            if self._ctx64 is None:
                self._ctx64 = (copy.deepcopy(self.context).to("cpu", torch.float64),
                               copy.deepcopy(self.entropy_parameters).to("cpu", torch.float64))
        return self._ctx64

    @torch.no_grad()
    def code(self, y: Tensor, quality: int) -> tuple[list[tuple[np.ndarray, np.ndarray, str]], Tensor]:
        """Streams z, anchors, non-anchors of one tile's latents (1, M, h, w), and the synthesis input."""
        q, z_sym, z_med = self._hyper_symbols(y, quality)
        hyper = self._hyper64(z_sym + z_med)
        y64 = y.to("cpu", torch.float64)[0]
        anchors = anchor_mask(*y.shape[2:])[0, 0]
        y_hat = torch.zeros_like(y64)
        streams = [(z_sym[0].to(torch.int32).cpu().numpy(), channel_indexes(tuple(z_sym.shape[1:])), f"z{quality}")]
        for first, where in ((True, anchors), (False, ~anchors)):
            ctx = self._context64(y_hat, first)
            means, indexes = self._params_at(hyper, ctx, where)
            sym = torch.round(y64[:, where] - means)
            y_hat[:, where] = sym + means
            streams.append((sym.to(torch.int32).numpy(), indexes, "gaussian"))
        return streams, self.gains(y_hat[None].to(device=y.device, dtype=torch.float32), q, inverse=True)

    @torch.no_grad()
    def read_latents(self, latent_hw: tuple[int, int], quality: int, read: SymbolReader,
                     device: torch.device, exact: bool = True) -> Tensor:
        q, z_hat = self._read_hyper(latent_hw, quality, read, device)
        hyper = self._hyper64(z_hat)
        anchors = anchor_mask(*latent_hw)[0, 0]
        y_hat = torch.zeros((hyper.shape[1] // 2, *latent_hw), dtype=torch.float64)
        for first, where in ((True, anchors), (False, ~anchors)):
            ctx = self._context64(y_hat, first)
            means, indexes = self._params_at(hyper, ctx, where)
            y_hat[:, where] = torch.from_numpy(read(indexes, "gaussian")).to(torch.float64) + means
        return self.gains(y_hat[None].to(device=device, dtype=torch.float32), q, inverse=True)

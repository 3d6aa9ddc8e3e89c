"""What the `ae` and `vae` models share: transforms, per-quality gains, the λ table, quantization.

Variable rate: one network serves all 8 qualities. Each quality q owns a gain vector that scales the
latents before quantization and an inverse gain applied before synthesis (Cui et al. 2021,
"Asymmetric gained deep image compression"), plus its own factorized entropy model. Training draws
a quality per sample, so every step trains the shared transforms at all rates at once.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch
from compressai.entropy_models import EntropyBottleneck
from compressai.layers import GDN
from compressai.models.utils import conv, deconv
from torch import Tensor, nn

# CompressAI's MSE λ per quality (bmshj2018 / mbt2018 zoo): loss = λ·255²·MSE + bpp.
LAMBDAS: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
# Its MS-SSIM λ per quality: loss = λ·(1 - MS-SSIM) + bpp.
MS_SSIM_LAMBDAS: tuple[float, ...] = (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00)
QUALITIES = len(LAMBDAS)
_TWIN_LOCK = threading.Lock()


def full_precision(t: Tensor):
    """Turn autocast off where rates are computed: likelihoods in bfloat16 would misstate the bits."""
    return torch.autocast(t.device.type, enabled=False)


def analysis_transform(n: int, m: int) -> nn.Sequential:
    """Ballé et al. image analysis: 4 stride-2 convs with GDN, 3 -> m channels at 1/16 size."""
    return nn.Sequential(conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m))


def synthesis_transform(n: int, m: int) -> nn.Sequential:
    """The mirror of analysis_transform with inverse GDN."""
    return nn.Sequential(
        deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
        deconv(n, n), GDN(n, inverse=True), deconv(n, 3),
    )


class GainedTransforms(nn.Module):
    """The two batched steps of coding that ae and vae share: the analysis transform with the
    quality's gains, and the synthesis transform. Subclasses own g_a, g_s and gains, and the
    per-tile steps between them: code() (symbols and synthesis input) and read_latents() (the
    same synthesis input from the symbols), so the codec can batch these two across tiles."""

    @torch.no_grad()
    def analyze(self, x: Tensor, quality: int) -> Tensor:
        """The gained latents of a batch (B, 3, H, W) -> (B, M, H/16, W/16); any batch size."""
        return self.gains(self.g_a(x), torch.tensor([quality], device=x.device))

    @torch.no_grad()
    def synthesize(self, y: Tensor) -> Tensor:
        """Synthesis inputs (B, M, h, w) -> images (B, 3, 16h, 16w) in [0, 1] (unclamped), in
        float: what training, the GAN decoder and format versions 1 and 2 use."""
        return self.g_s(y)

    @torch.no_grad()
    def synthesize_exact(self, y: Tensor) -> np.ndarray:
        """Synthesis inputs (B, M, h, w) -> pixels (B, 16h, 16w, 3) uint8 in fixed point on the
        CPU (models/exact.py): the same pixels on every machine (format version 3)."""
        from .exact import in_bands, to_fixed, to_pixels

        # Bands of 32 latent rows (512 pixels) with 3 rows of context: the synthesis sees less than
        # 2 latent rows either side (four 5x5 stride-2 layers), and a 1024-pixel tile then peaks at
        # +1.05 GB instead of +1.98 (its float64 im2col buffers) for 12% more time (benchmarks/exact.py).
        x = in_bands(self.exact_twin("g_s"), to_fixed(y.cpu()), 16, band=32, halo=3)
        return to_pixels(x).permute(0, 2, 3, 1).to(torch.uint8).numpy()

    def exact_twin(self, name: str) -> nn.Module:
        """The fixed-point twin of the network self.<name>, built once (thread-safe)."""
        from .exact import exact

        with _TWIN_LOCK:
            twins = self.__dict__.setdefault("_exact_twins", {})
            if name not in twins:
                twins[name] = exact(getattr(self, name))
            return twins[name]


def round_ste(x: Tensor) -> Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


class QualityGains(nn.Module):
    """Per-quality channel gains (encoder side) and inverse gains (decoder side)."""

    def __init__(self, channels: int, qualities: int = QUALITIES):
        super().__init__()
        # Geometric initial spread: low qualities quantize coarser (smaller gain).
        init = torch.logspace(math.log10(0.5), math.log10(4.0), qualities)[:, None].repeat(1, channels)
        self.gain = nn.Parameter(init.clone())
        self.inverse_gain = nn.Parameter(1.0 / init)

    def forward(self, y: Tensor, quality: Tensor, inverse: bool = False) -> Tensor:
        """Scale y (B, C, H, W) by the gains of each sample's quality index (B,), 0-based."""
        table = self.inverse_gain if inverse else self.gain
        return y * table[quality][:, :, None, None]


class PerQualityBottlenecks(nn.Module):
    """One EntropyBottleneck per quality, so each rate gets a density fitted to its latents."""

    def __init__(self, channels: int, qualities: int = QUALITIES):
        super().__init__()
        self.bottlenecks = nn.ModuleList(EntropyBottleneck(channels) for _ in range(qualities))

    def forward(self, y: Tensor, quality: Tensor) -> tuple[Tensor, Tensor]:
        """Noisy (training) or dequantized latents and their likelihoods, per sample's quality."""
        y = y.float()
        outputs, likelihoods = torch.empty_like(y), torch.empty_like(y)
        with full_precision(y):
            for q in quality.unique().tolist():
                sel = (quality == q).nonzero().flatten()
                outputs[sel], likelihoods[sel] = self.bottlenecks[q](y[sel])
        return outputs, likelihoods

    def medians(self, quality: Tensor) -> Tensor:
        """Per-sample medians shaped (B, C, 1, 1) to center the rounding."""
        med = torch.stack([b.quantiles[:, 0, 1] for b in self.bottlenecks])
        return med[quality][:, :, None, None]

    def aux_loss(self) -> Tensor:
        return sum(b.loss() for b in self.bottlenecks)

    def update(self) -> None:
        """Recompute the integer CDF tables that entropy coding uses (after training)."""
        for b in self.bottlenecks:
            b.update(force=True)


def bits(likelihoods: Tensor) -> Tensor:
    """Per-sample information content in bits of a (B, ...) likelihood tensor."""
    return -torch.log2(likelihoods).flatten(1).sum(1)

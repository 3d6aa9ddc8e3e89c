"""`vae`: mean-scale hyperprior (Minnen et al. 2018, without the serial context), variable rate by gains.

The hyper-synthesis that predicts each latent's Gaussian (mean, scale) runs in exact fixed point
on the CPU during coding (models/exact.py): the scale index that picks each symbol's coding table
and the mean must come out identical in the encoder and every decoder, whatever their devices,
thread counts and instruction sets. It is a small network at 1/64 of the image size, so this
costs little. Files of format versions 1 and 2 were made with it in float64, which their
decoding keeps.
"""

from __future__ import annotations

import copy
import threading

import numpy as np
import torch
from compressai.entropy_models import GaussianConditional
from compressai.models.utils import conv, deconv
from torch import Tensor, nn

from .ae import SymbolReader, _eb_tables, channel_indexes
from .base import (GainedTransforms, PerQualityBottlenecks, QualityGains, analysis_transform, bits, full_precision, round_ste,
                   synthesis_transform)

# CompressAI's scale table: 64 levels, log-spaced from 0.11 to 256.
SCALE_TABLE = np.exp(np.linspace(np.log(0.11), np.log(256.0), 64)).tolist()
# A Gaussian of the same scale table and lower bound on scales (compressai's default) as every
# model's, kept on the CPU for scale_indexes (tests/test_determinism.py checks that it gives the
# loaded model's own indexes).
_CPU_GAUSSIAN = GaussianConditional(SCALE_TABLE)


def scale_indexes(scales: Tensor) -> Tensor:
    """Coding-table indexes (int32) of scales (float64, on the CPU, from the exact hyper-synthesis),
    by compressai's build_indexes on a Gaussian that stays on the CPU: the model's own holds its
    scale table and bound on the model's device, and on a GPU comparing CPU scales with CUDA
    buffers raises, so a vae could neither encode nor decode there."""
    return _CPU_GAUSSIAN.build_indexes(scales)


class MeanScaleHyperprior(GainedTransforms):
    stride = 64

    def __init__(self, n: int = 128, m: int = 192):
        super().__init__()
        self.g_a = analysis_transform(n, m)
        self.g_s = synthesis_transform(n, m)
        self.h_a = nn.Sequential(
            conv(m, n, stride=1, kernel_size=3), nn.LeakyReLU(inplace=True),
            conv(n, n), nn.LeakyReLU(inplace=True), conv(n, n),
        )
        self.h_s = nn.Sequential(
            deconv(n, m), nn.LeakyReLU(inplace=True),
            deconv(m, m * 3 // 2), nn.LeakyReLU(inplace=True),
            conv(m * 3 // 2, m * 2, stride=1, kernel_size=3),
        )
        self.gains = QualityGains(m)
        self.entropy_z = PerQualityBottlenecks(n)
        self.gaussian = GaussianConditional(SCALE_TABLE)
        self._h_s64: nn.Module | None = None
        self._lock = threading.Lock()

    def forward(self, x: Tensor, quality: Tensor) -> dict[str, Tensor]:
        y = self.gains(self.g_a(x), quality)
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_z(z, quality)
        z_med = self.entropy_z.medians(quality)
        z_hat = round_ste(z - z_med) + z_med
        scales, means = self.h_s(z_hat).chunk(2, 1)
        with full_precision(y):
            _, y_likelihoods = self.gaussian(y.float(), scales.float(), means=means.float())
        y_hat = round_ste(y - means) + means
        x_hat = self.g_s(self.gains(y_hat, quality, inverse=True))
        return {"x_hat": x_hat, "bits": bits(y_likelihoods) + bits(z_likelihoods)}

    def aux_loss(self) -> Tensor:
        return self.entropy_z.aux_loss()

    def symbol_count(self, latent_hw: tuple[int, int]) -> int:
        """How many latent symbols (hyper-latents and latents) an image with latents of latent_hw codes."""
        z = self.h_a[-1].out_channels * (latent_hw[0] // 4) * (latent_hw[1] // 4)
        return z + self.gains.gain.shape[1] * latent_hw[0] * latent_hw[1]

    def update_tables(self) -> None:
        self.entropy_z.update()
        self.gaussian.update_scale_table(SCALE_TABLE, force=True)

    def tables(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        tables = {f"z{q}": _eb_tables(b) for q, b in enumerate(self.entropy_z.bottlenecks)}
        tables["gaussian"] = _eb_tables(self.gaussian)
        return tables

    def _hyper64(self, z_hat: Tensor) -> Tensor:
        """The hyper-synthesis output for z_hat, computed in float64 on the CPU (a copy made once)."""
        with self._lock:
            if self._h_s64 is None:
                self._h_s64 = copy.deepcopy(self.h_s).to("cpu", torch.float64)
        return self._h_s64(z_hat.to("cpu", torch.float64))

    def _hyper_exact(self, z_hat: Tensor) -> Tensor:
        """The hyper-synthesis output for z_hat in fixed point (float64 values, exact everywhere)."""
        from .exact import ONE, to_fixed

        return self.exact_twin("h_s")(to_fixed(z_hat.cpu())) / ONE

    def _gaussian_params(self, z_hat: Tensor, exact: bool = True) -> tuple[Tensor, np.ndarray]:
        """Means (float32, on z_hat's device) and scale-table indexes (numpy) from z_hat, on the
        CPU in fixed point (exact=False: in float64, as format versions 1 and 2)."""
        scales, means = (self._hyper_exact(z_hat) if exact else self._hyper64(z_hat)).chunk(2, 1)
        indexes = scale_indexes(scales)[0].numpy()
        return means.to(device=z_hat.device, dtype=torch.float32), indexes

    def _hyper_symbols(self, y: Tensor, quality: int) -> tuple[Tensor, Tensor, Tensor]:
        """Quality index tensor, rounded hyper-latent symbols of y (1, M, h, w) and their median offset."""
        q = torch.tensor([quality], device=y.device)
        z_med = self.entropy_z.medians(q)
        return q, torch.round(self.h_a(y) - z_med), z_med

    @torch.no_grad()
    def code(self, y: Tensor, quality: int) -> tuple[list[tuple[np.ndarray, np.ndarray, str]], Tensor]:
        """Symbols of one tile's latents (1, M, h, w) as (symbols, table indexes, table name): z then y;
        and the synthesis input the decoder will rebuild from them."""
        q, z_sym, z_med = self._hyper_symbols(y, quality)
        means, indexes = self._gaussian_params(z_sym + z_med)
        y_sym = torch.round(y - means)
        z_np = z_sym[0].to(torch.int32).cpu().numpy()
        y_np = y_sym[0].to(torch.int32).cpu().numpy()
        streams = [(z_np, channel_indexes(z_np.shape), f"z{quality}"), (y_np, indexes, "gaussian")]
        return streams, self.gains(y_sym + means, q, inverse=True)

    @torch.no_grad()
    def read_latents(self, latent_hw: tuple[int, int], quality: int, read: SymbolReader,
                     device: torch.device, exact: bool = True) -> Tensor:
        """The synthesis input (1, M, h, w) of one tile, from the symbols that read() decodes;
        exact=False for files of format versions 1 and 2."""
        q, z_hat = self._read_hyper(latent_hw, quality, read, device)
        means, indexes = self._gaussian_params(z_hat, exact)
        y_sym = torch.from_numpy(read(indexes, "gaussian")).to(device=device, dtype=torch.float32)[None]
        return self.gains(y_sym + means, q, inverse=True)

    def _read_hyper(self, latent_hw: tuple[int, int], quality: int, read: SymbolReader,
                    device: torch.device) -> tuple[Tensor, Tensor]:
        """Quality index tensor and the decoded hyper-latents z_hat (1, N, h/4, w/4)."""
        q = torch.tensor([quality], device=device)
        n = self.h_a[-1].out_channels
        z_sym = read(channel_indexes((n, latent_hw[0] // 4, latent_hw[1] // 4)), f"z{quality}")
        return q, torch.from_numpy(z_sym).to(device=device, dtype=torch.float32)[None] + self.entropy_z.medians(q)
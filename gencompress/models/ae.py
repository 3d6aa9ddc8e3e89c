"""`ae`: autoencoder with a factorized prior (Ballé et al. 2017, ICLR), variable rate by gains."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from .base import (GainedTransforms, PerQualityBottlenecks, QualityGains, analysis_transform, bits, round_ste,
                   synthesis_transform)

# read(indexes, table_name) -> integer symbols shaped like indexes; supplied by the codec.
SymbolReader = Callable[[np.ndarray, str], np.ndarray]


class FactorizedPrior(GainedTransforms):
    """x -> y = g_a(x) -> gains -> round -> factorized entropy model -> g_s -> x_hat."""

    stride = 16  # input sizes must be multiples of this

    def __init__(self, n: int = 128, m: int = 192):
        super().__init__()
        self.g_a = analysis_transform(n, m)
        self.g_s = synthesis_transform(n, m)
        self.gains = QualityGains(m)
        self.entropy_y = PerQualityBottlenecks(m)

    def forward(self, x: Tensor, quality: Tensor) -> dict[str, Tensor]:
        """Training/evaluation pass: reconstruction and per-sample bits (noisy rate, rounded decoder input)."""
        y = self.gains(self.g_a(x), quality)
        _, likelihoods = self.entropy_y(y, quality)
        med = self.entropy_y.medians(quality)
        y_hat = round_ste(y - med) + med
        x_hat = self.g_s(self.gains(y_hat, quality, inverse=True))
        return {"x_hat": x_hat, "bits": bits(likelihoods)}

    def aux_loss(self) -> Tensor:
        return self.entropy_y.aux_loss()

    def update_tables(self) -> None:
        self.entropy_y.update()

    def symbol_count(self, latent_hw: tuple[int, int]) -> int:
        """How many latent symbols an image with latents of latent_hw codes."""
        return self.gains.gain.shape[1] * latent_hw[0] * latent_hw[1]

    def tables(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Integer CDF tables (cdf, length, offset) by name, for the entropy coder."""
        return {f"y{q}": _eb_tables(b) for q, b in enumerate(self.entropy_y.bottlenecks)}

    @torch.no_grad()
    def code(self, y: Tensor, quality: int) -> tuple[list[tuple[np.ndarray, np.ndarray, str]], Tensor]:
        """Symbols of one tile's latents (1, M, h, w) as (symbols, table indexes, table name), and the
        synthesis input the decoder will rebuild from them."""
        q = torch.tensor([quality], device=y.device)
        med = self.entropy_y.medians(q)
        sym = torch.round(y - med)
        symbols = sym[0].to(torch.int32).cpu().numpy()
        return [(symbols, channel_indexes(symbols.shape), f"y{quality}")], self.gains(sym + med, q, inverse=True)

    @torch.no_grad()
    def read_latents(self, latent_hw: tuple[int, int], quality: int, read: SymbolReader,
                     device: torch.device, exact: bool = True) -> Tensor:
        """The synthesis input (1, M, h, w) of one tile, from the symbols that read() decodes."""
        q = torch.tensor([quality], device=device)
        m = self.gains.gain.shape[1]
        sym = read(channel_indexes((m, *latent_hw)), f"y{quality}")
        y_hat = torch.from_numpy(sym).to(device=device, dtype=torch.float32)[None]
        return self.gains(y_hat + self.entropy_y.medians(q), q, inverse=True)

def channel_indexes(shape: tuple[int, ...]) -> np.ndarray:
    """Table index of each latent element when every channel has its own table."""
    return np.broadcast_to(np.arange(shape[0], dtype=np.int32)[:, None, None], shape)


def _eb_tables(b: nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(t.detach().cpu().numpy().astype(np.int32) for t in (b._quantized_cdf, b._cdf_length, b._offset))

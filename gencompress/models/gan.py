"""The GAN decoder ("sharpen"): restores texture from the latents of a shipped model, at decode time.

The encoder, the entropy model and the plain (MSE) synthesis stay frozen, so every existing file can
be sharpened. The generator is a residual on top of the plain reconstruction, conditioned on a
realism strength s in [0, 1] (multi-realism, Agustsson et al. 2023):

    x_sharp = x_plain + s * tanh(G(y, x_plain, s))

so s = 0 is the plain decoder's output exactly, whatever G. G follows HiFiC's generator (Mentzer et
al. 2020) in miniature: residual blocks on the latents at 1/16 scale, transposed-convolution
upsampling to 1/2 scale, where the plain reconstruction joins in (space-to-depth), residual blocks,
and depth-to-space to full size. It is small: decoding a 768x512 image sharpened takes 0.78 s against
0.50 s plain on 2 CPU threads (benchmarks/sharpen.py).

The discriminator is HiFiC's conditional PatchGAN: it sees the image and the latents (projected to
12 channels and upsampled), with spectral normalization on every convolution, and returns its
intermediate features for feature matching.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True))


class Sharpener(nn.Module):
    """G(y, x_plain, s): a residual image that adds plausible detail to the plain reconstruction."""

    def __init__(self, m: int = 192, c: int = 128, blocks: int = 3, fine: int = 48):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(m + 1, c, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                                  *(ResBlock(c) for _ in range(blocks)))
        self.up = nn.Sequential(_up(c, 96), _up(96, 64), _up(64, fine))  # 1/16 -> 1/2
        self.fine = nn.Sequential(nn.Conv2d(fine + 12 + 1, fine, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                                  ResBlock(fine), ResBlock(fine), nn.Conv2d(fine, 12, 3, padding=1))
        nn.init.zeros_(self.fine[-1].weight)  # starts as the identity: x_sharp = x_plain
        nn.init.zeros_(self.fine[-1].bias)

    def forward(self, y: Tensor, x_plain: Tensor, strength: Tensor) -> Tensor:
        """y: synthesis input (B, M, h, w); x_plain: its plain synthesis (B, 3, 16h, 16w); strength (B,)."""
        s = strength.to(y.dtype)[:, None, None, None]
        f = self.up(self.head(torch.cat([y, s.expand(-1, 1, *y.shape[2:])], 1)))
        half = F.pixel_unshuffle(x_plain, 2)
        r = self.fine(torch.cat([f, half, s.expand(-1, 1, *half.shape[2:])], 1))
        return x_plain + s * F.pixel_shuffle(torch.tanh(r), 2)  # tanh: a residual bounded to +-1


class Discriminator(nn.Module):
    """Conditional PatchGAN: logits per patch of (image, latents), and the features it computed."""

    def __init__(self, m: int = 192, c: int = 64):
        super().__init__()
        self.latents = spectral_norm(nn.Conv2d(m, 12, 3, padding=1))
        self.layers = nn.ModuleList([
            spectral_norm(nn.Conv2d(3 + 12, c, 4, stride=2, padding=1)),
            spectral_norm(nn.Conv2d(c, 2 * c, 4, stride=2, padding=1)),
            spectral_norm(nn.Conv2d(2 * c, 4 * c, 4, stride=2, padding=1)),
            spectral_norm(nn.Conv2d(4 * c, 4 * c, 3, padding=1)),
        ])
        self.out = spectral_norm(nn.Conv2d(4 * c, 1, 3, padding=1))

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, list[Tensor]]:
        """x in [0, 1] (B, 3, H, W), y the synthesis input (B, M, H/16, W/16)."""
        lat = F.interpolate(F.leaky_relu(self.latents(y), 0.2), scale_factor=16, mode="nearest")
        h, features = torch.cat([x * 2 - 1, lat], 1), []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            features.append(h)
        return self.out(h), features

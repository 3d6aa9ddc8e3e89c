"""The encoder's optimization: fit one tile's latents and decoder to its pixels.

loss = MSE + lambda * bits / pixels, Adam with a cosine learning rate. Most steps see latents
soft-rounded (temperature 0.3 -> 0.1) plus uniform noise (width 1 -> 0.3), a smooth stand-in for
rounding whose gradients reach every latent; the last `hard_fraction` of the steps round for
real, with straight-through gradients, so the networks settle on the values the decoder will see.
Seeded: the same tile, settings and machine give the same model.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

from .network import OverfitNet
from .presets import Effort

SEED = 0
GRADIENT_CLIP = 1.0  # on the networks' parameters (norm), not the latents


def fit(image: np.ndarray, lam: float, effort: Effort, device: torch.device, progress: bool = False,
        label: str = "overfit") -> OverfitNet:
    """A model of one tile (uint8 h x w x 3) after effort.steps optimization steps."""
    h, w = image.shape[:2]
    target = torch.tensor(image, device=device).permute(2, 0, 1).float() / 255
    net = OverfitNet(effort.arch, h, w, SEED).to(device)
    networks = net.network_parameters()
    optimizer = torch.optim.Adam(net.parameters(), lr=effort.learning_rate)
    hard_from = int(effort.steps * (1 - effort.hard_fraction))
    bar = _bar(effort.steps, progress, label)
    for step in range(effort.steps):
        t = step / max(effort.steps - 1, 1)
        for group in optimizer.param_groups:
            group["lr"] = effort.learning_rate * 0.5 * (1 + math.cos(math.pi * t))
        if step >= hard_from:
            grids = net.quantize("round")
        else:
            u = step / max(hard_from, 1)
            grids = net.quantize("soft", temperature=0.3 - 0.2 * u, noise=1.0 - 0.7 * u)
        x_hat = net.synthesize(grids)
        mse = F.mse_loss(x_hat, target)
        bits = net.rate(grids)
        loss = mse + lam * bits / (h * w)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(networks, GRADIENT_CLIP)
        optimizer.step()
        if bar is not None:
            bar.update()
            if step % 10 == 0 or step == effort.steps - 1:
                psnr = -10 * math.log10(max(float(F.mse_loss(x_hat.detach().clamp(0, 1), target)), 1e-10))
                bar.set_postfix(bpp=f"{float(bits.detach()) / (h * w):.3f}", psnr=f"{psnr:.2f}", refresh=False)
    if bar is not None:
        bar.close()
    return net


def _bar(total: int, enabled: bool, label: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="step", file=sys.stderr, leave=False)

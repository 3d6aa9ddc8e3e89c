"""The encoder's optimization: fit one tile's latents and decoder to its pixels.

loss = MSE + lambda * bits / pixels, with a learning rate held at its peak for a fraction of the
fit (presets.Effort.learning_rate_hold), then a cosine decay to zero. The latents move by Adam (short
moment memories: presets.Effort.betas); the networks by SOAP (Adam in the eigenbases of a
Shampoo preconditioner, as Cool-chic 5 does; pytorch_optimizer's), which lowered the loss of a
300-step fit by 7 to 12% on five of six held-out fits (README, recipe 9): the networks' few
weights are strongly coupled, and a preconditioned step follows their curvature. Most steps see
latents soft-rounded plus uniform noise, soft-rounded again, the temperature and the noise's
width falling linearly (presets.Effort.temperature and .noise): a smooth stand-in for rounding
whose gradients reach every latent; the last `hard_fraction` of the steps round for real and
hold the latents where the soft phase left them, so the networks settle on the values the
decoder will see. Not straight-through gradients to the latents there:
latents left near +-0.5 drift across rounding boundaries and cost bits; in a 1500-step fit the
rate rose 5x within 30 hard steps (README, recipe 8).

The upsampling filters can move slower than the rest of the networks
(Effort.upsampling_learning_rate_scale): in long fits they wander and the fit stalls (README,
recipe 11), so the high effort moves them at a tenth of the networks' learning rate.

After the last step the finest grid's roundings are searched (latent_search.py, where the
effort asks for it): rounding to nearest is not always the integer that codes best.

The networks start from the shipped starting points of the quality (starting.py) when there
are some for the architecture, else from a random initialization; latents start at zero.

The schedule runs over a fraction of the work done: steps / effort.steps, or, under a time
budget, seconds spent / seconds available, so a budget gets the whole schedule in its time.
Seeded: the same tile and settings on the same machine give the same model (not so under a
time budget, whose number of steps depends on the machine's speed).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import latent_search, starting
from .network import OverfitNet
from .presets import Effort

SEED = 0
MAX_BUDGET_STEPS = 100_000  # a time budget's step limit, however fast the machine


@dataclass(frozen=True)
class Budget:
    """Stop by time: `seconds` for the fit, less `reserve_steps` steps' worth kept for what
    follows (choosing parameter steps and entropy coding cost 15 to 25 steps of time), but never
    more than `reserve_fraction` of the budget: on a tiny tile a few slow first steps would
    otherwise reserve most of a short budget and leave it unspent. 0.4 caps the reserve of a 10 s
    budget at 4 s, a little less than a 768x512 image's 3.5 to 5 s of coding: such a budget runs
    over slightly (10.3 s on kodim23, README "Quality against encoding time")."""
    seconds: float
    reserve_steps: float = 25.0
    reserve_fraction: float = 0.4


def fit(image: np.ndarray, lam: float, effort: Effort, device: torch.device, progress: bool = False,
        label: str = "overfit", quality: int | None = None, budget: Budget | None = None) -> OverfitNet:
    """A model of one tile (uint8 h x w x 3): effort.steps optimization steps, then (where
    effort.latent_search) the finest grid's roundings searched; or as many steps as `budget`
    allows, and no search: its cost is a fixed 0.1-0.2 s on small tiles, which a budget's reserve
    in steps does not cover (a 1.5 s budget over four 128x128 tiles ran 0.16 s over). With
    `quality`, the networks start from that quality's starting points."""
    h, w = image.shape[:2]
    target = torch.tensor(image, device=device).permute(2, 0, 1).float() / 255
    start = starting.load(quality, effort.arch) if quality is not None else None
    net = OverfitNet(effort.arch, h, w, SEED, start).to(device)
    optimize([net], [target], lam, effort, budget, _bar(effort.steps, budget, progress, label))
    if effort.latent_search and budget is None:
        latent_search.search(net, target, lam)
    return net


def optimize(nets: Sequence[OverfitNet], targets: Sequence[torch.Tensor], lam: float, effort: Effort,
             budget: Budget | None = None, bar=None) -> None:
    """Optimize nets (each with its target image, 3 x h x w in [0, 1]) for mean(MSE + lambda * bpp).
    Nets may share their networks' parameters (starting.py trains shared starting points so)."""
    networks, optimizers = optimizers_of(nets, effort)
    bf16 = bfloat16_synthesis(targets[0].device)
    begin = time.perf_counter()
    step = 0
    while True:
        if budget is None:
            if step >= effort.steps:
                break
            t = step / max(effort.steps - 1, 1)
        else:
            spent = time.perf_counter() - begin
            per_step = spent / step if step else 0.0
            available = budget.seconds - min(budget.reserve_steps * per_step, budget.reserve_fraction * budget.seconds)
            if step >= MAX_BUDGET_STEPS or (step and spent + per_step > available):
                break
            t = max(min(spent / available, 1.0) if available > 0 else 1.0, step / MAX_BUDGET_STEPS)
        decay = rate_factor(t, effort.learning_rate_hold)
        for optimizer, rate in zip(optimizers, (effort.learning_rate, effort.network_learning_rate)):
            for group in optimizer.param_groups:
                group["lr"] = rate * decay * group.get("lr_scale", 1.0)
        soft = t < 1 - effort.hard_fraction
        if soft:  # the soft phase's schedule, the same for every net of this step
            u = t / (1 - effort.hard_fraction)
            (t0, t1), (n0, n1) = effort.temperature, effort.noise
            temperature, noise = t0 + (t1 - t0) * u, n0 + (n1 - n0) * u
        loss = torch.zeros((), device=targets[0].device)
        for net, target in zip(nets, targets):
            grids = net.quantize("soft", temperature=temperature, noise=noise) if soft else net.quantize("round")
            with torch.autocast(target.device.type, dtype=torch.bfloat16, enabled=bf16):
                x_hat = net.synthesize(grids).float()
            bits = net.rate(grids)
            pixels = target.shape[1] * target.shape[2]
            loss = loss + (F.mse_loss(x_hat, target) + lam * bits / pixels) / len(nets)
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(networks, effort.gradient_clip)
        for o in optimizers:
            o.step()
        step += 1
        if bar is not None:
            _report(bar, step, t, x_hat, target, bits, budget)


def optimizers_of(nets: Sequence[OverfitNet], effort: Effort) -> tuple[list[torch.Tensor], list[torch.optim.Optimizer]]:
    """The networks' parameters (each once), and the fit's two optimizers: Adam for the latents,
    SOAP for the networks (the upsampling filters in a group of their own, at their scale)."""
    from pytorch_optimizer import SOAP

    networks = list(dict.fromkeys(p for net in nets for p in net.network_parameters()))
    latents = list(dict.fromkeys(p for net in nets for p in net.latents))
    taps = list(dict.fromkeys(net.weights["upsampling_taps"] for net in nets))
    groups = [{"params": [p for p in networks if all(p is not t for t in taps)], "lr_scale": 1.0},
              {"params": taps, "lr_scale": effort.upsampling_learning_rate_scale}]
    return networks, [torch.optim.Adam(latents, lr=effort.learning_rate, betas=effort.betas),
                      SOAP(groups, lr=effort.network_learning_rate, betas=effort.network_betas, weight_decay=0.0,
                           precondition_frequency=effort.precondition_frequency)]


def rate_factor(t: float, hold: float) -> float:
    """The learning rates' multiplier at fraction t of the fit: 1 until t = hold, then a cosine
    falling to 0 at t = 1 (hold 0: a cosine over the whole fit)."""
    return 0.5 * (1 + math.cos(math.pi * max(t - hold, 0.0) / (1 - hold)))


def bfloat16_synthesis(device: torch.device) -> bool:
    """Whether the fit's synthesis runs in bfloat16 (torch.autocast: its 1x1 layers and 3x3
    convolutions; the rate, the loss and every update stay float32): on CPUs whose instruction
    set torch uses has bfloat16 arithmetic (AVX-512 BF16 or AMX), where a step costs about 10%
    less and the loss a fit reaches does not change beyond its own seed-to-seed spread (README,
    "Cheaper steps"). Elsewhere (older CPUs, where bfloat16 is emulated and slower; GPUs, not
    measured) float32. Only the encoder's path changes: files are made by the integer decoder."""
    if device.type != "cpu" or not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def _report(bar, step: int, t: float, x_hat: torch.Tensor, target: torch.Tensor, bits: torch.Tensor,
            budget: Budget | None) -> None:
    bar.update(1 if budget is None else round(1000 * t) - bar.n)
    if step % 10 == 1:
        psnr = -10 * math.log10(max(float(F.mse_loss(x_hat.detach().clamp(0, 1), target)), 1e-10))
        pixels = target.shape[1] * target.shape[2]
        bar.set_postfix(step=step, bpp=f"{float(bits.detach()) / pixels:.3f}", psnr=f"{psnr:.2f}", refresh=False)


def _bar(steps: int, budget: Budget | None, enabled: bool, label: str):
    if not enabled:
        return None
    from tqdm import tqdm

    if budget is None:
        return tqdm(total=steps, desc=label, unit="step", file=sys.stderr, leave=False)
    return tqdm(total=1000, desc=f"{label} ({budget.seconds:g} s)", unit="‰", file=sys.stderr, leave=False,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}")

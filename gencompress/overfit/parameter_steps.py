"""The networks' parameters as integers: each tensor's quantization step, chosen by rate-distortion.

A tensor's parameters are sent as integers c at a step 2^-k of its own (value = c * 2^-k), coded
with the zero-mean table that suits them best. Tensors differ: on held-out fits the chosen steps
ran from 2^-2 (the non-anchor ARM's first layer, whose many weights each matter little) to 2^-8
(the synthesis's); one step per module made every held-out file's loss higher, by up to 3%
(README, "Recipe 13"). The integer decoder computes each module at its finest step k_m = max k:
a tensor's integers are scaled by 2^(k_m - k) and must then lie within +-WEIGHT_LIMIT, so the
fixed-point bounds of integer.py hold whatever the steps.

The search runs on the encoder's float model, not the integer decoder: a candidate costs a float
forward of one module (an ARM's passes on cached contexts, or the synthesis on the cached
upsampled grids), several times cheaper than the exact decoder (where two steps cost nearly the
same, float rounding may pick the other one; the file carries whichever was picked). Modules in
order (ARMs, upsampling, synthesis): first one step for the whole module by descent from 2^-8,
then each tensor's own step by descent from there; a module's cost is
lambda x (latent bits + its parameter bits) for an ARM, MSE of 8-bit pixels + lambda x parameter
bits for the others (modules not chosen yet stay in float).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch

from . import tables
from .architecture import MAX_STEP_BITS, MODULES, WEIGHT_LIMIT
from .network import OverfitNet

CANDIDATES = range(0, MAX_STEP_BITS + 1)  # step exponents k searched
FIRST_STEP = 8  # a module's common step is searched from 2^-8 towards the better neighbour


def quantize(values: np.ndarray, k: int, shift: int = 0) -> np.ndarray:
    """Parameters as integers at step 2^-k (float64 holding integers), within +-WEIGHT_LIMIT /
    2^shift (shift: the module's finest step exponent less k)."""
    limit = WEIGHT_LIMIT >> shift
    return np.clip(np.round(values * (1 << k)), -limit, limit)


def module_step(steps: dict[str, int], names: list[str]) -> int:
    """The step exponent the integer decoder computes a module at: its tensors' finest."""
    return max(steps[n] for n in names)


def quantize_module(floats: dict[str, np.ndarray], steps: dict[str, int]) -> dict[str, np.ndarray]:
    """A module's tensors (name -> float values) as the integers sent, each at its own step."""
    k_m = module_step(steps, list(floats))
    return {n: quantize(v, steps[n], k_m - steps[n]) for n, v in floats.items()}


def bits(ints: np.ndarray, coding) -> tuple[int, float]:
    """The zero-mean table (scale bin) that codes these parameter integers (1-d) in the fewest
    bits, and the bits."""
    if not ints.size:
        return 0, 0.0
    costs = tables.symbol_bits(ints[None], np.broadcast_to(_PARAMETER_TABLES, (tables.SCALE_BINS, ints.size)),
                               coding, axis=1)
    best = int(np.argmin(costs))
    return best, float(costs[best])


_PARAMETER_TABLES = np.array([[tables.parameter_table(b)] for b in range(tables.SCALE_BINS)])


def choose(net: OverfitNet, image: np.ndarray, lam: float, coding) -> dict[str, int]:
    """Each parameter tensor's step exponent (name -> k) for a fitted tile model and its uint8
    (h, w, 3) original. The net is left as it was."""
    layout = net.arch.parameters()
    floats = {m: {n: t.detach().cpu().double().numpy() for n, t in net.named_for_coding()[m]} for m in MODULES}
    saved = [(t, t.detach().clone()) for m in MODULES for _, t in net.named_for_coding()[m]]
    steps: dict[str, int] = {}
    try:
        with torch.no_grad():
            cost = _Costs(net, image, lam, coding, floats)
            for m in MODULES:
                names = [n for n, _ in layout[m]]
                steps |= dict.fromkeys(names, FIRST_STEP)
                evaluate = functools.partial(cost, m, steps)
                best = _descend(evaluate, names, steps, evaluate())
                for n in names:
                    best = _descend(evaluate, [n], steps, best)
                cost.settle(m, steps)
    finally:
        with torch.no_grad():
            for tensor, value in saved:
                tensor.copy_(value)
    return steps


def _descend(evaluate: Callable[[], float], names: list[str], steps: dict[str, int], best: float) -> float:
    """Move the step exponent of `names` (together) one at a time towards the cheaper side while
    the cost falls (it is near unimodal in k); returns the least cost, steps left at it."""
    for direction in (1, -1):
        moved = False
        while steps[names[0]] + direction in CANDIDATES:
            for n in names:
                steps[n] += direction
            c = evaluate()
            if c >= best:
                for n in names:
                    steps[n] -= direction
                break
            best, moved = c, True
        if moved:
            break
    return best


class _Costs:
    """The float model's cost of a module at given steps, with what does not change cached: the
    latents' contexts per ARM, the upsampled grids once the upsampling is chosen."""

    def __init__(self, net: OverfitNet, image: np.ndarray, lam: float, coding,
                 floats: dict[str, dict[str, np.ndarray]]):
        self.net, self.lam, self.coding, self.floats = net, lam, coding, floats
        device = net.latents[0].device
        self.target = torch.tensor(image, device=device).permute(2, 0, 1).float()
        self.pixels = image.shape[0] * image.shape[1]
        self.grids = net.quantize("round")
        passes: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"arm_anchor": [], "arm_other": []}
        for module, values, feats in net.passes(self.grids):
            passes[module].append((values, feats))
        # each ARM's values and contexts, all passes in one (its bits are a sum over them)
        self.passes = {m: (torch.cat([v for v, _ in p]), torch.cat([f for _, f in p], dim=1))
                       for m, p in passes.items() if p}
        self.upsampled: torch.Tensor | None = None
        self.bits: dict[tuple[str, int, int], float] = {}  # (tensor, k, k_m - k) -> its bits

    def __call__(self, module: str, steps: dict[str, int]) -> float:
        """The module's cost with its tensors at these steps (name -> k; others ignored)."""
        parameter_bits = self._set(module, steps)
        if module in ("arm_anchor", "arm_other"):
            latent_bits = float(self.net.pass_bits(module, *self.passes[module])) if module in self.passes else 0.0
            return self.lam * (latent_bits + parameter_bits) / self.pixels
        x = self.net.synthesize(self.grids) if self.upsampled is None else self.net.synthesis(self.upsampled)
        pixels = torch.round(x.clamp(0, 1) * 255)  # what the decoder's 8-bit output is
        mse = float(torch.mean((pixels - self.target) ** 2)) / 255 ** 2
        return mse + self.lam * parameter_bits / self.pixels

    def settle(self, module: str, steps: dict[str, int]) -> None:
        """Leave the module quantized at its chosen steps (the modules after it see it so)."""
        self._set(module, steps)
        if module == "upsampling":
            self.upsampled = self.net.upsample(self.grids)

    def _set(self, module: str, steps: dict[str, int]) -> float:
        """Put the module's quantized values into the net; returns its parameter bits."""
        ints = quantize_module(self.floats[module], steps)
        weights = dict(self.net.named_for_coding()[module])
        k_m = module_step(steps, list(ints))
        total = 0.0
        for n, c in ints.items():
            weights[n].copy_(torch.from_numpy(c * 2.0 ** -steps[n]).to(weights[n]))
            key = (n, steps[n], k_m - steps[n])
            if key not in self.bits:
                self.bits[key] = bits(c.ravel(), self.coding)[1]
            total += self.bits[key]
        return total

"""Seconds per optimization step of the overfitted codec under levers not in the encoder.

    python benchmarks/overfit_levers.py [--image data/train/0052.png] [--size 512x768] [--steps 20]
                                        [--threads 2] [--levers eager,bf16,compile] [--device cpu]

One step is the fit's (fit.optimize): soft-rounded latents, synthesis, rate, MSE + lambda * bpp,
backward, the networks' gradient clipped, Adam for the latents and SOAP for the networks.
- eager: as fit.py runs it;
- bf16: under torch.autocast(bfloat16) (these CPUs have AVX-512 BF16): matrix products and
  convolutions in bfloat16;
- plain: the compile lever's plain-torch functions (below), not compiled. On a GPU this is the
  step without host synchronization: overfit/kernels.py's upsampling reads its taps as Python
  numbers (`tolist()`), which on a GPU waits for the device, 24 times a step;
- cudagraphs (--device cuda only): the loss through torch.compile(mode="reduce-overhead"), whose
  CUDA graphs replay a step's hundreds of small kernels without launching each from Python (a
  lone encode on an H200 kept its SMs busy 13-20% of the time: README "On a GPU"); inductor
  compiles (and fuses) the kernels first;
- graphs (--device cuda only): the same CUDA graphs without inductor (torch.compile's
  "cudagraphs" backend: autograd's kernels as they are, recorded once and replayed), so that
  compiling should take seconds, not inductor's minutes;
- compile: the loss through torch.compile (inductor, static shapes). Inductor fails on the
  backward of replicate padding of channels-last tensors, and soft rounding's math.tanh of the
  temperature (a tensor here, as it changes every step) breaks the graph and recompiles each
  step; so for this lever only, the padding of the upsampling and of the residual convolutions
  is rebuilt from slices, the upsampling is the plain-torch form of overfit/kernels.py's and soft
  rounding uses torch.tanh (the same functions); the rate's hand-written autograd functions are
  left to dynamo.
  The first step's time includes compiling (inductor caches compiled graphs on disk per shape,
  so a second run of the same size starts sooner). plain, compile, cudagraphs and graphs run after
  eager and bf16, the padding patched for them alone. Before 2026-11-27 a step's optimizer was
  Adam for all parameters (0.0997 s eager, 0.0122 s cudagraphs on an H200: README "On a GPU").
Prints per lever the first step's seconds and the median over --steps of the following ones.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
QUALITY = 5
LEVERS = ("eager", "bf16", "plain", "compile", "cudagraphs", "graphs")


def _pad_edges(x: torch.Tensor, left: int, right: int, dim: int) -> torch.Tensor:
    first, last = x.narrow(dim, 0, 1), x.narrow(dim, x.shape[dim] - 1, 1)
    return torch.cat([first] * left + [x] + [last] * right, dim)


def _compile_friendly() -> None:
    """Replicate padding from slices (inductor cannot differentiate replication_pad2d on
    channels-last) and soft rounding without Python's math on a tensor."""
    from gencompress.overfit import network

    def soft_round(y, temperature):
        m = torch.floor(y) + 0.5
        edge = torch.tanh(0.5 / temperature) if torch.is_tensor(temperature) else math.tanh(0.5 / temperature)
        return m + 0.5 * torch.tanh((y - m) / temperature) / edge

    def conv3x3(x, weight, bias):
        return F.conv2d(_pad_edges(_pad_edges(x, 1, 1, -1), 1, 1, -2), weight, bias)

    def upsample_last(x, taps):
        n = x.shape[-1]
        p = _pad_edges(x, 2, 2, -1)
        g0, g1, g2, g3 = taps
        even = g0 * p[..., 0:n] + g1 * p[..., 1:n + 1] + g2 * p[..., 2:n + 2] + g3 * p[..., 3:n + 3]
        odd = g3 * p[..., 1:n + 1] + g2 * p[..., 2:n + 2] + g1 * p[..., 3:n + 3] + g0 * p[..., 4:n + 4]
        return torch.stack([even, odd], dim=-1).reshape(*x.shape[:-1], 2 * n)

    def upsample(x, taps):
        return upsample_last(upsample_last(x, taps).transpose(-1, -2), taps).transpose(-1, -2)

    network._conv3x3, network._soft_round, network.kernels.upsample = conv3x3, soft_round, upsample


def measure(lever: str, image: np.ndarray, steps: int, device: torch.device) -> tuple[float, float]:
    from gencompress.overfit import fit, network, presets, starting

    h, w = image.shape[:2]
    target = torch.tensor(image, device=device).permute(2, 0, 1).float() / 255
    effort = presets.EFFORTS[presets.DEFAULT_EFFORT]
    net = network.OverfitNet(effort.arch, h, w, 0, starting.load(QUALITY, effort.arch)).to(device)
    lam = presets.LAMBDAS[QUALITY - 1]
    networks, optimizers = fit.optimizers_of([net], effort)

    def loss_of(temperature: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        grids = net.quantize("soft", temperature=temperature, noise=noise)
        return F.mse_loss(net.synthesize(grids), target) + lam * net.rate(grids) / (h * w)

    modes = {"compile": {"mode": "default"}, "cudagraphs": {"mode": "reduce-overhead"},
             "graphs": {"backend": "cudagraphs"}}
    loss_fn = torch.compile(loss_of, dynamic=False, **modes[lever]) if lever in modes else loss_of
    times = []
    for i in range(steps + 1):
        begin = time.perf_counter()
        schedule = (0.3 - 1e-3 * i, 1.0 - 1e-3 * i)  # temperature, noise: numbers as fit.py passes them,
        if lever in modes:  # tensors where compiled (a new number each step would recompile)
            schedule = tuple(torch.tensor(v, device=device) for v in schedule)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=lever == "bf16"):
            loss = loss_fn(*schedule)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(networks, effort.gradient_clip)
        for optimizer in optimizers:
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - begin)
    return times[0], statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=ROOT / "data" / "train" / "0052.png")
    ap.add_argument("--size", default="512x768", help="HxW of the centre crop")
    ap.add_argument("--steps", type=int, default=20, help="timed steps after the first (at least 1)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--levers", default="eager,bf16,compile")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    levers = args.levers.split(",")
    unknown = set(levers) - set(LEVERS)
    if unknown:
        raise SystemExit(f"--levers: unknown {', '.join(sorted(unknown))}")
    for lever in ("cudagraphs", "graphs"):
        if lever in levers and device.type != "cuda":
            raise SystemExit(f"--levers {lever}: needs --device cuda")
    torch.set_num_threads(args.threads)
    if args.steps < 1:
        raise SystemExit("--steps: at least 1")
    h, w = (int(v) for v in args.size.lower().split("x"))
    with Image.open(args.image) as im:
        rgb = np.asarray(im.convert("RGB"))
    top, left = max((rgb.shape[0] - h) // 2, 0), max((rgb.shape[1] - w) // 2, 0)
    image = np.ascontiguousarray(rgb[top:top + h, left:left + w])
    patched = ("plain", "compile", "cudagraphs", "graphs")
    for lever in sorted(levers, key=lambda name: name in patched):  # these last: they patch the network
        if lever in patched:
            _compile_friendly()
        first, per_step = measure(lever, image, args.steps, device)
        print(f"{lever}: first step {first:.2f} s, then {per_step:.4f} s per step "
              f"({image.shape[0]}x{image.shape[1]} HxW, {args.threads} threads, {args.device})", flush=True)


if __name__ == "__main__":
    main()

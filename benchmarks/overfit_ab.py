"""Seconds per fit step of the working tree's overfitted network against another commit's, in one process.

    python benchmarks/overfit_ab.py --against REV [--image ../shared/data/kodak/kodim01.png]
                                    [--threads 2] [--rounds 8] [--steps 5]

This machine's speed drifts by 10-20% between runs, more than most levers are worth, so two
separate runs of benchmarks/overfit_speed.py can rank two versions either way. Here both
versions of `gencompress/overfit/network.py` (REV's read with `git show`, its other modules
taken from the working tree, so REV must share their interfaces) fit the same image in turns:
each round runs one untimed step and --steps timed steps of each. Prints per version the median
and the minimum over rounds of seconds per step, and the loss after the last step (the two
compute the same function, so the losses agree to float rounding).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
QUALITY = 5


def network_at(rev: str):
    """The network module as it was at rev, imported inside gencompress.overfit."""
    source = subprocess.run(["git", "show", f"{rev}:gencompress/overfit/network.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "network.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("gencompress.overfit._network_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", required=True, help="a git revision")
    ap.add_argument("--image", type=Path, default=ROOT.parent / "shared" / "data" / "kodak" / "kodim01.png")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per version and round")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from gencompress.overfit import network, presets, starting

    with Image.open(args.image) as im:
        image = np.asarray(im.convert("RGB"))
    h, w = image.shape[:2]
    target = torch.tensor(image).permute(2, 0, 1).float() / 255
    effort = presets.EFFORTS[presets.DEFAULT_EFFORT]
    lam = presets.LAMBDAS[QUALITY - 1]

    def make(module):
        net = module.OverfitNet(effort.arch, h, w, 0, starting.load(QUALITY, effort.arch))
        return net, torch.optim.Adam(net.parameters(), lr=effort.learning_rate, betas=effort.betas)

    def step(net, optimizer) -> float:
        grids = net.quantize("soft", temperature=effort.temperature[0], noise=effort.noise[0])
        loss = F.mse_loss(net.synthesize(grids), target) + lam * net.rate(grids) / (h * w)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    versions = {args.against: make(network_at(args.against)), "working tree": make(network)}
    times: dict[str, list[float]] = {name: [] for name in versions}
    for _ in range(args.rounds):
        for name, (net, optimizer) in versions.items():
            step(net, optimizer)
            begin = time.perf_counter()
            for _ in range(args.steps):
                step(net, optimizer)
            times[name].append((time.perf_counter() - begin) / args.steps)
    for name, (net, optimizer) in versions.items():
        print(f"{name}: {statistics.median(times[name]):.4f} s per step (median of {args.rounds} rounds, "
              f"min {min(times[name]):.4f}), loss {step(net, optimizer):.6f}; {args.image.name} {h}x{w} HxW, "
              f"{args.threads} threads", file=sys.stdout, flush=True)


if __name__ == "__main__":
    main()

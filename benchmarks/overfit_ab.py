"""Seconds per fit step of the working tree's encoder against another commit's, in one process.

    python benchmarks/overfit_ab.py --against REV [--image ../shared/data/kodak/kodim01.png]
                                    [--threads 2] [--rounds 8] [--steps 5]

This machine's speed drifts by 10-20% between runs, more than most levers are worth, so two
separate runs of benchmarks/overfit_speed.py can rank two versions either way. Here both
versions of `gencompress/overfit/` (REV's read with `git show` and imported under another name;
the rest of the package, the starting points included, is the working tree's) fit the same image
in turns: each round runs `fit.optimize` for --steps steps with each version, after one untimed
round. Prints per version the median and the minimum over rounds of seconds per step, and the
loss (MSE + lambda * bpp, latents rounded) at the end.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
QUALITY = 5


def fit_at(rev: str):
    """The fit module of gencompress/overfit as it was at rev."""
    folder = Path(tempfile.mkdtemp()) / "overfit"
    folder.mkdir()
    names = subprocess.run(["git", "ls-tree", "--name-only", rev, "gencompress/overfit/"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        if name.endswith(".py"):
            source = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=ROOT, capture_output=True, text=True,
                                    check=True).stdout
            (folder / Path(name).name).write_text(source)
    package = types.ModuleType("gencompress._at_rev")
    package.__path__ = [str(folder.parent)]
    sys.modules[package.__name__] = package
    return importlib.import_module("gencompress._at_rev.overfit.fit")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", required=True, help="a git revision")
    ap.add_argument("--image", type=Path, default=ROOT.parent / "shared" / "data" / "kodak" / "kodim01.png")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5, help="steps per version and round")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from gencompress.overfit import fit, presets, starting

    with Image.open(args.image) as im:
        image = np.asarray(im.convert("RGB"))
    h, w = image.shape[:2]
    target = torch.tensor(image).permute(2, 0, 1).float() / 255
    base = presets.EFFORTS[presets.DEFAULT_EFFORT]
    effort = presets.Effort(steps=args.steps, arch=base.arch)
    lam = presets.LAMBDAS[QUALITY - 1]
    versions = {}
    for name, module in ((args.against, fit_at(args.against)), ("working tree", fit)):
        versions[name] = (module, module.OverfitNet(base.arch, h, w, 0, starting.load(QUALITY, base.arch)))
    times: dict[str, list[float]] = {name: [] for name in versions}
    for round_ in range(args.rounds + 1):
        for name, (module, net) in versions.items():
            begin = time.perf_counter()
            module.optimize([net], [target], lam, effort)
            if round_:
                times[name].append((time.perf_counter() - begin) / args.steps)
    for name, (module, net) in versions.items():
        with torch.no_grad():
            grids = net.quantize("round")
            loss = F.mse_loss(net.synthesize(grids), target) + lam * net.rate(grids) / (h * w)
        print(f"{name}: {statistics.median(times[name]):.4f} s per step (median of {args.rounds} rounds, "
              f"min {min(times[name]):.4f}), loss {float(loss):.6f}; {args.image.name} {h}x{w} HxW, "
              f"{args.threads} threads", flush=True)


if __name__ == "__main__":
    main()

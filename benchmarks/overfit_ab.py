"""Seconds per fit step (or per decode) of the working tree's overfit codec against another commit's, in one process.

    python benchmarks/overfit_ab.py --against REV [--image ../shared/data/kodak/kodim01.png]
                                    [--threads 2] [--rounds 8] [--steps 5] [--decode]

This machine's speed drifts by 10-20% between runs, more than most levers are worth, so two
separate runs of benchmarks/overfit_speed.py can rank two versions either way. Here both
versions of `gencompress/overfit/` (REV's read with `git show` and imported under another name;
the rest of the package, the starting points included, is the working tree's) fit the same image
in turns: each round runs `fit.optimize` for --steps steps with each version, after one untimed
round. Prints per version the median and the minimum over rounds of seconds per step, and the
loss (MSE + lambda * bpp, latents rounded) at the end.

--decode times `gencompress.decode` of one file instead (the image at quality 5, fast effort,
encoded by the working tree), with REV's integer decoder (overfit/integer.py) and the working
tree's in turns, and checks that both give the same pixels.
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


def at_rev(rev: str, module: str = "fit"):
    """A module of gencompress/overfit as it was at rev."""
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
    return importlib.import_module(f"gencompress._at_rev.overfit.{module}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", required=True, help="a git revision")
    ap.add_argument("--image", type=Path, default=ROOT.parent / "shared" / "data" / "kodak" / "kodim01.png")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5, help="steps per version and round")
    ap.add_argument("--decode", action="store_true", help="time decoding instead of fit steps")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from gencompress.overfit import fit, presets, starting

    with Image.open(args.image) as im:
        image = np.asarray(im.convert("RGB"))
    if args.decode:
        return decode_ab(args, image)
    h, w = image.shape[:2]
    target = torch.tensor(image).permute(2, 0, 1).float() / 255
    base = presets.EFFORTS[presets.DEFAULT_EFFORT]
    effort = presets.Effort(steps=args.steps, arch=base.arch)
    lam = presets.LAMBDAS[QUALITY - 1]
    versions = {}
    for name, module in ((args.against, at_rev(args.against)), ("working tree", fit)):
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


def decode_ab(args: argparse.Namespace, image: np.ndarray) -> None:
    import gencompress
    from gencompress.overfit import bitstream, integer

    data = gencompress.Codec(model="overfit", quality=QUALITY, effort="fast", device="cpu").encode(image)
    versions = {args.against: at_rev(args.against, "integer").IntegerDecoder, "working tree": integer.IntegerDecoder}
    times: dict[str, list[float]] = {name: [] for name in versions}
    pixels = {}
    for round_ in range(args.rounds + 1):
        for name, decoder in versions.items():
            bitstream.IntegerDecoder = decoder  # what bitstream.decode builds the tile's decoder with
            begin = time.perf_counter()
            pixels[name] = gencompress.decode(data, device="cpu")
            if round_:
                times[name].append(time.perf_counter() - begin)
    bitstream.IntegerDecoder = integer.IntegerDecoder
    same = np.array_equal(*pixels.values())
    for name in versions:
        print(f"{name}: {statistics.median(times[name]):.4f} s a decode (median of {args.rounds} rounds, "
              f"min {min(times[name]):.4f}); {args.image.name}, {8 * len(data) / image.shape[0] / image.shape[1]:.3f} "
              f"bpp, {args.threads} threads; same pixels: {same}", flush=True)


if __name__ == "__main__":
    main()

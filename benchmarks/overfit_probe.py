"""Weigh a change of the overfitted encoder's recipe by the loss it reaches, on held-out photos.

    python benchmarks/overfit_probe.py --images 0052,0056 --qualities 2,5,8 \\
        --variant base --variant network_learning_rate=2e-2 [--variant "steps=400 noise=(1.5,0.3)"] \\
        [--variant start=other.safetensors] [--effort default] [--crop 384x512] [--threads 1] [--seeds 0,1]

Each variant is the effort preset with some fields replaced (presets.Effort; values are Python
literals, several separated by spaces; `start=FILE` fits from the starting points in FILE, trained
by `python -m gencompress.overfit.starting --out FILE`, instead of the shipped ones); each is
fitted (fit.optimize, the encoder's own loop) to the centre crop of each held-out image at each
quality, and its final loss MSE + lambda * bpp with the latents rounded (the rate the entropy
model gives, before parameter coding) is printed beside the first variant's. Faster and less
noisy than whole encodes (benchmarks/overfit_heldout.py), for settings of the optimization. Not
for changes that move the networks more or less: their parameters' bits, which this loss leaves
out, can take back what it shows (a hard-phase learning rate: -0.6% here, -0.08% in whole files;
results/overfit_heldout/hard_phase_lr_probe.log).
A fit's path depends on its seed (the noise of the soft phase), and a single fit moves by several
percent under any change of it: with `--seeds 0,1` every variant is fitted under each seed, and
the first variant's own spread between seeds (printed) is the noise a change must beat. The
default images are among the last ten of data/train, which the starting points never saw. Never
Kodak.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
from overfit_heldout import centre_crop

ROOT = Path(__file__).resolve().parent.parent


def variant(text: str) -> tuple[str, dict, Path | None]:
    """'base' or 'field=value ... [start=FILE]' -> (label, {field: value}, starting points file);
    `arch={...}` replaces the decoder's architecture (train its starting points first:
    `python -m gencompress.overfit.starting data/train --architecture ... --out FILE`)."""
    fields, start = {}, None
    for item in text.split() if text != "base" else []:
        key, _, value = item.partition("=")
        if key == "start":
            start = Path(value)
        elif key == "arch":  # arch={'synthesis_width':32} (no spaces): fields of the decoder's Architecture
            from gencompress.overfit.architecture import Architecture

            fields[key] = Architecture(**ast.literal_eval(value))
        else:
            fields[key] = ast.literal_eval(value)
    return text, fields, start


def starting_points(path: Path | None, quality: int, arch) -> dict | None:
    """The networks a fit starts from: the shipped ones, or those of a starting points file."""
    from gencompress.overfit import starting

    if path is None:
        return starting.load(quality, arch)
    file_arch, tensors = starting._read(path.read_bytes())
    prefix = f"q{quality}/"
    found = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if file_arch != arch or not found:
        raise SystemExit(f"{path}: no starting points for quality {quality} of this architecture")
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "train")
    ap.add_argument("--images", default="0052,0056")
    ap.add_argument("--qualities", default="2,5,8")
    ap.add_argument("--variant", action="append", default=[],
                    help="'base' or 'field=value ...' of presets.Effort, and/or start=FILE")
    ap.add_argument("--effort", default="default")
    ap.add_argument("--crop", default="384x512", help="HxW of the centre crop")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", default="0", help="fit seeds, comma-separated (the encoder uses fit.SEED, 0): each "
                    "variant is fitted under each")
    args = ap.parse_args()
    import torch
    import torch.nn.functional as F

    from gencompress.overfit import fit, presets
    from gencompress.overfit.network import OverfitNet

    torch.set_num_threads(args.threads)
    if "kodak" in str(args.data.resolve()).lower():
        raise SystemExit("this benchmark tunes the recipe: never on Kodak, the test set")
    height, width = (int(v) for v in args.crop.lower().split("x"))
    variants = [variant(v) for v in (args.variant or ["base"])]
    base = presets.EFFORTS[args.effort]
    seeds = [int(v) for v in args.seeds.split(",")]
    changes: dict[str, list[float]] = {label: [] for label, _, _ in variants[1:]}
    spread: list[float] = []  # the first variant's loss under each later seed against its first seed's
    for name in args.images.split(","):
        image = centre_crop(args.data / f"{name}.png", height, width)
        target = torch.tensor(image).permute(2, 0, 1).float() / 255
        for q in (int(v) for v in args.qualities.split(",")):
            lam = presets.LAMBDAS[q - 1]
            first_seed = None
            for seed in seeds:
                first = None
                for label, fields, start in variants:
                    effort = dataclasses.replace(base, **fields)
                    net = OverfitNet(effort.arch, height, width, seed, starting_points(start, q, effort.arch))
                    begin = time.perf_counter()
                    fit.optimize([net], [target], lam, effort)
                    seconds = time.perf_counter() - begin
                    with torch.no_grad():
                        grids = net.quantize("round")
                        mse = float(F.mse_loss(net.synthesize(grids).clamp(0, 1), target))
                        bpp = float(net.rate(grids)) / (height * width)
                    loss = mse + lam * bpp
                    if first is None:
                        first, change = loss, ""
                        if first_seed is None:
                            first_seed = loss
                        else:
                            spread.append(loss / first_seed - 1)
                            change = f" {100 * (loss / first_seed - 1):+.1f}% (seed {seed} against seed {seeds[0]})"
                    else:
                        changes[label].append(loss / first - 1)
                        change = f" {100 * (loss / first - 1):+.1f}%"
                    print(f"{name} q{q} s{seed} {label:40s} psnr {-10 * math.log10(mse):.2f} bpp {bpp:.4f} "
                          f"loss {loss:.4e}{change} ({seconds:.0f} s)", flush=True)
    if spread:
        print(f"{variants[0][0]} between seeds: loss changes {', '.join(f'{100 * v:+.1f}%' for v in spread)} "
              f"(mean absolute {100 * np.mean(np.abs(spread)):.1f}%): the noise a change must beat")
    for label, values in changes.items():
        if values:
            mean = math.exp(np.mean(np.log1p(values))) - 1
            print(f"{label}: loss {100 * mean:+.1f}% against {variants[0][0]} (geometric mean over {len(values)} fits; "
                  f"{sum(v < 0 for v in values)} lower)")


if __name__ == "__main__":
    main()

"""Starting points of the overfitted codec's networks, learned across photographs and shipped.

A fit from random networks spends most of its first few hundred steps learning what any photo
needs: an upsampling that interpolates, a synthesis that maps latents to colours, an entropy model
that predicts a latent from its neighbours. Networks fitted jointly to several photos (each crop
with its own latents, one set of networks for all) start each new fit near the answer. One set per
quality, since the rate-distortion trade-off shapes them.

They change nothing in the file format: a file carries the networks its fit ended with, whatever
they started from, so files made with other starting points (or none) decode the same.

Trained by `python -m gencompress.overfit.starting data/train` from the photographs of Debian
wallpaper packages (gencompress.train.prepare), never from Kodak; the last --holdout images are
left out to measure what the starting points buy. Written to weights/overfit_start.safetensors;
a run that is interrupted keeps the qualities it finished and goes on from there.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .architecture import MODULES, Architecture
from .network import OverfitNet
from .presets import LAMBDAS, Effort

FILE = "overfit_start.safetensors"


def load(quality: int, arch: Architecture) -> dict[str, torch.Tensor] | None:
    """The shipped starting networks of a quality (parameter name -> tensor), or None when there
    are none for this architecture. An architecture whose entropy model reads more ancestors than
    the shipped one's, and is otherwise the same, starts from the shipped networks with zero
    weights on the extra inputs (the ARMs' last ones): the fit begins where a fit without them
    would, and learns what they add."""
    shipped = _shipped()
    if shipped is None or arch.ancestors < shipped[0].ancestors or _but_ancestors(shipped[0]) != _but_ancestors(arch):
        return None
    prefix = f"q{quality}/"
    found = {k[len(prefix):]: v for k, v in shipped[1].items() if k.startswith(prefix)}
    extra = arch.ancestors - shipped[0].ancestors
    for module in ("arm_anchor", "arm_other"):
        name = f"{module}.0.weight"
        if extra and name in found:
            w = found[name]
            found[name] = torch.cat([w, w.new_zeros(w.shape[0], extra)], dim=1)
    return found or None


def _but_ancestors(arch: Architecture) -> dict[str, int]:
    return {**dataclasses.asdict(arch), "ancestors": 0}


def digest() -> str | None:
    """SHA-256 of the shipped starting points (what benchmarks key their cached rows by), or None."""
    data = _shipped_bytes()
    return None if data is None else hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=1)
def _shipped_bytes() -> bytes | None:
    path = resources.files("gencompress") / "weights" / FILE
    return path.read_bytes() if path.is_file() else None


@functools.lru_cache(maxsize=1)
def _shipped() -> tuple[Architecture, dict[str, torch.Tensor]] | None:
    data = _shipped_bytes()
    return None if data is None else _read(data)


def _read(data: bytes) -> tuple[Architecture, dict[str, torch.Tensor]]:
    from safetensors.torch import load

    return Architecture(**json.loads(_metadata(data)["architecture"])), load(data)


def _metadata(data: bytes) -> dict[str, str]:
    header_len = int.from_bytes(data[:8], "little")  # safetensors: u64 length, then a JSON header
    return json.loads(data[8:8 + header_len]).get("__metadata__", {})


def train(images: list[Path], qualities: list[int], out: Path, effort: Effort, crops: int, crop: tuple[int, int],
          seed: int = 0, progress: bool = True) -> None:
    """Fit one set of networks per quality to `crops` random crops of the images (shared networks,
    latents of their own), saving `out` after each quality; qualities already in `out` are kept."""
    from safetensors.torch import save

    from ..atomic import write_bytes_atomic
    from .fit import optimize

    metadata = {"architecture": json.dumps(dataclasses.asdict(effort.arch)), "steps": str(effort.steps),
                "crops": str(crops), "crop": f"{crop[0]}x{crop[1]}", "images": str(len(images))}
    done: dict[str, torch.Tensor] = {}
    if out.exists():
        done = _read(out.read_bytes())[1]
        if _metadata(out.read_bytes()) != metadata:
            raise SystemExit(f"{out} holds starting points trained with other settings; remove it or choose --out")
    rng = np.random.default_rng(seed)
    for q in qualities:
        picks = [_random_crop(images[i], crop, rng) for i in rng.choice(len(images), crops, replace=len(images) < crops)]
        if any(k.startswith(f"q{q}/") for k in done):
            continue
        begin = time.perf_counter()
        nets = [OverfitNet(effort.arch, *crop, seed=seed + i) for i in range(crops)]
        for net in nets[1:]:
            net.weights = nets[0].weights  # one set of networks for all crops
        targets = [torch.tensor(p).permute(2, 0, 1).float() / 255 for p in picks]
        optimize(nets, targets, LAMBDAS[q - 1], effort, bar=_bar(effort.steps, q, progress))
        for m in MODULES:
            for name, t in nets[0].named_for_coding()[m]:
                done[f"q{q}/{name}"] = t.detach().clone().contiguous()
        write_bytes_atomic(out, save(done, metadata=metadata), overwrite=True)
        if progress:
            print(f"quality {q}: {time.perf_counter() - begin:.0f} s", flush=True)


def _random_crop(path: Path, crop: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    h, w = crop
    if rgb.shape[0] < h or rgb.shape[1] < w:
        raise SystemExit(f"{path}: smaller than the {w}x{h} crop")
    y, x = rng.integers(0, rgb.shape[0] - h + 1), rng.integers(0, rgb.shape[1] - w + 1)
    return np.ascontiguousarray(rgb[y:y + h, x:x + w])


def _bar(steps: int, quality: int, enabled: bool):
    if not enabled:
        return None
    import sys

    from tqdm import tqdm

    return tqdm(total=steps, desc=f"quality {quality}", unit="step", file=sys.stderr, leave=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="folder of training photographs (PNG), never Kodak")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "weights" / FILE)
    ap.add_argument("--qualities", default="1,2,3,4,5,6,7,8")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--crops", type=int, default=8, help="crops fitted together per quality")
    ap.add_argument("--crop", default="192x256", help="HxW of each crop")
    ap.add_argument("--holdout", type=int, default=10, help="the last N images are left out (for evaluation)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--architecture", default="", metavar="FIELD=VALUE ...",
                    help="decoder fields that differ from the default architecture, e.g. 'synthesis_width=32'")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    images = sorted(args.data.glob("*.png"))
    if "kodak" in str(args.data.resolve()).lower():
        raise SystemExit("starting points are never trained on Kodak, the test set")
    images = images[:len(images) - args.holdout]
    if not images:
        raise SystemExit(f"{args.data}: no PNG images to train on (after holding out {args.holdout})")
    crop = tuple(int(v) for v in args.crop.lower().split("x"))
    try:
        fields = {k: int(v) for k, _, v in (item.partition("=") for item in args.architecture.split())}
        arch = Architecture(**fields)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"--architecture {args.architecture!r}: {e}")
    effort = Effort(steps=args.steps, arch=arch)
    train(images, [int(q) for q in args.qualities.split(",")], args.out, effort, args.crops, crop)


if __name__ == "__main__":
    main()

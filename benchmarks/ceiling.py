"""The transforms' ceiling: PSNR of synthesis(analysis(x)) with no quantization, per quality.

    python benchmarks/ceiling.py [--model vae] [--images ../shared/data/kodak] [--crop 256]

If a model's rate-distortion curve flattens at high rates while this ceiling is close to it, the
analysis/synthesis pair is what limits quality, not the quantizer or the entropy model. Also
prints each quality's mean latent gain (the quantization step is its inverse).
Top-left crops of every 4th image, per-crop PSNR averaged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gencompress.codec import load_model

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vae")
    ap.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "data" / "kodak")
    ap.add_argument("--crop", type=int, default=256)
    args = ap.parse_args()
    net = load_model(args.model, "cpu").model
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".png", ".jpg", ".webp"})[::4]
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("RGB"))[:args.crop, :args.crop].copy())
                     .permute(2, 0, 1) for p in paths]).float() / 255
    gains = net.gains.gain.detach()
    with torch.no_grad():
        for q in range(gains.shape[0]):
            quality = torch.full((x.shape[0],), q)
            x_hat = net.g_s(net.gains(net.gains(net.g_a(x), quality), quality, inverse=True)).clamp(0, 1)
            psnr = (-10 * torch.log10(((x_hat - x) ** 2).flatten(1).mean(1))).mean()
            print(f"{args.model} quality {q + 1}: {float(psnr):.2f} dB without quantization ({len(paths)} crops), "
                  f"latent gain mean {float(gains[q].mean()):.3f}")


if __name__ == "__main__":
    main()

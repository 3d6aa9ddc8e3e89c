"""A quick rate-distortion check of the overfitted codec on held-out training photos (never Kodak).

    python benchmarks/overfit_heldout.py [--data data/train] [--images 0052,0055,0058]
                                         [--qualities 2,5,8] [--effort default] [--crop 384x512]
                                         [--threads 2]

For weighing a change of the encoder's recipe before spending an hour of the 2 cores on Kodak:
each image (the centre crop, so a run takes minutes) is encoded at each quality through the
library, decoded, and measured (bpp of the whole file, PSNR on 8-bit RGB); JPEG (Pillow, quality
10 to 95) on the same crop is the anchor of a per-image BD-rate (pchip over the PSNR interval both
cover; n/a where the codec's points do not rise with quality or the curves do not overlap), and
per point the ratio of its bits to JPEG's at the same PSNR (BD-rates of two recipes whose points
span different PSNR intervals do not compare; these ratios do). The
default images are among the last ten of data/train, which the shipped starting
points never saw (`python -m gencompress.overfit.starting --holdout 10`). Tuning on them, not on
Kodak, keeps Kodak a test set.
"""

from __future__ import annotations

import argparse
import io
import math
import time
from pathlib import Path

import numpy as np
from PIL import Image

import gencompress
from gencompress.metrics import bd_rate

ROOT = Path(__file__).resolve().parent.parent


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255 ** 2 / max(float(np.mean((a.astype(np.float64) - b) ** 2)), 1e-10))


def jpeg_curve(image: np.ndarray) -> list[tuple[float, float]]:
    points = []
    for quality in (10, 20, 30, 40, 50, 60, 70, 80, 90, 95):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=quality)
        back = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        points.append((8 * buf.tell() / (image.shape[0] * image.shape[1]), psnr(back, image)))
    return points


def jpeg_bpp_at(curve: list[tuple[float, float]], db: float) -> float:
    """JPEG's bpp at this PSNR (log-rate interpolated; nan outside the curve): a per-point
    comparison, which unlike a BD-rate does not depend on the PSNR interval both curves cover,
    so two recipes whose points span different intervals compare point by point."""
    rates, psnrs = zip(*sorted(curve, key=lambda p: p[1]))
    if not psnrs[0] <= db <= psnrs[-1]:
        return float("nan")
    return float(np.exp(np.interp(db, psnrs, np.log(rates))))


def centre_crop(path: Path, height: int, width: int) -> np.ndarray:
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    top, left = max((rgb.shape[0] - height) // 2, 0), max((rgb.shape[1] - width) // 2, 0)
    return np.ascontiguousarray(rgb[top:top + height, left:left + width])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "train")
    ap.add_argument("--images", default="0052,0055,0058")
    ap.add_argument("--qualities", default="2,5,8")
    ap.add_argument("--effort", default="default")
    ap.add_argument("--crop", default="384x512", help="HxW of the centre crop")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if "kodak" in str(args.data.resolve()).lower():
        raise SystemExit("this benchmark tunes the recipe: never on Kodak, the test set")
    height, width = (int(v) for v in args.crop.lower().split("x"))
    rates, all_ratios = [], []
    for name in args.images.split(","):
        image = centre_crop(args.data / f"{name}.png", height, width)
        points = []
        for q in (int(v) for v in args.qualities.split(",")):
            begin = time.perf_counter()
            data = gencompress.encode(image, model="overfit", quality=q, effort=args.effort, device="cpu")
            seconds = time.perf_counter() - begin
            back = np.asarray(gencompress.decode(data))
            points.append((8 * len(data) / (image.shape[0] * image.shape[1]), psnr(back, image)))
            print(f"{name} q{q}: {points[-1][0]:.4f} bpp {points[-1][1]:.2f} dB ({seconds:.1f} s)", flush=True)
        jpeg = jpeg_curve(image)
        rate = float("nan")
        if len(points) > 1 and all(a[1] < b[1] for a, b in zip(points, points[1:])):
            rate = bd_rate(*zip(*jpeg), *zip(*points))
        rates.append(rate)
        ratios = [bpp / jpeg_bpp_at(jpeg, db) for bpp, db in points]
        all_ratios += [r for r in ratios if not math.isnan(r)]
        ratio_text = ", ".join("n/a" if math.isnan(r) else f"{r:.3f}" for r in ratios)
        print(f"{name} ({image.shape[1]}x{image.shape[0]}): BD-rate vs JPEG "
              f"{'n/a' if math.isnan(rate) else f'{rate:+.1f}%'}; bits / JPEG's at equal PSNR per quality: "
              f"{ratio_text}", flush=True)
    known = [r for r in rates if not math.isnan(r)]
    mean = f"{np.mean(known):+.1f}%" if known else "n/a"
    print(f"mean BD-rate vs JPEG over {len(known)} of {len(rates)} images: {mean} "
          f"(per image {', '.join('n/a' if math.isnan(r) else f'{r:+.1f}%' for r in rates)})")
    if all_ratios:
        print(f"geometric mean of bits / JPEG's at equal PSNR over {len(all_ratios)} points: "
              f"{math.exp(np.mean(np.log(all_ratios))):.3f}")


if __name__ == "__main__":
    main()

"""The amortized models' exact fixed-point synthesis against their float one, and what bands cost.

    python benchmarks/exact.py [--images kodim01,kodim05,kodim23] [--quality 4]

Per model and image: PSNR of the float32 and of the exact reconstruction of the same latents,
the fraction of samples that differ and the largest difference. Then, for one 1024x1024 tile,
time and peak memory (VmHWM above the loaded process) of the exact synthesis whole and in the
bands decoding uses (models/base.py), and whether the two agree.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gencompress.codec import load_model
from gencompress.models.exact import in_bands, to_fixed

KODAK = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "kodak"


def peak_mb() -> float:
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024


def reset_peak() -> float:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return peak_mb()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255 ** 2 / np.mean((a.astype(np.float64) - b) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default="kodim01,kodim05,kodim23")
    ap.add_argument("--quality", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in ("vae", "ae"):
        model = load_model(name, "cpu").model
        for image in args.images.split(","):
            rgb = np.asarray(Image.open(KODAK / f"{image}.png").convert("RGB"))
            x = torch.tensor(rgb).permute(2, 0, 1)[None].float() / 255
            _, y_in = model.code(model.analyze(x, args.quality - 1), args.quality - 1)
            exact = model.synthesize_exact(y_in)[0]
            fl = (model.synthesize(y_in)[0].clamp(0, 1) * 255).round().permute(1, 2, 0).to(torch.uint8).numpy()
            diff = np.abs(exact.astype(int) - fl)
            print(f"{name:4s} {image} q{args.quality}: PSNR float {psnr(fl, rgb):.3f} exact {psnr(exact, rgb):.3f} dB; "
                  f"{(diff > 0).mean():.1%} of samples differ, by at most {diff.max()}")
    twin = load_model("vae", "cpu").model.exact_twin("g_s")
    y = to_fixed(torch.randn(1, 192, 64, 64, generator=torch.Generator().manual_seed(0)) * 3)
    results = {}
    for label, run in (("whole", lambda: twin(y)), ("bands of 32 rows, 3 of context", lambda: in_bands(twin, y, 16, 32, 3))):
        base = reset_peak()
        start = time.perf_counter()
        results[label] = run()
        print(f"1024x1024 tile, {label}: {time.perf_counter() - start:.2f} s, +{peak_mb() - base:.0f} MB")
    print("bands equal the whole:", torch.equal(*results.values()))


if __name__ == "__main__":
    main()

"""Kodak rate-distortion of the overfitted codec at an effort, with BD-rates against every reference.

    python benchmarks/kodak_overfit.py [--effort default] [--qualities 2,5,8] [--threads 1]

Runs the engine of `gencompress bench` on the 24 Kodak images for `overfit@EFFORT` and JPEG, and
computes BD-rates (PSNR, pchip over the common interval) against CompressAI's published curves
(BPG, VTM, ...) and, prefixed "ref ", the classical curves measured on this kind of machine with
the bench's settings (`../shared/data/classical_kodak.json`: jpeg420, webp_m6, avif444_psnr_s6,
jxl_e7, heif444_psnr_nopsy, jpeg2000_db). Rows are cached per (codec, setting, image) in
OUT/cache.jsonl: an interrupted run resumes, and runs on parts of Kodak (--kodak DIR) whose caches
are concatenated into OUT/cache.jsonl are not measured again. Encode times in the rows are those of
the run that measured them (--threads per process); benchmarks/overfit_speed.py times one image
on 2 threads alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from gencompress import bench

sys.path.insert(0, str(Path(__file__).parent))
from kodak_codecs import SHARED, published_curves  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", type=Path, default=SHARED / "kodak")
    ap.add_argument("--effort", default="default")
    ap.add_argument("--qualities", default="2,5,8")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of this process")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "kodak_overfit")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    from gencompress.overfit.presets import DEFAULT_EFFORT

    name = "overfit" if args.effort == DEFAULT_EFFORT else f"overfit@{args.effort}"  # as `gencompress bench` names it
    cfg = bench.BenchConfig(dirs=[str(args.kodak)], codecs=[name, "jpeg"], device="cpu", out=str(args.out),
                            qualities={name: [float(q) for q in args.qualities.split(",")]},
                            published=str(published_curves(args.out)))
    result = bench.run(cfg, progress=sys.stderr.isatty())
    bench.plot(result, args.out)
    print(bench.format_table(result))
    # BD-rates from 3 points up (the bench asks for 4): pchip over the PSNR interval both cover
    anchors = result["published"] | {"jpeg (measured here)": result["points"]["jpeg"]}
    table = bench.bd_table({name: result["points"][name]}, anchors, min_points=3)
    print(f"\nBD-rate of {name} (PSNR / MS-SSIM dB; negative = fewer bits for the same quality; "
          f"n/a = the curves do not overlap):")
    for anchor, rows in table.items():
        entry = rows[name]
        cells = [f"{entry[m]:+.1f}%" if entry.get(m) is not None else "n/a" for m in ("psnr", "ms_ssim_db")]
        print(f"  vs {anchor}: {' / '.join(cells)}")
    (args.out / "bd_rate.json").write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()

"""Quality against encoding time of the overfitted codec: the curve a time budget buys.

    python benchmarks/overfit_time.py [--images kodim05,kodim23] [--qualities 2,4,6,8]
                                      [--budgets 10,30,60,120,600] [--efforts high] [--no-start] [--threads 2]

Encodes each image at each quality under each time budget (`Codec(time_budget=...)`, as
`gencompress encode --time-budget` does) and at each named effort (`--efforts`: a number of steps,
so its time is the machine's), decodes the file and measures bpp and PSNR; HEIC
(x265 PSNR-tuned, the bench's settings) is measured on the same images as the anchor. Prints, per
budget, the mean bpp / PSNR per quality and the BD-rate against HEIC (pchip over the PSNR
interval both curves cover; 4 qualities or more), and plots PSNR against seconds.
--no-start fits from random networks instead of the shipped starting points: the same table
with and without them is the starting points' lever at equal time.

Rows are cached per (settings, image) in OUT/cache.jsonl, so an interrupted run resumes. Times
depend on the machine and on what else runs: run it alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gencompress import bench

sys.path.insert(0, str(Path(__file__).parent))
from kodak_codecs import SHARED  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def overfit_runner(budget: float, start: bool) -> bench.Runner:
    from gencompress import Codec
    from gencompress.overfit import starting

    base = bench.runner("overfit", "cpu")
    if not start:
        starting.load = lambda quality, arch: None  # this process fits from random networks
    codecs = {q: Codec(model="overfit", quality=q, device="cpu", time_budget=budget) for q in range(1, 9)}
    name = f"overfit {budget:g} s" + ("" if start else " (no starting points)")
    return bench.Runner(name, base.settings, lambda rgb, q: codecs[int(q)].encode(rgb), base.decode,
                        base.info | {"time_budget_s": budget, "starting_points": start})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", type=Path, default=SHARED / "kodak")
    ap.add_argument("--images", default="kodim05,kodim23")
    ap.add_argument("--qualities", default="2,4,6,8")
    ap.add_argument("--budgets", default="10,30,60,120,600", help="seconds, comma-separated; '' for none")
    ap.add_argument("--efforts", default="", help="effort presets to measure too, e.g. high")
    ap.add_argument("--no-start", action="store_true", help="fit from random networks (the lever's baseline)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "overfit_time")
    args = ap.parse_args()
    if args.no_start and args.efforts:
        ap.error("--no-start applies to --budgets only")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = bench.Cache(args.out / "cache.jsonl")
    pictures = {name: np.asarray(Image.open(args.kodak / f"{name}.png").convert("RGB"))
                for name in args.images.split(",")}
    qualities = [float(q) for q in args.qualities.split(",")]
    budgets = [float(b) for b in args.budgets.split(",") if b]
    efforts = [e for e in args.efforts.split(",") if e]

    def curve(r: bench.Runner, settings) -> list[dict]:
        rows = {}
        for s in settings:
            per_image = [bench.measure_cached(cache, r, s, key, img, bench.image_digest(img))
                         for key, img in pictures.items()]
            rows[s] = bench.average(per_image) | {"setting": s}
            print(f"  {r.name} setting {s:g}: {rows[s]['bpp']:.3f} bpp {rows[s]['psnr']:.2f} dB "
                  f"{rows[s]['encode_s']:.1f} s", file=sys.stderr, flush=True)
        return list(rows.values())

    heic = curve(bench.runner("heic"), bench.runner("heic").settings)
    results = {"images": list(pictures), "heic": heic, "budgets": {}, "efforts": {}}
    print(f"images: {', '.join(pictures)}; starting points: {'off' if args.no_start else 'on'}")
    print(f"{'run':>8} {'encode s':>9}  " + "  ".join(f"q{q:g} bpp/PSNR" for q in qualities) + "  BD vs HEIC")
    runs = [(f"{b:g}", "budgets", f"{b:g}s", overfit_runner(b, not args.no_start)) for b in budgets]
    runs += [(e, "efforts", e, bench.runner(f"overfit@{e}", "cpu")) for e in efforts]
    for key, kind, label, r in runs:
        points = curve(r, qualities)
        bd = bench.bd_table({"overfit": points}, {"heic": heic}, min_points=4)["heic"]["overfit"]["psnr"]
        results[kind][key] = {"points": points, "bd_rate_vs_heic_psnr": bd}
        cells = "  ".join(f"{p['bpp']:.3f}/{p['psnr']:.2f}" for p in points)
        print(f"{label:>8} {np.mean([p['encode_s'] for p in points]):>9.1f}  {cells}  "
              + (f"{bd:+.1f}%" if bd is not None else "n/a"), flush=True)
    suffix = "_nostart" if args.no_start else ""
    (args.out / f"results{suffix}.json").write_text(json.dumps(results, indent=1))
    if budgets:
        _plot(results, qualities, args.out / f"psnr_vs_time{suffix}.png")


def _plot(results: dict, qualities: list[float], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    budgets = sorted(results["budgets"], key=float)
    for i, q in enumerate(qualities):
        xs = [results["budgets"][b]["points"][i]["encode_s"] for b in budgets]
        ys = [results["budgets"][b]["points"][i]["psnr"] for b in budgets]
        bpps = [results["budgets"][b]["points"][i]["bpp"] for b in budgets]
        ax.plot(xs, ys, "o-", label=f"quality {q:g} ({bpps[0]:.2f} → {bpps[-1]:.2f} bpp)")
    ax.set_xscale("log")
    ax.set_xlabel("encode seconds (768x512, 2 cores)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"overfit under a time budget: {', '.join(results['images'])}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

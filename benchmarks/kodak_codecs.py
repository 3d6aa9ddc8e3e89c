"""Kodak: every codec's rate-distortion curve, its BD-rates and the RD plots of the README.

    python benchmarks/kodak_codecs.py --readme

Runs the engine of `gencompress bench` on the 24 Kodak images: our shipped models (CPU) and every
classical codec at its default (strongest-PSNR) settings. Published curves are overlaid and used as
BD-rate anchors: CompressAI's published Kodak results (BPG, VTM, mbt2018-mean, cheng2020-anchor,
ELIC) and, prefixed "ref ", the classical curves measured on this kind of machine, which check that
our classical settings reproduce them. Writes benchmarks/results/kodak/ (results.json, rd_psnr.png,
rd_ms_ssim_db.png; cache.jsonl makes a second run resume) and, with --readme, rewrites the table
between the README's kodak-codecs markers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from gencompress import bench

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
CODECS = ["vae", "ae", "jpeg", "webp", "avif", "jxl", "heic", "jpeg2000"]
PUBLISHED = {"BPG": "BPG", "VTM": "VTM", "mbt2018-mean_mse": "mbt2018-mean", "cheng2020-anchor_mse": "cheng2020-anchor",
             "paper-elic2022_mse": "ELIC"}
# Our classical codec -> the reference curve measured with the same settings (classical_kodak_settings.json).
REFERENCE = {"jpeg": "jpeg420", "webp": "webp_m6", "avif": "avif444_psnr_s6", "jxl": "jxl_e7",
             "heic": "heif444_psnr_nopsy", "jpeg2000": "jpeg2000_db"}
MARKERS = ("<!-- kodak-codecs:start -->", "<!-- kodak-codecs:end -->")


def published_curves(out: Path) -> Path:
    """The chosen published and reference curves, in one CompressAI-style JSON for the engine."""
    compressai = json.loads((SHARED / "compressai_kodak.json").read_text())
    classical = json.loads((SHARED / "classical_kodak.json").read_text())
    curves = {label: compressai[name] for name, label in PUBLISHED.items()}
    curves |= {f"ref {ref}": classical[ref] for ref in REFERENCE.values()}
    path = out / "published.json"
    path.write_text(json.dumps(curves))
    return path


def _pct(entry: dict | None, metric: str = "psnr") -> str:
    return "-" if not entry or entry.get(metric) is None else f"{entry[metric]:+.1f}%"


def markdown(result: dict) -> str:
    """Two tables: our models against every codec, and every codec against JPEG, BPG, VTM and its reference."""
    bd, points = result["bd_rate"], result["points"]
    ours = [c for c in points if c not in REFERENCE]
    measured = [c for c in points if c in REFERENCE]
    against = bench.bd_table({c: points[c] for c in ours}, {c: points[c] for c in measured})
    columns = measured + ["BPG", "VTM", "mbt2018-mean"]
    lines = ["BD-rate of our models against each codec (PSNR; negative = fewer bits for the same quality):", "",
             "| model | " + " | ".join(columns) + " |", "|---" + "|---:" * len(columns) + "|"]
    for model in ours:
        cells = [_pct((against if c in measured else bd).get(c, {}).get(model)) for c in columns]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "Every codec (PSNR / MS-SSIM dB BD-rates; the last column checks our settings against the curve "
              "measured with the same settings in `../shared/data/classical_kodak.json`):", "",
              "| codec | settings | vs jpeg | vs BPG | vs VTM | vs its reference curve |", "|---|---|---|---|---|---|"]
    for codec in points:
        settings = result["codecs"][codec]["settings"]
        cells = ["anchor" if a == codec else f"{_pct(bd.get(a, {}).get(codec))} / "
                 f"{_pct(bd.get(a, {}).get(codec), 'ms_ssim_db')}" for a in ("jpeg", "BPG", "VTM")]
        ref = REFERENCE.get(codec)
        ref_cell = f"{_pct(bd.get(f'ref {ref}', {}).get(codec))} vs `{ref}`" if ref else "-"
        lines.append(f"| {codec} | {settings} | " + " | ".join(cells) + f" | {ref_cell} |")
    versions = {k: v for info in result["codecs"].values() for k, v in info.get("versions", {}).items()}
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + "."]
    return "\n".join(lines)


def update_readme(table: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = MARKERS
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {start} ... {end} markers")
    readme.write_text(pattern.sub(lambda _: f"{start}\n{table}\n{end}", text))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", type=Path, default=SHARED / "kodak")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "kodak")
    ap.add_argument("--codecs", default=",".join(CODECS))
    ap.add_argument("--readme", action="store_true", help="Rewrite the README's table between its markers.")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = bench.BenchConfig(dirs=[str(args.kodak)], codecs=args.codecs.split(","), device="cpu", out=str(args.out),
                            published=str(published_curves(args.out)))
    result = bench.run(cfg, progress=sys.stderr.isatty())
    bench.plot(result, args.out)
    print(bench.format_table(result))
    table = markdown(result)
    print("\n" + table)
    if args.readme:
        update_readme(table)


if __name__ == "__main__":
    main()

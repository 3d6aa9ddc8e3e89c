"""Kodak rate-distortion and CPU speed of the shipped models against JPEG; feeds the manifest.

    python benchmarks/kodak_models.py --kodak ../shared/data/kodak --update-manifest

For every model and quality: bpp from the .gcz sizes, PSNR (8-bit RGB) and MS-SSIM of the decoded
images, averaged over images per quality (per-image dB averaged, as CompressAI does), and the
coded size against the model's own rate estimate (on the first 6 images). JPEG is libjpeg-turbo through Pillow with its
defaults (4:2:0, standard Huffman tables), the bench's quality sweep. BD-rates (pchip) are against that
JPEG curve and CompressAI's published curves. Results merge per model into the JSON and the
manifest, so models can be evaluated one at a time. Speed: benchmarks/speed.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

import gencompress
from gencompress import bench, classical
from gencompress import images as images_module
from gencompress.codec import load_model
from gencompress.models.manifest import MANIFEST, read_manifest

ROOT = Path(__file__).resolve().parent.parent
JPEG_QUALITIES = list(classical.CODECS["jpeg"].qualities)  # the bench's sweep: rows are shared
OVERHEAD_IMAGES = 6
CACHE_FILE = ROOT / "benchmarks" / "results" / "kodak" / "cache.jsonl"
CACHE_FILE.parent.mkdir(parents=True, exist_ok=True)
CACHE = bench.Cache(CACHE_FILE)


def load_kodak(folder: Path) -> dict[str, np.ndarray]:
    return {p.stem: np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))}


def estimated_bytes(name: str, image: np.ndarray, quality: int) -> float:
    """The model's own rate estimate (sum of -log2 likelihoods at test-time quantization), in bytes."""
    net = load_model(name, "cpu")
    x = torch.tensor(images_module.pad(image, net.model.stride)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        return float(net.model(x, torch.tensor([quality - 1]))["bits"]) / 8


def evaluate(codec: str, settings: list[int], images: dict[str, np.ndarray], overhead: bool) -> list[dict]:
    """Per setting: bench.average of the measured rows (+ rate overhead for our models).

    Rows come from, and go to, the cache of benchmarks/kodak_codecs.py, so the two scripts measure
    each (codec, setting, image) once.
    """
    runner = bench.runner(codec, "cpu")
    points = []
    for setting in settings:
        rows = [bench.measure_cached(CACHE, runner, setting, key, image, bench.image_digest(image))
                for key, image in tqdm(images.items(), desc=f"{codec} {setting}", file=sys.stderr, leave=False)]
        point = {"quality": setting} | bench.average(rows) | {"per_image": rows}
        if overhead:
            first = list(images.items())[:OVERHEAD_IMAGES]
            coded = sum(r["bytes"] for r in rows[:OVERHEAD_IMAGES])
            point["rate_overhead_pct"] = 100 * (coded / sum(estimated_bytes(codec, im, setting) for _, im in first) - 1)
        points.append(point)
    return points


PUBLISHED = ("JPEG", "WebP", "BPG", "bmshj2018-factorized_mse", "bmshj2018-hyperprior_mse", "mbt2018-mean_mse")


def bd_vs_published(points: list[dict], published: dict[str, list[dict]]) -> dict[str, float | None]:
    """BD-rate (PSNR) against CompressAI's published Kodak curves, None where they barely overlap."""
    anchors = {name: published[name] for name in PUBLISHED if name in published}
    table = bench.bd_table({"ours": points}, anchors)
    return {name: table[name]["ours"]["psnr"] for name in anchors}


def bd_rates(points: list[dict], jpeg: list[dict]) -> dict:
    """BD-rate (PSNR and MS-SSIM dB) against the JPEG curve measured here."""
    return bench.bd_table({"ours": points}, {"jpeg": jpeg})["jpeg"]["ours"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", type=Path, default=ROOT.parent / "shared" / "data" / "kodak")
    parser.add_argument("--models", nargs="+", default=["ae", "vae"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "kodak_models.json")
    parser.add_argument("--published", type=Path, default=ROOT.parent / "shared" / "data" / "compressai_kodak.json")
    parser.add_argument("--update-manifest", action="store_true", help=f"write the figures to {MANIFEST}")
    args = parser.parse_args()

    images = load_kodak(args.kodak)
    published = bench.load_published(args.published) if args.published.is_file() else {}
    jpeg = [{k: v for k, v in p.items() if k != "per_image"} for p in evaluate("jpeg", JPEG_QUALITIES, images, False)]
    results = {"kodak": str(args.kodak), "images": len(images), "gencompress": gencompress.__version__,
               "torch": torch.__version__, "jpeg": {"settings": classical.CODECS["jpeg"].settings,
                                                    "points": jpeg}, "models": {}}
    for name in args.models:
        points = evaluate(name, list(range(1, 9)), images, True)
        results["models"][name] = {"points": points, "bd_rate_vs_jpeg": bd_rates(points, jpeg),
                                   "bd_rate_psnr_vs_published": bd_vs_published(points, published),
                                   "weights_sha256": load_model(name, "cpu").sha256.hex()}
    if args.out.is_file():  # keep the other models' results
        results["models"] = json.loads(args.out.read_text()).get("models", {}) | results["models"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"Kodak, {len(images)} images; BD-rate against JPEG (Pillow 4:2:0), negative = smaller files")
    print(f"{'model':6} {'q':>2} {'bpp':>7} {'PSNR':>7} {'MS-SSIM':>8} {'overhead':>9}")
    for name, res in results["models"].items():
        for p in res["points"]:
            print(f"{name:6} {p['quality']:>2} {p['bpp']:7.4f} {p['psnr']:7.3f} {p['ms_ssim']:8.5f} "
                  f"{p['rate_overhead_pct']:8.3f}%")
        bd = res["bd_rate_vs_jpeg"]
        print(f"{name:6} BD-rate vs JPEG: PSNR {bd['psnr']:+.1f}%, MS-SSIM {bd['ms_ssim_db']:+.1f}%")
        print(f"{name:6} BD-rate (PSNR) vs published: " + ", ".join(
            f"{k} {v:+.1f}%" if v is not None else f"{k} n/a" for k, v in res["bd_rate_psnr_vs_published"].items()))
    if args.update_manifest:
        command = "python benchmarks/kodak_models.py --update-manifest"
        manifest = read_manifest() | {name: {"kodak": [{k: round(v, 5) if isinstance(v, float) else v for k, v in p.items()
                                      if k != "per_image"} for p in res["points"]],
                           "kodak_bd_rate_vs_jpeg": round(res["bd_rate_vs_jpeg"]["psnr"], 2),
                           "kodak_bd_rate_vs_jpeg_msssim": round(res["bd_rate_vs_jpeg"]["ms_ssim_db"], 2),
                           "measured_with": command,
                           "measured_weights_sha256": res["weights_sha256"]}
                    for name, res in results["models"].items()}
        MANIFEST.write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()

"""Huge images: peak memory and time of tiled coding against image size, and region decode.

    python benchmarks/tiles.py [--sizes 1,4,16,50] [--model vae] [--quality 3] [--tile 1024] [--threads 2]
    python benchmarks/tiles.py --model overfit --effort fast --steps 2   # memory of the overfitted codec

The test image of each size is a mosaic of the 24 Kodak photos (flipped in turn so that no two
neighbours repeat), cut to a 3:2 frame of that many megapixels. Each size runs in fresh processes,
one for encoding and one for decoding, so the peak resident set (ru_maxrss) of each is its own
(it includes torch and the model, about 1.2 GB); times exclude loading the model, and include
reading the input (PNG or .gcz) and, for encoding, writing the .gcz file;
--tile 0 codes the image as one tile (whole-image coding, images up to 2048 pixels a side), for comparison. A 512x512 region from
the middle of the image is decoded too. One JSON line per size, then a table.
For `overfit`, --effort picks the preset and --steps replaces its step count: the encoder's memory
does not depend on the number of steps, its time grows with them (then the time and rate-distortion
are not the preset's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KODAK = ROOT.parent / "shared" / "data" / "kodak"

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[5]))
from PIL import Image
from gencompress.codec import Codec, load_model
step, path, model, quality, threads, tile, effort, steps = sys.argv[1:9]
effort = effort or None
if int(steps):
    import dataclasses
    from gencompress.overfit import presets
    name = effort or presets.DEFAULT_EFFORT
    presets.EFFORTS[name] = dataclasses.replace(presets.EFFORTS[name], steps=int(steps))
load_model(model, "cpu")  # weights and tables: not part of the timings
start = time.perf_counter()
if step == "encode":
    image = np.asarray(Image.open(path).convert("RGB"))
    data = Codec(model, int(quality), "cpu", tile_size=int(tile), effort=effort).encode(image)
    open(path + ".gcz", "wb").write(data)
    elapsed = time.perf_counter() - start
    out = {"bytes": len(data)}
elif step == "decode":
    pixels = Codec(device="cpu", max_pixels=1 << 30).decode(open(path + ".gcz", "rb").read())
    elapsed = time.perf_counter() - start
    original = np.asarray(Image.open(path).convert("RGB"))
    mse = float(((pixels.astype(np.float32) - original) ** 2).mean())
    out = {"psnr": 10 * np.log10(255 ** 2 / mse)}
else:
    data = open(path + ".gcz", "rb").read()
    from gencompress.container import unpack
    h = unpack(data, 1 << 30).header
    region = (h.width // 2 - 256, h.height // 2 - 256, 512, 512)
    pixels = Codec(device="cpu", max_pixels=1 << 30).decode(data, region=region)
    elapsed = time.perf_counter() - start
    out = {"region": list(region), "tiles_touched": len(h.grid.tiles(region))}
out.update(seconds=elapsed, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(out))
"""


def mosaic(megapixels: float, path: Path) -> tuple[int, int]:
    """Write a width x height (3:2) PNG mosaic of the Kodak photos; return its size."""
    import numpy as np
    from PIL import Image

    height = int((megapixels * 1e6 / 1.5) ** 0.5)
    width = int(height * 1.5)
    photos = []
    for p in sorted(KODAK.glob("*.png")):
        im = Image.open(p).convert("RGB")
        photos.append(np.asarray(im.rotate(90, expand=True) if im.height > im.width else im))
    canvas = np.empty((height, width, 3), np.uint8)
    k = 0
    for y in range(0, height, 512):
        for x in range(0, width, 768):
            p = photos[k % len(photos)]
            p = p[::-1] if (k // len(photos)) % 2 else p
            p = p[:, ::-1] if (k // (2 * len(photos))) % 2 else p
            canvas[y:y + 512, x:x + 768] = p[:height - y, :width - x]
            k += 1
    Image.fromarray(canvas).save(path, compress_level=1)
    return width, height


def run(step: str, path: Path, args: argparse.Namespace, tile: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, step, str(path), args.model, str(args.quality),
                           str(args.threads), str(tile), args.effort or "", str(args.steps)], capture_output=True, text=True)
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["killed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,4,16,50", help="megapixels, comma-separated")
    parser.add_argument("--model", default="vae")
    parser.add_argument("--quality", type=int, default=3)
    parser.add_argument("--tile", type=int, default=1024, help="tile size; 0: the whole image as one tile (up to 2048 a side)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--effort", help="overfit: the effort preset (default: default)")
    parser.add_argument("--steps", type=int, default=0, help="overfit: replace the preset's step count (0: keep it)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mp in (float(s) for s in args.sizes.split(",")):
            path = Path(tmp) / f"{mp:g}mp.png"
            width, height = mosaic(mp, path)
            tile = args.tile or -(-max(width, height) // 64) * 64
            row = {"megapixels": round(width * height / 1e6, 2), "width": width, "height": height, "tile": tile}
            enc = run("encode", path, args, tile)
            row["encode"] = enc
            if "error" not in enc:
                row["bpp"] = 8 * enc["bytes"] / (width * height)
                row["decode"] = run("decode", path, args, tile)
                row["region"] = run("region", path, args, tile)
            print(json.dumps(row), flush=True)
            rows.append(row)
    steps = f", {args.steps} steps per tile" if args.steps else ""
    print(f"\n{args.model} q{args.quality}{' effort ' + args.effort if args.effort else ''}{steps}, {args.threads} "
          f"threads, CPU; tile {args.tile or 'whole image'}")
    print("| MP | size | bpp | PSNR | encode s | encode peak RSS | decode s | decode peak RSS | 512² region s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        e, d, g = r["encode"], r.get("decode", {}), r.get("region", {})
        if "error" in e:
            print(f"| {r['megapixels']} | {r['width']}x{r['height']} | encode failed: {e['error']} |")
            continue
        print(f"| {r['megapixels']} | {r['width']}x{r['height']} | {r['bpp']:.3f} | {d.get('psnr', float('nan')):.2f} "
              f"| {e['seconds']:.1f} | {e['peak_rss_mb'] / 1024:.2f} GB | {d.get('seconds', float('nan')):.1f} "
              f"| {d.get('peak_rss_mb', float('nan')) / 1024:.2f} GB | {g.get('seconds', float('nan')):.2f} |")


if __name__ == "__main__":
    main()

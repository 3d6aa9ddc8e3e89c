"""The GAN decoder on Kodak: the same files decoded plain and sharpened, at every shipped quality.

    python benchmarks/sharpen.py [--model vae] [--strength 1.0] [--qualities 1,...,8] [--picture kodim13.png]

Per quality (means over the 24 images of the per-image values): bpp, PSNR and MS-SSIM of the plain
and the sharpened output, Laplacian-patch SWD (x1000) and high-frequency spectrum error / bias (dB,
0.25-0.5 cycles per pixel; gencompress.metrics), and on how many images sharpening lowered each of
the two. Then the time of `decode --sharpen` on kodim01 (768x512, median of 3, after a warm-up) and
a picture for the README: crops of the original, plain, sharpened and a JPEG of the same size or
smaller. Writes benchmarks/results/sharpen/results.json and crops.png.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from gencompress import metrics
from gencompress.codec import Codec

ROOT = Path(__file__).resolve().parent.parent
KODAK = ROOT.parent / "shared" / "data" / "kodak"
OUT = ROOT / "benchmarks" / "results" / "sharpen"


def evaluate(codec: Codec, image: np.ndarray, strength: float) -> dict:
    data = codec.encode(image)
    row = {"bpp": 8 * len(data) / (image.shape[0] * image.shape[1])}
    for name, pixels in (("plain", codec.decode(data)), ("sharp", codec.decode(data, sharpen=strength))):
        row[name] = {"psnr": metrics.psnr(image, pixels), "ms_ssim": metrics.ms_ssim(image, pixels),
                     "swd": metrics.patch_swd(image, pixels), "spectrum_db": metrics.spectrum_error(image, pixels),
                     "spectrum_bias_db": metrics.spectrum_bias(image, pixels)}
    return row


def jpeg_at_most(image: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """The best-quality Pillow JPEG no larger than size bytes (or quality 1)."""
    best = None
    for q in range(1, 96):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=q)
        if buf.tell() > size and best is not None:
            break
        best = (np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")), buf.tell())
    return best


def picture(codec: Codec, path: Path, strength: float, box: tuple[int, int, int, int], out: Path) -> dict:
    image = np.asarray(Image.open(path).convert("RGB"))
    data = codec.encode(image)
    plain, sharp = codec.decode(data), codec.decode(data, sharpen=strength)
    jpeg, jpeg_bytes = jpeg_at_most(image, len(data))
    x, y, w, h = box
    panels = [("original", image), (f"plain {8 * len(data) / image[..., 0].size:.3f} bpp", plain),
              (f"sharpened {strength:g}", sharp), (f"JPEG {8 * jpeg_bytes / image[..., 0].size:.3f} bpp", jpeg)]
    scale = 2
    canvas = Image.new("RGB", (len(panels) * (w * scale + 8), h * scale + 24), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, pixels) in enumerate(panels):
        crop = Image.fromarray(pixels[y:y + h, x:x + w]).resize((w * scale, h * scale), Image.NEAREST)
        canvas.paste(crop, (i * (w * scale + 8), 24))
        draw.text((i * (w * scale + 8) + 4, 4), label, fill="black")
    canvas.save(out)
    return {"image": path.name, "quality": codec.quality, "box": box, "bytes": len(data), "jpeg_bytes": jpeg_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vae")
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--qualities", default="1,2,3,4,5,6,7,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--picture", default="kodim13.png")
    parser.add_argument("--picture-quality", type=int, default=2)
    parser.add_argument("--box", default="250,150,160,120", help="x,y,w,h of the crop in the picture")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    paths = sorted(KODAK.glob("*.png"))
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    result = {"model": args.model, "strength": args.strength, "qualities": {}}
    print(f"{args.model}, sharpen {args.strength:g}, Kodak ({len(images)} images): plain -> sharpened")
    print("| q | bpp | PSNR | MS-SSIM | patch SWD | HF spectrum error dB | HF spectrum bias dB | images better (SWD, spectrum) |")
    print("|---|---|---|---|---|---|---|---|")
    for q in (int(v) for v in args.qualities.split(",")):
        codec = Codec(args.model, q, "cpu")
        rows = [evaluate(codec, im, args.strength) for im in images]
        mean = {k: {m: statistics.fmean(r[k][m] for r in rows) for m in rows[0][k]} for k in ("plain", "sharp")}
        better = {m: sum(r["sharp"][m] < r["plain"][m] for r in rows) for m in ("swd", "spectrum_db")}
        bpp = statistics.fmean(r["bpp"] for r in rows)
        result["qualities"][q] = {"bpp": bpp, **mean, "images_better": better, "rows": rows}
        p, s = mean["plain"], mean["sharp"]
        print(f"| {q} | {bpp:.3f} | {p['psnr']:.2f} -> {s['psnr']:.2f} | {p['ms_ssim']:.4f} -> {s['ms_ssim']:.4f} "
              f"| {p['swd']:.1f} -> {s['swd']:.1f} | {p['spectrum_db']:.2f} -> {s['spectrum_db']:.2f} "
              f"| {p['spectrum_bias_db']:+.2f} -> {s['spectrum_bias_db']:+.2f} "
              f"| {better['swd']}/{len(rows)}, {better['spectrum_db']}/{len(rows)} |", flush=True)
    codec = Codec(args.model, 3, "cpu")
    data = codec.encode(images[0])
    codec.decode(data, sharpen=args.strength)  # warm-up: weights of both decoders
    times = {}
    for name, kwargs in (("plain", {}), ("sharp", {"sharpen": args.strength})):
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            codec.decode(data, **kwargs)
            runs.append(time.perf_counter() - start)
        times[name] = statistics.median(runs)
    result["decode_seconds_kodim01"] = times
    print(f"\ndecode kodim01 (768x512, q3, {args.threads} threads): plain {times['plain']:.2f} s, "
          f"sharpened {times['sharp']:.2f} s")
    box = tuple(int(v) for v in args.box.split(","))
    result["picture"] = picture(Codec(args.model, args.picture_quality, "cpu"), KODAK / args.picture,
                                args.strength, box, OUT / "crops.png")
    (OUT / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT / 'results.json'} and {OUT / 'crops.png'}")


if __name__ == "__main__":
    main()

"""Speed of the overfitted codec on one image: seconds per step, coding, decoding, and the decoder's cost.

    python benchmarks/overfit_speed.py [--image ../shared/data/kodak/kodim01.png] [--threads 2]
                                       [--steps 20] [--repeats 3] [--quality 4]

Fits the image for --steps optimization steps (the first 3 are a warm-up, not timed), then times
the rest of an encode: the latent search (latent_search.py) and choosing parameter steps and
entropy coding (bitstream.encode). Decoding is timed from the file's bytes, median of --repeats.
Seconds per step times a preset's steps, plus the search where the preset searches, plus the
coding time is that preset's encode time. Peak memory is the process's peak resident set.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def decoder_macs_per_pixel(arch) -> float:
    """Multiply-accumulates per pixel of the decoder: entropy model, upsampling, synthesis."""
    from gencompress.overfit.architecture import NEIGHBOUR_OFFSETS, PARENT_OFFSETS

    a, o, s, n = arch.arm_anchor_width, arch.arm_other_width, arch.synthesis_width, arch.levels
    anchor = (len(PARENT_OFFSETS) + arch.ancestors) * a + a * a + 2 * a
    other = (len(NEIGHBOUR_OFFSETS) + len(PARENT_OFFSETS) + arch.ancestors) * o + o * o + 2 * o
    latents_per_pixel = sum(4.0 ** -i for i in range(n))
    arm = latents_per_pixel * (anchor + other) / 2
    upsampling = sum(8 * (n - 1 - i) * 4.0 ** -i for i in range(n - 1))  # 4 taps x 2 axes per output value
    synthesis = n * s + 3 * s + 2 * 27 * 3
    return arm + upsampling + synthesis


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=ROOT.parent / "shared" / "data" / "kodak" / "kodim01.png")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quality", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from gencompress import container, decode
    from gencompress.codec import load_model
    from gencompress.overfit import bitstream, fit, latent_search, presets

    image = np.asarray(Image.open(args.image).convert("RGB"))
    lam = presets.LAMBDAS[args.quality - 1]
    coding = load_model("overfit", "cpu").tables
    base = presets.EFFORTS[presets.DEFAULT_EFFORT]
    warm = 3
    fit.fit(image, lam, presets.Effort(steps=warm, arch=base.arch), torch.device("cpu"))
    start = time.perf_counter()
    net = fit.fit(image, lam, presets.Effort(steps=args.steps, arch=base.arch), torch.device("cpu"))
    per_step = (time.perf_counter() - start) / args.steps
    start = time.perf_counter()
    latent_search.search(net, torch.tensor(image).permute(2, 0, 1).float() / 255, lam)
    search_s = time.perf_counter() - start
    start = time.perf_counter()
    coded = bitstream.encode(net, image, lam, coding)
    coding_s = time.perf_counter() - start
    header = container.Header("overfit", load_model("overfit", "cpu").sha256, args.quality, image.shape[1],
                              image.shape[0], 3, tile_size=1024)
    data = container.pack(container.Container(header, (container.TileData(
        coded.streams, coded.symbols_crc, zlib.crc32(coded.pixels.tobytes())),)))
    times = []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        decode(data, device="cpu")
        times.append(time.perf_counter() - start)
    decode_s = statistics.median(times[1:])
    megapixels = image.shape[0] * image.shape[1] / 1e6
    row = {"image": args.image.name, "size": f"{image.shape[1]}x{image.shape[0]}", "threads": args.threads,
           "seconds_per_step": round(per_step, 4), "search_s": round(search_s, 3), "coding_s": round(coding_s, 3),
           "decode_s": round(decode_s, 4),
           "decode_mp_per_s": round(megapixels / decode_s, 3),
           "decoder_macs_per_pixel": round(decoder_macs_per_pixel(base.arch)),
           "encode_s_per_effort": {name: round(e.steps * per_step + e.latent_search * search_s + coding_s, 1)
                                   for name, e in presets.EFFORTS.items()},
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    print(json.dumps(row))


if __name__ == "__main__":
    main()

"""Speed of the shipped models: network and entropy coding separately and end to end, in MP/s.

    python benchmarks/speed.py [--image ../shared/data/kodak/kodim01.png] [--device cpu] [--threads 2]

Median of --repeats runs after one warm-up (weights loaded, tables built). Entropy time is the
time spent in gencompress.entropy encode/decode; network time is the rest of Codec.encode/decode
(transforms, hyper-decoder, container, checksums). Peak memory: the process's peak resident set
(CPU) or torch's peak allocation (CUDA).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gencompress import entropy
from gencompress.codec import Codec

ROOT = Path(__file__).resolve().parent.parent


class EntropyTimer:
    """Wraps entropy.encode/decode as the codec calls them, summing their time."""

    def __init__(self):
        self.seconds = 0.0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return timed


def measure(model: str, image: np.ndarray, quality: int, device: str, repeats: int) -> dict:
    c = Codec(model=model, quality=quality, device=device)
    data = c.encode(image)
    c.decode(data)  # warm-up: weights, tables, float64 hyper-decoder
    megapixels = image.shape[0] * image.shape[1] / 1e6
    runs = {"encode": [], "encode_entropy": [], "decode": [], "decode_entropy": []}
    original = (entropy.encode, entropy.decode)
    try:
        for _ in range(repeats):
            for step, call in (("encode", lambda: c.encode(image)), ("decode", lambda: c.decode(data))):
                timer = EntropyTimer()
                entropy.encode, entropy.decode = (timer.wrap(f) for f in original)
                if device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                call()
                if device == "cuda":
                    torch.cuda.synchronize()
                runs[step].append(time.perf_counter() - start)
                runs[f"{step}_entropy"].append(timer.seconds)
    finally:
        entropy.encode, entropy.decode = original
    med = {k: statistics.median(v) for k, v in runs.items()}
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"model": model, "quality": quality, "device": device, "threads": torch.get_num_threads(),
            "megapixels": round(megapixels, 3), "bytes": len(data),
            "encode_s": round(med["encode"], 4), "decode_s": round(med["decode"], 4),
            "encode_entropy_s": round(med["encode_entropy"], 4), "decode_entropy_s": round(med["decode_entropy"], 4),
            "encode_network_s": round(med["encode"] - med["encode_entropy"], 4),
            "decode_network_s": round(med["decode"] - med["decode_entropy"], 4),
            "encode_mp_s": round(megapixels / med["encode"], 3), "decode_mp_s": round(megapixels / med["decode"], 3),
            "peak_memory_mb": round(peak / 1e6, 1), "peak_memory_kind": "cuda allocated" if device == "cuda" else "max RSS"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=ROOT.parent / "shared" / "data" / "kodak" / "kodim01.png")
    parser.add_argument("--models", nargs="+", default=["vae", "ae"])
    parser.add_argument("--quality", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image = np.asarray(Image.open(args.image).convert("RGB"))
    print(f"{'model':6} {'dev':4} {'enc s':>7} {'(net':>7} {'entropy)':>9} {'dec s':>7} {'(net':>7} {'entropy)':>9} "
          f"{'enc MP/s':>9} {'dec MP/s':>9} {'peak MB':>8}")
    rows = []
    for model in args.models:
        r = measure(model, image, args.quality, args.device, args.repeats)
        rows.append(r)
        print(f"{model:6} {args.device:4} {r['encode_s']:7.3f} {r['encode_network_s']:7.3f} {r['encode_entropy_s']:9.3f} "
              f"{r['decode_s']:7.3f} {r['decode_network_s']:7.3f} {r['decode_entropy_s']:9.3f} "
              f"{r['encode_mp_s']:9.3f} {r['decode_mp_s']:9.3f} {r['peak_memory_mb']:8.1f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()

"""Hostile files against the decoder: each case in a fresh process, its outcome, time and peak memory.

    python benchmarks/hostile.py [--models vae,overfit] [--cap-gb 0]

The cases (gencompress.fuzz.hostile) are built from the format's structure with valid CRCs: huge
claimed images with tiny streams, huge tiles, wide bands, many tiles, duplicated tiles, a long
name. Prints per case the outcome, seconds and peak resident memory (VmHWM) above what loading the
model took (one process per model, its peak reset before each case); --cap-gb limits the address
space the decodes may map beyond the loaded process, to see that running out of memory is refused
as a FormatError too.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import gencompress
from gencompress import fuzz


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="vae,ae,overfit")
    ap.add_argument("--cap-gb", type=float, default=0.0)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    image = (np.arange(16 * 24 * 3).reshape(16, 24, 3) % 251).astype(np.uint8)
    rows = []
    for model in args.models.split(","):
        valid = gencompress.encode(image, model=model, quality=1, **({"effort": "fast"} if model == "overfit" else {}))
        cases = fuzz.hostile(valid)
        results = fuzz.decode_in_subprocess([(valid, forged) for forged in cases.values()], int(args.cap_gb * 2**30))
        for (name, forged), r in zip(cases.items(), results):
            rows.append(r | {"model": model, "case": name, "bytes": len(forged)})
            print(f"{model:8s} {name:28s} {len(forged):9d} B {r['seconds']:7.3f} s  +{r['extra_mb']:6.0f} MB  "
                  f"{r['outcome'][:80]}", flush=True)
    worst = max(rows, key=lambda r: (r["extra_mb"] if r["extra_mb"] == r["extra_mb"] else float("inf")))
    print(f"worst memory: {worst['model']} / {worst['case']}: +{worst['extra_mb']:.0f} MB, {worst['seconds']:.3f} s; "
          f"slowest: {max(r['seconds'] for r in rows):.3f} s; not FormatError: "
          f"{sum(not r['outcome'].startswith('FormatError') for r in rows)} of {len(rows)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

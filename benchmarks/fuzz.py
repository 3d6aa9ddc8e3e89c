"""Long fuzz run of the decoder (the harness of tests/test_fuzz.py): cases, crashes, slowest case.

    python benchmarks/fuzz.py --cases 100000 [--seed 0] [--cap-gb 2]

Seeds are small files of every model and channel layout; a crash is any exception other than
gencompress.FormatError (and its subclass ChecksumError). Every case runs under a memory cap: the
process may map at most --cap-gb beyond what it held once the models were loaded (a case that
needs more must end in FormatError too). Prints the report and the most common refusals; exit
status 1 if anything crashed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

import gencompress
from gencompress import fuzz
from gencompress.models.registry import shipped_names

ROOT = Path(__file__).resolve().parent.parent


def seed_files() -> list[bytes]:
    rgb = np.asarray(Image.open(ROOT / "tests" / "data" / "parrot_96x80.png").convert("RGB"))
    rgba = np.dstack([rgb[:8, :16], rgb[:8, :16, :1]])
    wide = np.tile(rgb, (1, 2, 1))[:20, :130]  # two tiles of at most 128 pixels: a tile table to mutate
    return [gencompress.encode(image, model=model, quality=q, tile_size=tile)
            for model in shipped_names()
            for image, q, tile in ((rgb[:16, :24], 1, 1024), (rgb[:8, :8, 0], 8, 1024), (rgba, 4, 1024), (wide, 2, 128))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cap-gb", type=float, default=2.0, help="address space per case beyond the loaded process")
    args = ap.parse_args()
    seeds = seed_files()
    for data in seeds:
        gencompress.decode(data)  # every model loaded before the cap
    if args.cap_gb:
        import resource

        mapped = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
        cap = mapped + int(args.cap_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    bar = tqdm(total=args.cases, file=sys.stderr, mininterval=5, desc="fuzz")
    start = time.perf_counter()
    report = fuzz.run(seeds, args.cases, gencompress.decode, seed=args.seed, progress=lambda _: bar.update(1))
    bar.close()
    print(f"{report.summary()}; {time.perf_counter() - start:.0f} s, {len(seeds)} seed files, "
          f"memory cap {args.cap_gb:g} GB beyond the loaded process")
    for outcome, count in report.outcomes.most_common(12):
        print(f"  {count:7d}  {outcome[:100]}")
    for case, error in report.crashes[:20]:
        print(f"  crash in case {case}: {error}")
    sys.exit(1 if report.crashes else 0)


if __name__ == "__main__":
    main()

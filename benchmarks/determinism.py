"""Decode the same files in fresh processes under other thread counts, oneDNN off and other CPU capabilities.

    python benchmarks/determinism.py [--files DIR]

Encodes a few files (ae, vae, one tile and tiled, gray, RGBA; overfit) with this machine's
defaults, or takes the .gcz files in --files, then decodes each in a fresh process per setting,
with the pixel check on, and prints the matrix: `ok` (decoded, pixels identical to the first
setting's), `differs` (decoded, other pixels), or the error. The claim under test (docs/FORMAT.md):
a file of format version 3 decodes to identical pixels everywhere, and its checksum holds.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import gencompress
from gencompress.portability import decode_everywhere

ROOT = Path(__file__).resolve().parent.parent
def sample_files(folder: Path) -> list[Path]:
    rgb = np.asarray(Image.open(ROOT / "tests" / "data" / "parrot_96x80.png").convert("RGB"))
    tiled = np.tile(rgb, (2, 2, 1))[:150, :180]
    cases = {
        "vae_q3": (rgb, "vae", 3, 1024), "vae_q6_tiled": (tiled, "vae", 6, 128),
        "vae_q8_gray": (rgb[:, :, 1], "vae", 8, 1024), "ae_q2_rgba": (np.dstack([rgb, rgb[:, :, 0]]), "ae", 2, 1024),
        "ae_q7_tiled": (tiled, "ae", 7, 128), "overfit_q4_tiled": (tiled, "overfit", 4, 128),
    }
    paths = []
    for name, (image, model, quality, tile) in cases.items():
        paths.append(folder / f"{name}.gcz")
        paths[-1].write_bytes(gencompress.encode(image, model=model, quality=quality, tile_size=tile,
                                                 **({"effort": "fast"} if model == "overfit" else {})))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=Path, help="decode these .gcz files instead of fresh ones")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = sorted(args.files.glob("*.gcz")) if args.files else sample_files(Path(tmp))
        results = decode_everywhere(paths)
    first = next(iter(results.values()))
    print(f"{'setting':26s} " + " ".join(f"{p.stem[:16]:>16s}" for p in paths))
    failed = 0
    for name, row in results.items():
        cells = []
        for got, reference in zip(row, first):
            ok = len(got) == 64 and got == reference
            failed += not ok
            cells.append("ok" if ok else ("differs" if len(got) == 64 else got.split(":")[0]))
        print(f"{name:26s} " + " ".join(f"{c:>16s}" for c in cells))
    print(f"{len(paths)} files x {len(results)} settings: {failed} not decoded to the same pixels")
    for name, row in results.items():
        for path, got in zip(paths, row):
            if len(got) != 64:
                print(f"  {name} / {path.name}: {got[:120]}")


if __name__ == "__main__":
    main()

"""Write the golden .gcz files of the current format version and the digests of their pixels.

    python tests/data/make_golden.py [CASE ...]     # every case, or only those named
    ONEDNN_MAX_CPU_ISA=AVX2 python tests/data/make_golden.py --references

Run once per format version (and, before 1.0, when a model is retrained: docs/FORMAT.md). Files of
earlier versions (names without a version prefix: version 1) stay as they are, and golden.json
keeps their digests: a later version must decode those very bytes to those very pixels
(tests/test_golden.py). Golden files are never regenerated to make a failing test pass.

`--references` writes NAME.pixels.png beside the files whose pixels depend on the machine (the
amortized models' of versions 1 and 2, reconstructed in float32): decoded where golden.json's
digests hold (oneDNN limited to AVX2 reproduces them), checked against those digests. The test
accepts a level of difference from them, as docs/FORMAT.md allows.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import gencompress

HERE = Path(__file__).parent
PREFIX = f"v{gencompress.container.FORMAT_VERSION}_"
CASES = {  # name: (model, quality, tile size, how to cut the image from the test photo[, overfit effort])
    "vae_q3_rgb": ("vae", 3, 1024, lambda a: a),
    "vae_q8_gray": ("vae", 8, 1024, lambda a: a[:33, :47, 1]),
    "ae_q1_rgba": ("ae", 1, 1024, lambda a: np.dstack([a[:21, :30], np.arange(630, dtype=np.uint8).reshape(21, 30)])),
    "ae_q5_1x7": ("ae", 5, 1024, lambda a: a[40:41, 10:17]),
    "vae_q2_tiles": ("vae", 2, 128, lambda a: np.tile(a, (2, 2, 1))[:150, :180]),  # 2 x 2 tiles, blended
    "overfit_q4_rgb": ("overfit", 4, 1024, lambda a: a[:40, :48]),
    "overfit_q2_tiles_gray": ("overfit", 2, 128, lambda a: np.tile(a, (2, 2, 1))[:150, :140, 0]),
    "overfit_q5_ancestors": ("overfit", 5, 1024, lambda a: a[:40, :56], "high"),  # tile preamble version 2
    # tile preamble version 3 (a step per parameter tensor, recipe 13), without and with ancestors
    "overfit_q3_tensor_steps": ("overfit", 3, 1024, lambda a: a[8:48, 16:72]),
    "overfit_q6_tensor_steps_ancestors": ("overfit", 6, 1024, lambda a: a[40:80, 24:80], "high"),
}


def main(names: list[str]) -> None:
    photo = np.asarray(Image.open(HERE / "parrot_96x80.png").convert("RGB"))
    index = HERE / "golden" / "golden.json"
    digests = json.loads(index.read_text()) if index.is_file() else {}
    for case, (model, quality, tile_size, cut, *effort) in CASES.items():
        if names and case not in names:
            continue
        name = PREFIX + case
        effort = (effort or ["fast"])[0] if model == "overfit" else None  # by default the overfit encoder's fewest steps
        data = gencompress.encode(np.ascontiguousarray(cut(photo)), model=model, quality=quality, device="cpu",
                                  tile_size=tile_size, effort=effort)
        (HERE / "golden" / f"{name}.gcz").write_bytes(data)
        pixels = gencompress.decode(data, device="cpu")
        digests[name] = {"shape": list(pixels.shape), "sha256": hashlib.sha256(pixels.tobytes()).hexdigest()}
    index.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")


def references() -> None:
    import hashlib

    digests = json.loads((HERE / "golden" / "golden.json").read_text())
    for name, expected in sorted(digests.items()):
        data = (HERE / "golden" / f"{name}.gcz").read_bytes()
        header = gencompress.container.unpack(data).header
        if header.version > 2 or header.model == "overfit":
            continue
        pixels = gencompress.decode(data, device="cpu")
        if hashlib.sha256(pixels.tobytes()).hexdigest() != expected["sha256"]:
            raise SystemExit(f"{name}: its digest does not hold on this machine (try ONEDNN_MAX_CPU_ISA=AVX2)")
        Image.fromarray(pixels).save(HERE / "golden" / f"{name}.pixels.png")


if __name__ == "__main__":
    references() if sys.argv[1:] == ["--references"] else main(sys.argv[1:])

"""Write the golden .gcz files and the digests of their decoded pixels (run once per format/weights).

    python tests/data/make_golden.py

Golden files are never regenerated to make a failing test pass: a later version must decode
these very bytes to these very pixels (tests/test_golden.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

import gencompress

HERE = Path(__file__).parent
CASES = {  # name: (model, quality, how to cut the image from the test photo)
    "vae_q3_rgb": ("vae", 3, lambda a: a),
    "vae_q8_gray": ("vae", 8, lambda a: a[:33, :47, 1]),
    "ae_q1_rgba": ("ae", 1, lambda a: np.dstack([a[:21, :30], np.arange(630, dtype=np.uint8).reshape(21, 30)])),
    "ae_q5_1x7": ("ae", 5, lambda a: a[40:41, 10:17]),
}


def main() -> None:
    photo = np.asarray(Image.open(HERE / "parrot_96x80.png").convert("RGB"))
    digests = {}
    for name, (model, quality, cut) in CASES.items():
        data = gencompress.encode(np.ascontiguousarray(cut(photo)), model=model, quality=quality, device="cpu")
        (HERE / "golden" / f"{name}.gcz").write_bytes(data)
        pixels = gencompress.decode(data, device="cpu")
        digests[name] = {"shape": list(pixels.shape), "sha256": hashlib.sha256(pixels.tobytes()).hexdigest()}
    (HERE / "golden" / "golden.json").write_text(json.dumps(digests, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Decoding in fresh processes under other thread counts, oneDNN off and other CPU capabilities.

What docs/FORMAT.md promises for format version 3, that a file decodes to identical pixels on
every machine and its pixel checksum holds there, is tested (tests/test_determinism.py) and
measured (benchmarks/determinism.py) with these settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SETTINGS = {
    "2 threads (as encoded)": {"OMP_NUM_THREADS": "2"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "oneDNN off": {"OMP_NUM_THREADS": "2", "GENCOMPRESS_TEST_NO_MKLDNN": "1"},
    "ATEN default, 1 thread": {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"},
    "ATEN avx2": {"ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "2"},
    "ATEN avx512": {"ATEN_CPU_CAPABILITY": "avx512", "OMP_NUM_THREADS": "2"},
}
# Decodes each file named on the command line; one JSON line per file: pixels' SHA-256 or the error.
SCRIPT = """
import hashlib, json, os, sys
import torch
if os.environ.get("GENCOMPRESS_TEST_NO_MKLDNN"):
    torch.backends.mkldnn.enabled = False
import gencompress
for path in sys.argv[1:]:
    try:
        pixels = gencompress.decode(open(path, "rb").read())
        print(json.dumps(hashlib.sha256(pixels.tobytes()).hexdigest()))
    except Exception as exc:
        print(json.dumps(f"{type(exc).__name__}: {exc}"))
"""


def decode_everywhere(paths: list[Path], settings: dict[str, dict[str, str]] | None = None) -> dict[str, list[str]]:
    """Per setting, what decoding each file in a fresh process gave (pixels' SHA-256, or the error)."""
    out = {}
    for name, env in (settings or SETTINGS).items():
        run = subprocess.run([sys.executable, "-c", SCRIPT, *map(str, paths)], env=os.environ | env,
                             capture_output=True, text=True, check=True)
        out[name] = [json.loads(line) for line in run.stdout.splitlines()]
    return out

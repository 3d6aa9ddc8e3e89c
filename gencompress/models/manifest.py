"""The shipped weights' manifest: provenance and measured Kodak figures per model.

weights/manifest.json is written by benchmarks/kodak_models.py after training; this module only
reads it and joins it with the registry, without importing torch.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .registry import MODELS, WEIGHTS_DIR

MANIFEST = WEIGHTS_DIR / "manifest.json"


def read_manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}


def shipped_models() -> list[dict[str, Any]]:
    """One row per registered model whose weight file is present, with its Kodak figures if measured on it."""
    manifest = read_manifest()
    rows = []
    for name, spec in MODELS.items():
        if not spec.shipped:
            continue
        data = spec.weights.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        figures = manifest.get(name, {})
        if figures.get("measured_weights_sha256") != sha:  # measured on other weights: not these figures
            figures = {}
        gan = spec.gan_weights.name if spec.gan_weights.is_file() else None
        rows.append({"name": name, "description": spec.description, "qualities": list(range(1, 9)),
                     "weights": spec.weights.name, "weights_bytes": len(data), "sha256": sha,
                     "gan_decoder": gan, "efforts": list(spec.efforts)} | figures)
    return rows

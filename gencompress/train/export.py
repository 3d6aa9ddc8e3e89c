"""Turn a training checkpoint into a shipped weight file.

Storage precisions are models/storage.py's (float16 convolutions, exact coding tables). The
network is rounded to those precisions *before* the coding tables are computed, so the tables
describe exactly the model that ships. The safetensors metadata records architecture, qualities, recipe
and data; .gcz files name the file by its SHA-256.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..models import registry
from ..models.storage import from_shipped, load_state, shipped_state
from .loop import TrainConfig

def export(checkpoint_dir: Path, out: Path, notes: dict | None = None) -> Path:
    """Write out (a .safetensors file) from checkpoint_dir; returns out."""
    meta = json.loads((checkpoint_dir / "checkpoint.json").read_text())
    cfg = meta["config"]
    train_cfg = TrainConfig(**cfg)
    tensors = load_file(checkpoint_dir / "checkpoint.safetensors")
    config = registry.spec(cfg["model"]).config | cfg.get("model_config", {})
    model = registry.build(cfg["model"], **config)
    load_state(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    load_state(model, from_shipped(shipped_state(model)))  # round to the shipped precisions
    model.eval()
    with torch.no_grad():
        for bottleneck in _bottlenecks(model):
            bottleneck._update_quantiles()  # bisection: exact tails instead of the slowly trained aux estimate
        model.update_tables()
    metadata = {
        "format": "gencompress-weights-1",
        "model": cfg["model"],
        "architecture": registry.spec(cfg["model"]).target,
        "config": json.dumps(config),
        "qualities": json.dumps({q + 1: lmbda for q, lmbda in enumerate(train_cfg.lambdas())}),
        "recipe": json.dumps({k: v for k, v in cfg.items() if k not in ("model", "data", "out")}
                             | {"steps_done": meta["step"], "loss": _loss(train_cfg),
                                "commit": meta.get("commit", "unknown")}),
        "data": json.dumps(cfg["data"]),
    } | {k: json.dumps(v) if not isinstance(v, str) else v for k, v in (notes or {}).items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file(shipped_state(model), tmp, metadata=metadata)
    tmp.chmod(0o644)
    tmp.replace(out)
    return out


def _loss(cfg: TrainConfig) -> str:
    distortion = "255^2*MSE" if cfg.metric == "mse" else "(1 - MS-SSIM)"
    which = "per-sample quality" if cfg.quality is None else f"quality {cfg.quality} only"
    return f"lambda*{distortion} + bpp, {which}"


def _bottlenecks(model: torch.nn.Module):
    from compressai.entropy_models import EntropyBottleneck

    return [m for m in model.modules() if isinstance(m, EntropyBottleneck)]

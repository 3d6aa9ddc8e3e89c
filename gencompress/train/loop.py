"""Rate-distortion training of a registered model on random crops from folders of images.

Recipe (chosen to make CPU steps count, see README "Training"):
- variable rate: every sample of a batch draws its own quality, so one run trains all 8 λ;
- mixed quantization (Minnen & Singh 2020): the rate term sees additive noise, the synthesis
  sees rounded latents through a straight-through estimator, as at test time;
- random-scale crops: each crop covers patch/s pixels of the photo, s in [min_scale, 1], resized to
  patch with antialiasing, so smooth wallpaper photos also show the dense texture of a small picture;
- Adam with warm-up and gradient clipping, then a cosine decay to 1/20 of the rate (a constant high
  rate left the transforms noisy: dropping it 10x late gained 3 dB of training PSNR at once);
- the entropy bottlenecks' quantile (auxiliary) loss on its own optimizer, as in CompressAI.

Checkpoints are safetensors (model and Adam state) plus JSON: nothing is unpickled on resume.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..models import registry
from ..models.base import LAMBDAS
from ..models.storage import load_weights, weights_metadata

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm"}


@dataclass
class TrainConfig:
    model: str
    data: list[str]
    out: str
    steps: int = 10000
    batch: int = 8
    patch: int = 128
    lr: float = 2e-4
    aux_lr: float = 1e-2  # the quantiles only feed the coding tables; a fast rate keeps them converged
    entropy_lr: float | None = None  # learning rate of the entropy models' densities (default: lr)
    clip: float = 1.0
    min_scale: float = 0.5  # smallest resize factor of random-scale crops (1.0: plain crops)
    seed: int = 0
    device: str = "cpu"
    checkpoint_every_s: float = 300.0
    model_config: dict = field(default_factory=dict)  # overrides of the registry's sizes
    init: str | None = None  # a shipped .safetensors to start from (continue training across sessions)
    init_partial: bool = False  # load only the tensors both share (automatic when init names another model)


def load_images(dirs: list[str], min_side: int) -> list[torch.Tensor]:
    """All RGB images under dirs as uint8 (3, H, W) tensors, skipping those smaller than min_side."""
    images = []
    for d in dirs:
        for path in sorted(Path(d).rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                with Image.open(path) as img:
                    arr = np.asarray(img.convert("RGB"))
                if min(arr.shape[:2]) >= min_side:
                    images.append(torch.from_numpy(arr.copy()).permute(2, 0, 1))
    if not images:
        raise ValueError(f"no images of at least {min_side}px found in {dirs}")
    return images


def random_batch(images: list[torch.Tensor], batch: int, patch: int, gen: torch.Generator,
                 min_scale: float = 1.0) -> torch.Tensor:
    """batch random patch x patch crops, float in [0, 1]: random image, scale, position, horizontal flip.

    A crop at scale s covers patch/s source pixels (at most the image) and is resized to patch.
    """
    crops = []
    for i in torch.randint(len(images), (batch,), generator=gen).tolist():
        img = images[i]
        scale = min_scale + (1.0 - min_scale) * torch.rand(1, generator=gen).item()
        side = min(round(patch / scale), *img.shape[1:])
        top = torch.randint(img.shape[1] - side + 1, (1,), generator=gen).item()
        left = torch.randint(img.shape[2] - side + 1, (1,), generator=gen).item()
        crop = img[:, top:top + side, left:left + side].float() / 255.0
        if side != patch:
            crop = F.interpolate(crop[None], size=(patch, patch), mode="bicubic", antialias=True)[0].clamp(0, 1)
        if torch.rand(1, generator=gen).item() < 0.5:
            crop = crop.flip(2)
        crops.append(crop)
    return torch.stack(crops)


def rd_loss(out: dict[str, torch.Tensor], x: torch.Tensor, quality: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample λ_q·255²·MSE + bpp, averaged over the batch (CompressAI's convention)."""
    pixels = x.shape[2] * x.shape[3]
    mse = ((out["x_hat"] - x) ** 2).flatten(1).mean(1)
    bpp = out["bits"] / pixels
    lmbda = torch.tensor(LAMBDAS, device=x.device)[quality]
    loss = (lmbda * 255**2 * mse + bpp).mean()
    psnr = (-10 * torch.log10(mse.clamp_min(1e-10))).mean()
    return {"loss": loss, "bpp": bpp.mean(), "psnr": psnr}


class Trainer:
    """Owns model, optimizers, data and step counter; save() and load() round-trip all of it."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.device = torch.device(cfg.device)
        self.model = registry.build(cfg.model, **cfg.model_config)
        if cfg.init:  # another architecture's weights (vae -> vae-ctx) load the tensors both share
            data = Path(cfg.init).read_bytes()
            load_weights(self.model, data, partial=cfg.init_partial or weights_metadata(data).get("model") != cfg.model)
        self.model = self.model.to(self.device).train()
        aux = {n for n, _ in self.model.named_parameters() if n.endswith("quantiles")}
        params = dict(self.model.named_parameters())
        main = [n for n in sorted(params) if n not in aux]
        density = [n for n in main if n.startswith("entropy_")] if cfg.entropy_lr else []
        self.opt = torch.optim.Adam([{"params": [params[n] for n in main if n not in density], "scale": 1.0},
                                     {"params": [params[n] for n in density], "scale": (cfg.entropy_lr or 0) / cfg.lr}],
                                    lr=cfg.lr)
        self.aux_opt = torch.optim.Adam([params[n] for n in sorted(aux)], lr=cfg.aux_lr)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.images = load_images(cfg.data, cfg.patch)

    def lr_at(self, step: int) -> float:
        """Linear warm-up over the first 300 steps, then a cosine decay from lr to lr/20 at the last step."""
        warmup = min(1.0, (step + 1) / 300)
        progress = min(1.0, step / max(1, self.cfg.steps - 1))
        return self.cfg.lr * warmup * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    def train_step(self) -> dict[str, float]:
        x = random_batch(self.images, self.cfg.batch, self.cfg.patch, self.gen, self.cfg.min_scale).to(self.device)
        quality = torch.randint(len(LAMBDAS), (self.cfg.batch,), generator=self.gen).to(self.device)
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step) * group["scale"]
        metrics = rd_loss(self.model(x, quality), x, quality)
        self.opt.zero_grad(set_to_none=True)
        if torch.isfinite(metrics["loss"]):
            metrics["loss"].backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip)
            self.opt.step()
        aux_loss = self.model.aux_loss()
        self.aux_opt.zero_grad(set_to_none=True)
        aux_loss.backward()
        self.aux_opt.step()
        self.step += 1
        return {k: float(v.detach()) for k, v in metrics.items()} | {"aux": float(aux_loss.detach())}

    def run(self, log=sys.stderr, max_seconds: float | None = None) -> None:
        """Train up to cfg.steps (or max_seconds of wall clock), checkpointing every checkpoint_every_s and at the end."""
        start = last_save = time.monotonic()
        bar = tqdm(total=self.cfg.steps, initial=self.step, file=log, mininterval=10, desc=self.cfg.model)
        ema: dict[str, float] = {}
        while self.step < self.cfg.steps and (max_seconds is None or time.monotonic() - start < max_seconds):
            metrics = self.train_step()
            ema = {k: 0.98 * ema.get(k, v) + 0.02 * v for k, v in metrics.items()}
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in ema.items()}, refresh=False)
            if time.monotonic() - last_save > self.cfg.checkpoint_every_s:
                self.save(Path(self.cfg.out))
                last_save = time.monotonic()
        bar.close()
        self.save(Path(self.cfg.out))

    def save(self, out: Path) -> None:
        """Write checkpoint.safetensors + checkpoint.json atomically (temporary files, then rename)."""
        out.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v.contiguous() for k, v in self.model.state_dict().items()}
        for name, opt in (("opt", self.opt), ("aux_opt", self.aux_opt)):
            for idx, state in opt.state_dict()["state"].items():
                for key, value in state.items():
                    tensors[f"{name}.{idx}.{key}"] = value.reshape(-1) if value.ndim == 0 else value.contiguous()
        meta = {"config": asdict(self.cfg), "step": self.step, "rng": self.gen.get_state().tolist(),
                "torch_rng": torch.get_rng_state().tolist()}
        save_file(tensors, out / "checkpoint.safetensors.tmp")
        (out / "checkpoint.json.tmp").write_text(json.dumps(meta))
        (out / "checkpoint.safetensors.tmp").replace(out / "checkpoint.safetensors")
        (out / "checkpoint.json.tmp").replace(out / "checkpoint.json")

    def load(self, ckpt_dir: Path) -> None:
        """Restore model, optimizer, step and random state saved by save()."""
        tensors = load_file(ckpt_dir / "checkpoint.safetensors", device=str(self.device))
        meta = json.loads((ckpt_dir / "checkpoint.json").read_text())
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        for name, opt in (("opt", self.opt), ("aux_opt", self.aux_opt)):
            sd = opt.state_dict()
            state: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in tensors.items():
                if key.startswith(name + "."):
                    _, idx, field_name = key.split(".", 2)
                    state.setdefault(int(idx), {})[field_name] = value.reshape(()).cpu() if field_name == "step" else value
            opt.load_state_dict({"state": state, "param_groups": sd["param_groups"]})
        self.step = meta["step"]
        self.gen.set_state(torch.tensor(meta["rng"], dtype=torch.uint8))
        torch.set_rng_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))


def train(cfg: TrainConfig, resume: Path | None = None, max_seconds: float | None = None) -> Trainer:
    """Train (resuming from a checkpoint folder if given) and leave a checkpoint in cfg.out."""
    trainer = Trainer(cfg)
    if resume is not None:
        trainer.load(resume)
    trainer.run(max_seconds=max_seconds)
    return trainer

"""Rate-distortion training of a registered model on random crops from folders of images.

Recipe (chosen to make CPU steps count, see README "Training"):
- variable rate: every sample of a batch draws its own quality, so one run trains all 8 λ
  (or one quality alone, with the table's λ or a custom one);
- distortion MSE (default) or MS-SSIM, with CompressAI's λ conventions for each;
- bfloat16 autocast of the transforms on CUDA; rates are always computed in float32;
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
from ..models.base import LAMBDAS, MS_SSIM_LAMBDAS
from ..models.storage import load_state, load_weights, weights_metadata

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
    quality: int | None = None  # train this quality (1..8) alone; None: all 8 at once (variable rate)
    lmbda: float | None = None  # with quality: this λ instead of the table's (a custom rate point)
    metric: str = "mse"  # distortion: "mse" (λ·255²·MSE) or "ms-ssim" (λ·(1 - MS-SSIM), its own λ table)
    amp: bool | None = None  # bfloat16 autocast of the transforms; None: on for CUDA, off for CPU
    eval: list[str] = field(default_factory=list)  # held-out folders, evaluated every eval_every steps
    eval_every: int = 1000

    def __post_init__(self):
        if self.quality is not None and not 1 <= self.quality <= len(LAMBDAS):
            raise ValueError(f"quality must be 1..{len(LAMBDAS)}, got {self.quality}")
        if self.lmbda is not None and self.quality is None:
            raise ValueError("a custom lambda needs the quality slot it trains (quality)")
        if self.metric not in ("mse", "ms-ssim"):
            raise ValueError(f"metric must be mse or ms-ssim, got {self.metric!r}")
        if self.metric == "ms-ssim" and self.patch <= 160:
            raise ValueError("ms-ssim training needs crops larger than 160 pixels (its 5 scales)")

    def lambdas(self) -> list[float]:
        """λ per quality slot for this run's metric."""
        table = list(LAMBDAS if self.metric == "mse" else MS_SSIM_LAMBDAS)
        if self.lmbda is not None:
            table[self.quality - 1] = self.lmbda
        return table

    def trained_qualities(self) -> list[int]:
        """0-based quality slots this run trains."""
        return list(range(len(LAMBDAS))) if self.quality is None else [self.quality - 1]


def source_commit() -> str:
    """The commit of the source tree being run (git HEAD), or "unknown" outside a checkout."""
    import subprocess

    try:
        root = Path(__file__).resolve().parents[2]
        return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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


def rd_loss(out: dict[str, torch.Tensor], x: torch.Tensor, quality: torch.Tensor, lambdas: list[float],
            metric: str = "mse") -> dict[str, torch.Tensor]:
    """Per-sample λ_q·D + bpp averaged over the batch; D = 255²·MSE or 1 - MS-SSIM (CompressAI's conventions)."""
    x_hat = out["x_hat"].float()
    pixels = x.shape[2] * x.shape[3]
    mse = ((x_hat - x) ** 2).flatten(1).mean(1)
    bpp = out["bits"] / pixels
    lmbda = torch.tensor(lambdas, device=x.device)[quality]
    if metric == "ms-ssim":
        from pytorch_msssim import ms_ssim

        distortion = 1 - ms_ssim(x_hat, x, data_range=1.0, size_average=False)
    else:
        distortion = 255**2 * mse
    loss = (lmbda * distortion + bpp).mean()
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
        if cfg.patch % self.model.stride:
            raise ValueError(f"patch must be a multiple of {cfg.model}'s stride, {self.model.stride}")
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
        self.eval_images = load_images(cfg.eval, 1) if cfg.eval else []
        self.amp = self.device.type == "cuda" if cfg.amp is None else cfg.amp
        self.commit = source_commit()

    def lr_at(self, step: int) -> float:
        """Linear warm-up over the first 300 steps, then a cosine decay from lr to lr/20 at the last step."""
        warmup = min(1.0, (step + 1) / 300)
        progress = min(1.0, step / max(1, self.cfg.steps - 1))
        return self.cfg.lr * warmup * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    def train_step(self) -> dict[str, float]:
        x = random_batch(self.images, self.cfg.batch, self.cfg.patch, self.gen, self.cfg.min_scale).to(self.device)
        slots = torch.tensor(self.cfg.trained_qualities())
        quality = slots[torch.randint(len(slots), (self.cfg.batch,), generator=self.gen)].to(self.device)
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.step) * group["scale"]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.model(x, quality)
        metrics = rd_loss(out, x, quality, self.cfg.lambdas(), self.cfg.metric)
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
            if self.eval_images and self.step % self.cfg.eval_every == 0:
                self.log_eval(log)
            if time.monotonic() - last_save > self.cfg.checkpoint_every_s:
                self.save(Path(self.cfg.out))
                last_save = time.monotonic()
        bar.close()
        self.save(Path(self.cfg.out))
        if self.eval_images and self.step % self.cfg.eval_every:
            self.log_eval(log)

    @torch.no_grad()
    def evaluate(self) -> list[dict[str, float]]:
        """Rate estimate (test-time rounding) and PSNR of the whole eval images, per trained quality."""
        from ..images import pad

        self.model.eval()
        points = []
        for q in self.cfg.trained_qualities():
            bpp, psnr = [], []
            for img in self.eval_images:
                h, w = img.shape[1:]
                x = torch.from_numpy(pad(img.permute(1, 2, 0).numpy(), self.model.stride)).permute(2, 0, 1)[None]
                x = x.to(self.device).float() / 255.0
                out = self.model(x, torch.tensor([q], device=self.device))
                x_hat = out["x_hat"].clamp(0, 1)[..., :h, :w].mul(255).round()
                mse = float(((x_hat - x[..., :h, :w] * 255) ** 2).mean())
                bpp.append(float(out["bits"]) / (h * w))
                psnr.append(10 * math.log10(255**2 / max(mse, 1e-10)))
            points.append({"step": self.step, "quality": q + 1, "bpp": float(np.mean(bpp)),
                           "psnr": float(np.mean(psnr))})
        self.model.train()
        return points

    def log_eval(self, log=sys.stderr) -> None:
        """Evaluate, append the points to OUT/eval.jsonl and print them in one line."""
        points = self.evaluate()
        out = Path(self.cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        with (out / "eval.jsonl").open("a") as f:
            f.writelines(json.dumps(p) + "\n" for p in points)
        line = f"eval step {self.step}: " + ", ".join(f"q{p['quality']} {p['bpp']:.3f} bpp {p['psnr']:.2f} dB"
                                                     for p in points)
        tqdm.write(line, file=log)

    def save(self, out: Path) -> None:
        """Write checkpoint.safetensors + checkpoint.json atomically (temporary files, then rename)."""
        tensors = {f"model.{k}": v.contiguous() for k, v in self.model.state_dict().items()}
        tensors |= optimizer_tensors("opt", self.opt) | optimizer_tensors("aux_opt", self.aux_opt)
        write_checkpoint(out, tensors, {"config": asdict(self.cfg), "step": self.step, "commit": self.commit,
                                        "rng": self.gen.get_state().tolist(), "torch_rng": torch.get_rng_state().tolist()})

    def load(self, ckpt_dir: Path) -> None:
        """Restore model, optimizer, step and random state saved by save()."""
        tensors = load_file(ckpt_dir / "checkpoint.safetensors", device=str(self.device))
        meta = json.loads((ckpt_dir / "checkpoint.json").read_text())
        load_state(self.model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        load_optimizer("opt", self.opt, tensors)
        load_optimizer("aux_opt", self.aux_opt, tensors)
        self.step = meta["step"]
        self.commit = meta.get("commit", self.commit)  # the run's origin, even if resumed from a later checkout
        self.gen.set_state(torch.tensor(meta["rng"], dtype=torch.uint8))
        torch.set_rng_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))


def optimizer_tensors(name: str, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An optimizer's state as flat safetensors entries NAME.INDEX.FIELD (no pickle)."""
    tensors = {}
    for idx, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"{name}.{idx}.{key}"] = value.reshape(-1) if value.ndim == 0 else value.contiguous()
    return tensors


def load_optimizer(name: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """The inverse of optimizer_tensors, into an optimizer built over the same parameters."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(name + "."):
            _, idx, field_name = key.split(".", 2)
            state.setdefault(int(idx), {})[field_name] = value.reshape(()).cpu() if field_name == "step" else value
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})


def write_checkpoint(out: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """checkpoint.safetensors + checkpoint.json in out, each written to a temporary file then renamed."""
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, out / "checkpoint.safetensors.tmp")
    (out / "checkpoint.json.tmp").write_text(json.dumps(meta))
    (out / "checkpoint.safetensors.tmp").replace(out / "checkpoint.safetensors")
    (out / "checkpoint.json.tmp").replace(out / "checkpoint.json")


def train(cfg: TrainConfig, resume: Path | None = None, max_seconds: float | None = None) -> Trainer:
    """Train (resuming from a checkpoint folder if given) and leave a checkpoint in cfg.out."""
    trainer = Trainer(cfg)
    if resume is not None:
        trainer.load(resume)
    trainer.run(max_seconds=max_seconds)
    return trainer

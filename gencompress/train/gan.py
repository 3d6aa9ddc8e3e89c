"""Adversarial training of a shipped model's GAN decoder (models/gan.py); the model itself stays frozen.

Each step: random crops -> the frozen model's analysis, rounding and plain synthesis at a random
quality per sample (exactly the latents a .gcz file carries) -> the sharpener at a random strength s
(half of the samples at s = 1, the rest uniform in [0, 1]) -> losses:

    generator      w_mse·255²·MSE + w_ssim·(1 − MS-SSIM, 7-tap window)
                   + s·(w_adv·non-saturating GAN loss + w_fm·discriminator feature matching
                        + w_tex·band-energy texture loss)
    discriminator  non-saturating loss on real and sharpened crops, both with their latents,
                   at d_lr_scale times the generator's learning rate (two time-scale update rule)

No pretrained network can be downloaded here (no LPIPS, VGG or Inception weights), so the
perceptual term HiFiC takes from LPIPS is replaced by two things. Feature matching on the
discriminator's own features (pix2pixHD) gives a dense signal that grows with the discriminator.
The texture loss compares the local energy of Laplacian bands (mean |band-pass| over 8x8, 4x4
and 2x2 windows of the three finest levels) between output and original: it tolerates
misalignment, as texture must, and asks for the high-frequency energy the MSE decoder lost from
the first step, before the discriminator has learned anything (on a CPU budget of a few thousand
steps it would not learn enough alone). It belongs to the same family of statistics as the
evaluation's patch SWD and spectrum error, so those gains are partly by construction; the
adversarial terms shape what fills the bands. MS-SSIM keeps structure, and the small MSE weight
keeps colours and low frequencies where they were. The realism terms scale with s, so s
conditions how far the output may move from the plain reconstruction. Checkpoints are
safetensors + JSON (no pickle).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..models import registry
from ..models.gan import Discriminator, Sharpener
from ..models.storage import load_weights, shipped_state
from .loop import (load_images, load_optimizer, optimizer_tensors, random_batch, source_commit,
                   write_checkpoint)



@dataclass
class GanConfig:
    model: str  # a shipped model whose files the GAN decoder will sharpen
    data: list[str]
    out: str
    steps: int = 5000
    batch: int = 8
    patch: int = 128
    lr: float = 2e-4
    d_lr_scale: float = 2.0
    min_scale: float = 0.5
    w_mse: float = 0.001  # on the 0..255 scale: 0.1 at 26 dB
    w_ssim: float = 0.5
    w_adv: float = 0.5
    w_fm: float = 10.0  # pix2pixHD's weight: discriminator features are small
    w_tex: float = 30.0
    seed: int = 0
    device: str = "cpu"
    checkpoint_every_s: float = 300.0
    sharpener_config: dict = field(default_factory=dict)


def frozen_decode(model, x: torch.Tensor, quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The synthesis input a file carries (rounded latents, per-sample quality) and the plain reconstruction."""
    with torch.no_grad():
        y = model.gains(model.g_a(x), quality)
        if hasattr(model, "h_a"):  # hyperprior: round around the predicted means, as the coder does
            z_med = model.entropy_z.medians(quality)
            _, means = model.h_s(torch.round(model.h_a(y) - z_med) + z_med).chunk(2, 1)
        else:
            means = model.entropy_y.medians(quality)
        y_in = model.gains(torch.round(y - means) + means, quality, inverse=True)
        return y_in, model.g_s(y_in)


def band_energy(x: torch.Tensor, levels: int = 3) -> list[torch.Tensor]:
    """Local energy of Laplacian bands: mean |band-pass| over 8x8, 4x4, 2x2 windows of the finest levels."""
    out, g = [], x
    for k in range(levels):
        low = F.avg_pool2d(g, 2)
        band = g - F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False)
        out.append(F.avg_pool2d(band.abs(), 8 >> k))
        g = low
    return out


def ms_ssim_small(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample MS-SSIM (5 scales) with a 7-tap window, so that 128-pixel crops reach the coarsest scale."""
    from pytorch_msssim import ms_ssim

    return ms_ssim(a, b, data_range=1.0, win_size=7, size_average=False)


class GanTrainer:
    def __init__(self, cfg: GanConfig):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.device = torch.device(cfg.device)
        spec = registry.spec(cfg.model)
        if not spec.shipped:
            raise ValueError(f"model {cfg.model!r} has no shipped weights to build a GAN decoder on")
        self.base_bytes = spec.weights.read_bytes()
        self.model = load_weights(registry.build(cfg.model), self.base_bytes).to(self.device).eval()
        self.model.requires_grad_(False)
        m = self.model.gains.gain.shape[1]
        self.g = Sharpener(m=m, **cfg.sharpener_config).to(self.device).train()
        self.d = Discriminator(m=m).to(self.device).train()
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=cfg.lr * cfg.d_lr_scale, betas=(0.5, 0.999))
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.images = load_images(cfg.data, cfg.patch)
        self.commit = source_commit()

    def train_step(self) -> dict[str, float]:
        cfg, b = self.cfg, self.cfg.batch
        x = random_batch(self.images, b, cfg.patch, self.gen, cfg.min_scale).to(self.device)
        quality = torch.randint(self.model.gains.gain.shape[0], (b,), generator=self.gen).to(self.device)
        s = torch.where(torch.rand(b, generator=self.gen) < 0.5, 1.0, torch.rand(b, generator=self.gen)).to(self.device)
        y, x_plain = frozen_decode(self.model, x, quality)
        fake = self.g(y, x_plain, s)

        # discriminator: real crops against sharpened ones, each with its latents
        real_logits, _ = self.d(x, y)
        fake_logits, _ = self.d(fake.detach().clamp(0, 1), y)
        loss_d = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        # generator
        logits, feats_fake = self.d(fake.clamp(0, 1), y)
        with torch.no_grad():
            _, feats_real = self.d(x, y)
        per = lambda t: t.flatten(1).mean(1)  # noqa: E731 - per-sample mean
        adv = per(F.softplus(-logits))
        fm = sum(per((a - r).abs()) for a, r in zip(feats_fake, feats_real)) / len(feats_real)
        mse = per((fake - x) ** 2)
        ssim = ms_ssim_small(fake.clamp(0, 1), x)
        tex = sum(per((a - r).abs()) for a, r in zip(band_energy(fake), band_energy(x))) / 3
        realism = cfg.w_adv * adv + cfg.w_fm * fm + cfg.w_tex * tex
        loss_g = (cfg.w_mse * 255**2 * mse + cfg.w_ssim * (1 - ssim) + s * realism).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        torch.nn.utils.clip_grad_norm_(self.g.parameters(), 1.0)
        self.opt_g.step()
        self.step += 1
        plain_mse = per((x_plain.clamp(0, 1) - x) ** 2)
        return {"loss_g": loss_g.item(), "loss_d": loss_d.item(), "adv": adv.mean().item(), "fm": fm.mean().item(),
                "tex": tex.mean().item(),
                "psnr": (-10 * torch.log10(mse.detach().clamp_min(1e-10))).mean().item(),
                "psnr_plain": (-10 * torch.log10(plain_mse.clamp_min(1e-10))).mean().item()}

    def run(self, log=sys.stderr, max_seconds: float | None = None) -> None:
        start = last_save = time.monotonic()
        bar = tqdm(total=self.cfg.steps, initial=self.step, file=log, mininterval=10, desc=f"{self.cfg.model} gan")
        ema: dict[str, float] = {}
        while self.step < self.cfg.steps and (max_seconds is None or time.monotonic() - start < max_seconds):
            metrics = self.train_step()
            ema = {k: 0.98 * ema.get(k, v) + 0.02 * v for k, v in metrics.items() if math.isfinite(v)}
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in ema.items()}, refresh=False)
            if time.monotonic() - last_save > self.cfg.checkpoint_every_s:
                self.save(Path(self.cfg.out))
                last_save = time.monotonic()
        bar.close()
        self.save(Path(self.cfg.out))

    def save(self, out: Path) -> None:
        """checkpoint.safetensors (both networks, both optimizers) + checkpoint.json, atomically."""
        tensors = {f"g.{k}": v.contiguous() for k, v in self.g.state_dict().items()}
        tensors |= {f"d.{k}": v.contiguous() for k, v in self.d.state_dict().items()}
        tensors |= optimizer_tensors("opt_g", self.opt_g) | optimizer_tensors("opt_d", self.opt_d)
        write_checkpoint(out, tensors, {"config": asdict(self.cfg), "step": self.step, "commit": self.commit,
                                        "gan": True, "rng": self.gen.get_state().tolist(),
                                        "torch_rng": torch.get_rng_state().tolist()})

    def load(self, ckpt_dir: Path) -> None:
        tensors = load_file(ckpt_dir / "checkpoint.safetensors", device=str(self.device))
        meta = json.loads((ckpt_dir / "checkpoint.json").read_text())
        self.g.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("g.")})
        self.d.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("d.")})
        load_optimizer("opt_g", self.opt_g, tensors)
        load_optimizer("opt_d", self.opt_d, tensors)
        self.step = meta["step"]
        self.gen.set_state(torch.tensor(meta["rng"], dtype=torch.uint8))
        torch.set_rng_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))

    def export(self, out: Path) -> Path:
        """The generator alone in shipped form, naming the model weights it belongs to (by SHA-256)."""
        import hashlib

        cfg = self.cfg
        metadata = {
            "format": "gencompress-gan-1", "model": cfg.model,
            "base_sha256": hashlib.sha256(self.base_bytes).hexdigest(),
            "config": json.dumps(cfg.sharpener_config),
            "recipe": json.dumps({k: v for k, v in asdict(cfg).items() if k not in ("model", "data", "out")}
                                 | {"steps_done": self.step, "commit": self.commit}),
            "data": json.dumps(cfg.data),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        save_file(shipped_state(self.g), tmp, metadata=metadata)
        tmp.chmod(0o644)
        tmp.replace(out)
        return out


def train_gan(cfg: GanConfig, resume: bool = False, max_seconds: float | None = None) -> GanTrainer:
    trainer = GanTrainer(cfg)
    if resume and (Path(cfg.out) / "checkpoint.json").is_file():
        trainer.load(Path(cfg.out))
    trainer.run(max_seconds=max_seconds)
    return trainer

"""The GAN decoder: sharpening the same file at decode time, strength 0 = plain, training and export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import gencompress
from gencompress.codec import SharpenError
from gencompress.models.gan import Discriminator, Sharpener
from gencompress.models.registry import spec
from gencompress.train.gan import GanConfig, GanTrainer

HAS_GAN = spec("vae").gan_weights.is_file()


def test_strength_zero_is_the_plain_reconstruction_exactly():
    torch.manual_seed(0)
    g = Sharpener(m=24, c=16, blocks=1, fine=8)
    torch.nn.init.normal_(g.fine[-1].weight)  # not the identity start: a trained-looking residual
    y, x = torch.randn(2, 24, 2, 3), torch.rand(2, 3, 32, 48)
    out = g(y, x, torch.tensor([0.0, 1.0]))
    assert torch.equal(out[0], x[0]) and not torch.equal(out[1], x[1])
    logits, feats = Discriminator(m=24, c=8)(x, y)
    assert logits.shape == (2, 1, 4, 6) and len(feats) == 4


@pytest.mark.skipif(not HAS_GAN, reason="no shipped GAN decoder")
def test_the_same_file_decodes_plain_and_sharpened(rgb):
    data = gencompress.encode(rgb, model="vae", quality=1, device="cpu")
    plain = gencompress.decode(data, device="cpu")
    sharp = gencompress.decode(data, device="cpu", sharpen=1.0)
    assert sharp.shape == plain.shape and sharp.dtype == np.uint8 and not np.array_equal(sharp, plain)
    np.testing.assert_array_equal(gencompress.decode(data, device="cpu", sharpen=0.0), plain)
    half = gencompress.decode(data, device="cpu", sharpen=0.5)
    assert np.abs(half.astype(int) - plain).mean() < np.abs(sharp.astype(int) - plain).mean()
    region = gencompress.decode(data, device="cpu", sharpen=1.0, region=(8, 4, 40, 30))
    np.testing.assert_array_equal(region, sharp[4:34, 8:48])


def test_a_model_without_gan_decoder_says_so(rgb):
    data = gencompress.encode(rgb, model="ae", quality=1, device="cpu")
    with pytest.raises(SharpenError, match="'ae' has no GAN decoder"):
        gencompress.decode(data, device="cpu", sharpen=1.0)
    with pytest.raises(SharpenError, match="from 0 to 1"):
        gencompress.decode(data, device="cpu", sharpen=1.5)


def test_training_steps_checkpoint_and_export(tmp_path, rgb):
    data = tmp_path / "photos"
    data.mkdir()
    Image.fromarray(np.tile(rgb, (2, 2, 1))).save(data / "a.png")
    cfg = GanConfig(model="vae", data=[str(data)], out=str(tmp_path / "run"), steps=2, batch=2, patch=128,
                    sharpener_config={"c": 16, "blocks": 1, "fine": 8})
    trainer = GanTrainer(cfg)
    metrics = trainer.train_step()
    assert np.isfinite(list(metrics.values())).all()
    trainer.save(tmp_path / "run")
    resumed = GanTrainer(cfg)
    resumed.load(tmp_path / "run")
    assert resumed.step == 1
    assert all(torch.equal(a, b) for a, b in zip(trainer.g.state_dict().values(), resumed.g.state_dict().values()))
    out = trainer.export(tmp_path / "vae.gan.safetensors")
    from gencompress.models.storage import load_weights, weights_metadata

    meta = weights_metadata(out.read_bytes())
    assert meta["model"] == "vae" and len(meta["base_sha256"]) == 64
    g = load_weights(Sharpener(m=192, c=16, blocks=1, fine=8), out.read_bytes())
    assert set(g.state_dict()) == set(trainer.g.state_dict())


def test_cli_sharpen(tmp_path, rgb):
    import subprocess
    import sys

    Image.fromarray(rgb).save(tmp_path / "p.png")
    cli = [sys.executable, "-m", "gencompress_cli.main"]
    assert subprocess.run([*cli, "encode", str(tmp_path / "p.png"), "--model", "ae", "-q"]).returncode == 0
    proc = subprocess.run([*cli, "decode", str(tmp_path / "p.png.gcz"), "-o", str(tmp_path / "s.png"), "--sharpen"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "'ae' has no GAN decoder" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "s.png").exists()
    if HAS_GAN:
        assert subprocess.run([*cli, "encode", str(tmp_path / "p.png"), "--model", "vae", "-f", "-q"]).returncode == 0
        assert subprocess.run([*cli, "decode", str(tmp_path / "p.png.gcz"), "-o", str(tmp_path / "s.png"),
                               "--sharpen", "0.7", "-q"]).returncode == 0
        assert np.asarray(Image.open(tmp_path / "s.png")).shape == rgb.shape

"""The training code path on a tiny model: steps, checkpoint, exact state on resume, export, options."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from gencompress.models.registry import spec
from gencompress.train.export import export
from gencompress.train.loop import TrainConfig, Trainer, train


def test_train_checkpoint_resume_export(tmp_path, rgb):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(np.roll(rgb, 9 * i, axis=1)).save(data / f"{i}.png")
    cfg = TrainConfig(model="vae", data=[str(data)], out=str(tmp_path / "run"), steps=3, batch=2, patch=64,
                      min_scale=0.5, model_config={"n": 8, "m": 12})
    trainer = train(cfg)
    assert trainer.step == 3
    saved = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    next_step = trainer.train_step()  # before the second Trainer reseeds torch's global RNG (quantization noise)
    resumed = Trainer(cfg)
    resumed.load(tmp_path / "run")
    assert resumed.step == 3
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(v, saved[k]), k
    assert resumed.train_step() == next_step  # optimizer, data and noise state restored exactly
    # Multithreaded CPU backward passes may sum gradients in another order: equal up to the last bits.
    for (k, a), (_, b) in zip(trainer.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=k)
    out = export(tmp_path / "run", tmp_path / "w.safetensors")
    with safe_open(out, "pt") as f:
        meta = f.metadata()
        assert f.get_tensor("gaussian._quantized_cdf").dtype == torch.uint16
    assert meta["model"] == "vae" and json.loads(meta["config"]) == {"n": 8, "m": 12}
    recipe = json.loads(meta["recipe"])
    assert recipe["steps_done"] == 3 and json.loads(meta["data"]) == [str(data)]
    assert len(recipe["commit"]) == 40 or recipe["commit"] == "unknown"
    assert recipe["loss"] == "lambda*255^2*MSE + bpp, per-sample quality"


def test_training_can_start_from_shipped_weights(tmp_path, rgb):
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(rgb).save(data / "0.png")
    cfg = TrainConfig(model="ae", data=[str(data)], out=str(tmp_path / "run"), steps=1, batch=1, patch=64,
                      init=str(spec("ae").weights))
    trainer = Trainer(cfg)
    with safe_open(cfg.init, "pt") as f:
        expected = f.get_tensor("g_s.0.weight").float()
    assert torch.equal(trainer.model.g_s[0].weight.detach(), expected)
    trainer.run()  # the checkpoint now holds the shipped coding tables: export and resume must size them
    export(tmp_path / "run", tmp_path / "w.safetensors")
    Trainer(dataclasses.replace(cfg, init=None)).load(tmp_path / "run")


def test_cli_train_resumes_and_exports(tmp_path, rgb):
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(rgb).save(data / "0.png")
    base = [sys.executable, "-m", "gencompress_cli.main", "train", str(data), "--model", "ae", "--out",
            str(tmp_path / "run"), "--steps", "3", "--batch", "1", "--patch", "64", "--threads", "1", "--resume"]
    first = subprocess.run([*base, "--minutes", "0"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "step 0 of 3" in first.stderr
    second = subprocess.run([*base, "--export", str(tmp_path / "ae.safetensors")], capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr
    assert "step 3 of 3" in second.stderr and (tmp_path / "ae.safetensors").stat().st_size > 1_000_000


def tiny(tmp_path, rgb, **options) -> TrainConfig:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    Image.fromarray(rgb).save(data / "0.png")
    return TrainConfig(model="vae", data=[str(data)], out=str(tmp_path / "run"), batch=2,
                       model_config={"n": 8, "m": 12}, **({"steps": 2, "patch": 64} | options))


def test_single_quality_training_leaves_the_other_qualities_alone(tmp_path, rgb):
    cfg = tiny(tmp_path, rgb, quality=3, lmbda=0.02)
    assert cfg.lambdas()[2] == 0.02 and cfg.trained_qualities() == [2]
    trainer = Trainer(cfg)
    before = trainer.model.gains.gain.detach().clone()
    trainer.run()
    after = trainer.model.gains.gain.detach()
    assert not torch.equal(before[2], after[2])
    assert torch.equal(torch.cat([before[:2], before[3:]]), torch.cat([after[:2], after[3:]]))


def test_ms_ssim_and_mixed_precision_steps_are_finite(tmp_path, rgb):
    with pytest.raises(ValueError, match="160"):
        tiny(tmp_path, rgb, metric="ms-ssim")
    big = np.asarray(Image.fromarray(rgb).resize((200, 200)))
    for options in ({"metric": "ms-ssim", "patch": 192}, {"amp": True}):  # bfloat16 autocast, here on the CPU
        trainer = Trainer(tiny(tmp_path, big, **options))
        assert all(np.isfinite(v) for v in trainer.train_step().values())


def test_eval_folder_is_measured_and_logged(tmp_path, rgb):
    held_out = tmp_path / "held_out"
    held_out.mkdir()
    Image.fromarray(rgb[:70, :50]).save(held_out / "a.png")  # not a multiple of the stride: padded, cropped back
    trainer = train(tiny(tmp_path, rgb, eval=[str(held_out)], eval_every=1, quality=2))
    points = [json.loads(line) for line in (tmp_path / "run" / "eval.jsonl").read_text().splitlines()]
    assert [(p["step"], p["quality"]) for p in points] == [(1, 2), (2, 2)] and trainer.step == 2
    assert all(p["bpp"] > 0 and 0 < p["psnr"] < 99 for p in points)


def test_cli_train_rejects_contradictory_options(tmp_path):
    base = [sys.executable, "-m", "gencompress_cli.main", "train", str(tmp_path), "--model", "vae", "--out",
            str(tmp_path / "run")]
    for extra, message in ((["--lambda", "0.01"], "--lambda needs --quality"),
                           (["--quality", "2", "--variable-rate"], "exclude each other"),
                           (["--metric", "ms-ssim"], "160")):
        proc = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_prepare_repacks_a_folder_smaller_and_keeps_provenance(tmp_path, rgb):
    from gencompress.train.prepare import photo_files, repack

    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(rgb).save(src / "0000.png")
    Image.fromarray(rgb[:40, :60]).save(src / "0001.png")
    (src / "sources.json").write_text(json.dumps([{"file": "0000.png", "package": "p", "size": [96, 80]},
                                                  {"file": "0001.png", "package": "q", "size": [60, 40]}]))
    sources = repack(src, tmp_path / "out", short_side=50, fmt="webp")
    assert [(s["file"], s["package"], s["size"]) for s in sources] == [("0000.webp", "p", [60, 50]),
                                                                       ("0001.webp", "q", [60, 40])]
    small = np.asarray(Image.open(tmp_path / "out" / "0001.webp"))
    assert np.array_equal(small, rgb[:40, :60])  # lossless, and never enlarged
    assert json.loads((tmp_path / "out" / "sources.json").read_text()) == sources

    tree = tmp_path / "pkg" / "usr" / "share" / "wallpapers" / "A"
    tree.mkdir(parents=True)
    for name in ("1920x1080.jpg", "3840x2160.jpg", "notes.png"):
        (tree / name).write_bytes(b"x")
    assert [p.name for p in photo_files(tmp_path / "pkg")] == ["3840x2160.jpg"]  # the largest rendition only

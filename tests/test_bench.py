"""gencompress bench on two small images: consistent figures, resumable cache, missing codecs."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gencompress import bench, classical, metrics

SETTINGS = {"vae": [1, 4], "jpeg": [20, 80], "jpeg444": [20, 80], "webp": [20, 80], "avif": [30, 60],
            "jxl": [4.0, 1.5], "heic": [20, 40], "jpeg2000": [29, 35]}


@pytest.fixture(scope="module")
def images(tmp_path_factory, rgb):
    folder = tmp_path_factory.mktemp("imgs")
    big = np.tile(rgb, (3, 2, 1))[:176, :192]  # larger than 160 px so MS-SSIM is defined
    Image.fromarray(big).save(folder / "a.png")
    Image.fromarray(np.ascontiguousarray(big[::-1])).save(folder / "b.png")
    return folder


@pytest.fixture(scope="module")
def result(images, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cfg = bench.BenchConfig(dirs=[str(images)], codecs=[*SETTINGS, "nope"], qualities=SETTINGS, device="cpu",
                            out=str(out))
    return bench.run(cfg, progress=False), cfg


def test_every_codec_measured_with_consistent_figures(result, images):
    res, _ = result
    assert set(res["points"]) == set(SETTINGS) and "nope" in res["unavailable"]
    for name, points in res["points"].items():
        assert [p["setting"] for p in sorted(points, key=lambda p: p["setting"])] == sorted(SETTINGS[name])
        assert all(p["images"] == 2 and p["ms_ssim"] is not None for p in points)
        assert points[0]["bpp"] < points[1]["bpp"] and points[0]["psnr"] < points[1]["psnr"], name
    for row in res["rows"]:
        assert row["bpp"] == pytest.approx(8 * row["bytes"] / (176 * 192))
    row = next(r for r in res["rows"] if r["codec"] == "jpeg" and r["setting"] == 80 and r["image"].endswith("a.png"))
    original = np.asarray(Image.open(images / "a.png").convert("RGB"))
    data = classical.CODECS["jpeg"].encode(original, 80)
    assert row["bytes"] == len(data)
    assert row["psnr"] == pytest.approx(metrics.psnr(original, np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))))
    assert res["codecs"]["heic"]["versions"]["libheif"]
    assert set(res["bd_rate"]["jpeg"]) == set(SETTINGS) - {"jpeg"}


def test_cache_resumes_without_measuring_again(result):
    res, cfg = result
    again = bench.run(cfg, progress=False)
    assert again["rows"] == res["rows"]  # timings too: nothing was measured twice


def test_cache_measures_again_when_the_codec_changes(result, monkeypatch):
    res, cfg = result
    changed = dataclasses.replace(classical.CODECS["jpeg"], settings=classical.CODECS["jpeg"].settings + ", changed")
    monkeypatch.setitem(classical.CODECS, "jpeg", changed)
    cache = Path(cfg.out) / "cache.jsonl"
    lines = len(cache.read_text().splitlines())
    again = bench.run(dataclasses.replace(cfg, codecs=["jpeg"]), progress=False)
    old = {r["identity"] for r in res["rows"] if r["codec"] == "jpeg"}
    assert {r["identity"] for r in again["rows"]}.isdisjoint(old)
    assert len(cache.read_text().splitlines()) == lines + len(again["rows"])


def test_missing_library_is_reported_not_a_crash(result, monkeypatch):
    _, cfg = result
    missing = dataclasses.replace(classical.CODECS["heic"], available=lambda: False)
    monkeypatch.setitem(classical.CODECS, "heic", missing)
    res = bench.run(dataclasses.replace(cfg, codecs=["jpeg", "heic"]), progress=False)
    assert "not installed" in res["unavailable"]["heic"] and "heic" not in res["points"]


def test_realism_metrics_are_added_to_cached_rows(result):
    res, cfg = result
    again = bench.run(dataclasses.replace(cfg, codecs=["jpeg"], realism=True), progress=False)
    low, high = again["points"]["jpeg"][0], again["points"]["jpeg"][-1]
    assert low["swd"] > high["swd"] > 0 and low["spectrum_db"] > 0  # coarser JPEG: texture further off
    assert "SWD" in bench.format_table(again)


def test_a_model_without_gan_decoder_cannot_be_benched_sharpened():
    with pytest.raises(LookupError, match="no GAN decoder"):
        bench.runner("ae+sharpen", "cpu")


def test_models_bench_at_an_effort_and_the_preset_is_part_of_the_identity(monkeypatch, rgb):
    from gencompress.overfit import presets

    monkeypatch.setitem(presets.EFFORTS, "fast", presets.Effort(steps=2))
    fast = bench.runner("overfit@fast", "cpu")
    assert fast.info["effort"] == "fast" and bench.runner("overfit", "cpu").info["effort"] == "default"
    row = bench.measure(fast, 3, np.ascontiguousarray(rgb[:24, :32]))
    assert row["bytes"] > 0 and row["psnr"] > 0
    monkeypatch.setitem(presets.EFFORTS, "fast", presets.Effort(steps=3))
    assert bench.runner("overfit@fast", "cpu").identity != fast.identity
    with pytest.raises(LookupError, match="effort"):
        bench.runner("vae@fast", "cpu")


def test_published_curves_and_plots(result, tmp_path):
    res, cfg = result
    published = tmp_path / "pub.json"
    jpeg = res["points"]["jpeg"]
    published.write_text(json.dumps({"shifted": [{"bpp": p["bpp"] * 0.8, "psnr": p["psnr"], "ms-ssim": p["ms_ssim"]}
                                                 for p in jpeg + [dict(jpeg[-1], bpp=jpeg[-1]["bpp"] * 1.5,
                                                                       psnr=jpeg[-1]["psnr"] + 2)]]}))
    res2 = bench.run(dataclasses.replace(cfg, codecs=["jpeg", "vae"], published=str(published)), progress=False)
    assert "shifted" in res2["bd_rate"]
    paths = bench.plot(res2, tmp_path)
    assert all(p.stat().st_size > 10_000 for p in paths)
    assert "BD-rate against jpeg" in bench.format_table(res2)


def test_cli_bench(images, tmp_path):
    out = tmp_path / "o"
    proc = subprocess.run([sys.executable, "-m", "gencompress_cli.main", "bench", str(images), "--codecs", "jpeg,webp",
                           "--qualities", "jpeg=20,50,80,95", "--qualities", "webp=20,50,80,95", "--out", str(out),
                           "--json", str(tmp_path / "r.json"), "-q"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "BD-rate against jpeg" in proc.stdout and "webp" in proc.stdout
    assert json.loads((tmp_path / "r.json").read_text())["bd_rate"]["jpeg"]["webp"]["psnr"] is not None
    assert (out / "rd_psnr.png").is_file() and (out / "cache.jsonl").is_file()

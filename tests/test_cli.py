"""The gencompress command as a user runs it: outputs, -f, --json, stdin/stdout, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLI = [sys.executable, "-m", "gencompress_cli.main"]


def run(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, cwd=cwd, timeout=300)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture()
def photo(tmp_path, rgb) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    return path


def test_encode_decode_default_names(photo):
    before = photo.read_bytes()
    proc = run("encode", str(photo), "--model", "ae", "--quality", "2", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    gcz = photo.with_name("photo.png.gcz")
    assert gcz.is_file() and photo.read_bytes() == before
    assert "bpp" in proc.stderr.decode()
    # decoding next to the original would overwrite photo.png: refused without -f
    assert "already exists" in one_line_error(run("decode", str(gcz)))
    assert photo.read_bytes() == before
    out = photo.with_name("back.png")
    assert run("decode", str(gcz), "-o", str(out), "-q").returncode == 0
    assert np.asarray(Image.open(out)).shape == (80, 96, 3)
    assert run("decode", str(gcz), "-f").returncode == 0
    assert photo.read_bytes() != before  # -f did overwrite


def test_no_overwrite_without_force(photo):
    gcz = photo.with_name("photo.png.gcz")
    gcz.write_bytes(b"keep me")
    assert "-f" in one_line_error(run("encode", str(photo)))
    assert gcz.read_bytes() == b"keep me"
    assert run("encode", str(photo), "-f", "-q").returncode == 0
    assert gcz.read_bytes()[:4] == b"\x89GCZ"


def test_json_and_info(photo):
    proc = run("encode", str(photo), "--json", "--quality", "1")
    results = json.loads(proc.stdout)
    size = photo.with_name("photo.png.gcz").stat().st_size
    assert results[0]["bytes"] == size and results[0]["bpp"] == pytest.approx(8 * size / (96 * 80))
    assert results[0]["seconds"] > 0
    info = json.loads(run("info", str(photo.with_name("photo.png.gcz")), "--json").stdout)
    assert info["model"] == "overfit" and info["quality"] == 1  # the default of encode and (info["width"], info["height"]) == (96, 80)
    assert info["bytes"] == size
    text = run("info", str(photo.with_name("photo.png.gcz"))).stdout.decode()
    assert "model: overfit" in text and "bpp:" in text


def test_stdin_stdout(photo):
    proc = run("encode", "-", "--quality", "1", stdin=photo.read_bytes())
    assert proc.returncode == 0 and proc.stdout[:4] == b"\x89GCZ"
    back = run("decode", "-", stdin=proc.stdout)
    assert back.returncode == 0 and back.stdout[:8] == b"\x89PNG\r\n\x1a\n"


def test_directory_with_several_inputs(tmp_path, rgb):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.roll(rgb, i, axis=0)).save(src / f"{i}.png")
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    out.mkdir()
    proc = run("encode", str(src), "-o", str(out), "--json", "--quality", "1")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["0.png.gcz", "1.png.gcz", "2.png.gcz"]
    assert len(json.loads(proc.stdout)) == 3
    dec = tmp_path / "dec"
    dec.mkdir()
    assert run("decode", str(out), "-o", str(dec), "-q").returncode == 0
    assert sorted(p.name for p in dec.iterdir()) == ["0.png", "1.png", "2.png"]


@pytest.mark.parametrize("content", [b"", b"not a gcz file at all", b"\x89GCZ\r\n\x1a\n\x07"])
def test_bad_files_give_one_line_and_no_output(tmp_path, content):
    bad = tmp_path / "bad.gcz"
    bad.write_bytes(content)
    for args in (["decode", str(bad)], ["info", str(bad)]):
        assert one_line_error(run(*args)).startswith("Error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.gcz"]


def test_time_budget_is_for_the_overfitted_codec_only(photo):
    assert "budget" in one_line_error(run("encode", str(photo), "--model", "vae", "--time-budget", "5"))
    assert not photo.with_name("photo.png.gcz").exists()


def test_truncated_file_leaves_no_output(photo):
    run("encode", str(photo), "-q")
    gcz = photo.with_name("photo.png.gcz")
    gcz.write_bytes(gcz.read_bytes()[:-10])
    out = photo.with_name("out.png")
    assert "truncated" in one_line_error(run("decode", str(gcz), "-o", str(out)))
    assert not out.exists() and not list(photo.parent.glob(".*tmp"))


def test_bad_image_and_usage(tmp_path):
    txt = tmp_path / "x.png"
    txt.write_text("not an image")
    assert "cannot read" in one_line_error(run("encode", str(txt)))
    assert "no such file" in one_line_error(run("encode", str(tmp_path / "missing.png")))
    assert run("encode", str(txt), "--quality", "9").returncode == 2
    assert not list(tmp_path.glob("*.gcz"))


def test_models_lists_shipped_models():
    rows = json.loads(run("models", "--json").stdout)
    assert {r["name"] for r in rows} == {"ae", "vae", "overfit"}
    assert all(len(r["sha256"]) == 64 and r["qualities"] == list(range(1, 9)) for r in rows)
    assert {r["name"]: r["efforts"] for r in rows}["overfit"] == ["fast", "default", "high"]
    assert "vae" in run("models").stdout.decode()


def test_tiles_and_region(photo):
    assert run("encode", str(photo), "--tile", "128", "-q").returncode == 0
    gcz = photo.with_name("photo.png.gcz")
    info = json.loads(run("info", str(gcz), "--json").stdout)
    assert info["tiles"] == {"count": 1, "size": 128, "overlap": 32} and info["format_version"] == 3
    out = photo.with_name("part.png")
    assert run("decode", str(gcz), "--region", "10,20,30,40", "-o", str(out), "-q").returncode == 0
    assert np.asarray(Image.open(out)).shape == (40, 30, 3)
    assert "outside" in one_line_error(run("decode", str(gcz), "--region", "90,0,10,10", "-o", str(out), "-f"))
    for proc, message in ((run("decode", str(gcz), "--region", "1,2,3", "-o", str(out), "-f"), "X,Y,WIDTH,HEIGHT"),
                          (run("encode", str(photo), "--tile", "100", "-f"), "tile size")):
        assert proc.returncode == 2 and message in proc.stderr.decode() and b"Traceback" not in proc.stderr


def test_overfit_encode_shows_progress_and_ctrl_c_leaves_no_output(photo):
    import signal
    import time

    # A shell without job control starts background commands with SIGINT ignored, and ignored
    # signals stay ignored across exec (Python then installs no KeyboardInterrupt handler): give
    # the child Ctrl-C's default, as a terminal would, however this suite was started.
    proc = subprocess.Popen([*CLI, "encode", str(photo), "--model", "overfit", "--effort", "high", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen, deadline = b"", time.monotonic() + 120
    while b"step" not in seen and time.monotonic() < deadline:  # the progress bar: steps, bpp, PSNR, time left
        seen += proc.stderr.read1(4096)
    proc.send_signal(signal.SIGINT)
    err = seen + proc.communicate(timeout=60)[1]
    assert b"step" in seen and proc.returncode != 0
    assert b"Traceback" not in err and b"Aborted" in err
    assert sorted(p.name for p in photo.parent.iterdir()) == ["photo.png"]  # no .gcz, no temporary file


def test_several_inputs_keep_their_folders_under_the_output_directory(tmp_path, rgb):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    out.mkdir()
    Image.fromarray(rgb).save(src / "a.png")
    Image.fromarray(rgb[:40, :48]).save(src / "sub" / "a.png")
    proc = run("encode", str(src), "-o", str(out), "--model", "vae", "--device", "cpu", "-q")
    assert proc.returncode == 0, proc.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.gcz")) == ["a.png.gcz", "sub/a.png.gcz"]
    clash = run("encode", str(src / "a.png"), str(src / "sub" / "a.png"), "-o", str(out), "-f")
    assert "both be written" in one_line_error(clash)


def test_errors_and_warnings_are_one_line_each(tmp_path, rgb):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    deep = tmp_path / "deep.png"
    Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257).save(deep)
    proc = run("encode", str(bad), str(deep), "-o", str(tmp_path), "--model", "vae", "--quality", "1")
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert f"Error: {bad}: cannot read as an image" in err and f"{bad}: {bad}" not in err  # the path once
    warning = [line for line in err.splitlines() if "Warning" in line]
    assert len(warning) == 1 and "8 bits" in warning[0] and "images.py" not in err
    assert "BytesIO" not in one_line_error(run("encode", "-", "-o", str(tmp_path / "x.gcz"), stdin=b"junk"))
    assert "stdin: cannot read as an image" in one_line_error(run("encode", "-", "-o", str(tmp_path / "x.gcz"),
                                                                  stdin=b"junk"))
    notadir = tmp_path / "file"
    notadir.write_text("")
    usage = run("encode", str(deep), str(deep), "-o", str(notadir))
    assert usage.returncode == 2 and "must be an existing directory" in one_line_error(usage)


def test_a_device_this_machine_lacks_is_a_usage_error(photo):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = run("encode", str(photo), "--device", "cuda", "--model", "vae")
    assert proc.returncode == 2 and one_line_error(proc) == (
        "Error: --device: device 'cuda': no CUDA GPU is available on this machine")
    assert not photo.with_name("photo.png.gcz").exists()

"""Collections on a Dask cluster (a LocalCluster of 2 worker processes): same bytes as serial
encoding, nothing lost when a worker dies or a job is interrupted, failures reported, zarr chunks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gencompress
from gencompress import files

distributed_ = pytest.importorskip("dask.distributed")
from gencompress import distributed  # noqa: E402

CONFIG = {"model": "vae", "quality": 2, "device": "cpu"}


def gcz_name(p: Path) -> Path:
    return p.with_name(p.name + ".gcz")


@pytest.fixture(scope="module")
def dask_client():
    with distributed.client(workers=2) as c:
        yield c


@pytest.fixture()
def photos(tmp_path, rgb) -> Path:
    """20 small photos in a tree, two of them with the same name in different folders."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    for i in range(20):
        y, x = 7 * i % 60, 11 * i % 80
        folder = root / "sub" if i % 3 == 0 else root
        Image.fromarray(np.ascontiguousarray(rgb[y:y + 40, x:x + 56])).save(folder / f"{i:02d}.png")
    Image.fromarray(rgb[:24, :24]).save(root / "sub" / "01.png")  # same name as in/01.png
    return root


@contextlib.contextmanager
def like_a_worker():
    """One torch thread, as Dask's workers run (OMP_NUM_THREADS=1): the vae's convolutions may
    round differently with other thread counts (issue 14), so "the same bytes" is on like settings."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def serial_bytes(jobs: list[distributed.Job]) -> dict[str, bytes]:
    codec = gencompress.Codec(**CONFIG)
    with like_a_worker():
        return {job.dst: codec.encode(job.src) for job in jobs if not job.src.endswith("bad.png")}


def test_the_cluster_gives_the_bytes_of_serial_encoding_in_a_mirrored_tree(dask_client, photos, tmp_path):
    jobs = distributed.plan([str(photos)], tmp_path / "out", {".png"}, gcz_name)
    assert len(jobs) == 21 and {j.dst for j in jobs} >= {str(tmp_path / "out" / "01.png.gcz"),
                                                         str(tmp_path / "out" / "sub" / "01.png.gcz")}
    records = distributed.run(dask_client, distributed.encode_task, jobs, CONFIG, False)
    assert [r["status"] for r in records] == ["encoded"] * 21
    assert len({r["worker"] for r in records}) == 2  # both workers took part
    for dst, data in serial_bytes(jobs).items():
        assert Path(dst).read_bytes() == data


def test_a_worker_killed_mid_job_loses_nothing(dask_client, photos, tmp_path):
    jobs = distributed.plan([str(photos)], tmp_path / "out", {".png"}, gcz_name)
    pids = dask_client.run(os.getpid)
    killed = []

    def kill_one(record: dict) -> None:
        if not killed:
            killed.append(pids[record["worker"]])
            os.kill(killed[0], signal.SIGKILL)

    records = distributed.run(dask_client, distributed.encode_task, jobs, CONFIG, False, progress=kill_one)
    assert killed and all(r["status"] in ("encoded", "skipped") for r in records) and len(records) == 21
    for dst, data in serial_bytes(jobs).items():
        assert Path(dst).read_bytes() == data
    dask_client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests


def test_an_interrupted_job_run_again_finishes_with_identical_outputs(dask_client, photos, tmp_path):
    jobs = distributed.plan([str(photos)], tmp_path / "out", {".png"}, gcz_name)
    distributed.run(dask_client, distributed.encode_task, jobs[:8], CONFIG, False)  # interrupted after 8
    (Path(jobs[8].dst).parent / f".{Path(jobs[8].dst).name}.abc.tmp").write_bytes(b"half")  # a rename never made
    records = distributed.run(dask_client, distributed.encode_task, jobs, CONFIG, False)
    assert [r["status"] for r in records] == ["skipped"] * 8 + ["encoded"] * 13
    for dst, data in serial_bytes(jobs).items():
        assert Path(dst).read_bytes() == data
    codec = gencompress.Codec(**CONFIG)
    assert all(files.encoded_ok(job.dst, codec, job.src) for job in jobs)
    assert not files.encoded_ok(jobs[0].dst, gencompress.Codec(**(CONFIG | {"quality": 5})), jobs[0].src)


def test_an_output_that_is_not_the_jobs_is_never_overwritten_without_force(dask_client, photos, tmp_path):
    jobs = distributed.plan([str(photos)], tmp_path / "out", {".png"}, gcz_name)
    Path(jobs[0].dst).parent.mkdir(parents=True)
    Path(jobs[0].dst).write_bytes(b"someone else's file")
    records = distributed.run(dask_client, distributed.encode_task, jobs[:2], CONFIG, False)
    assert [r["status"] for r in records] == ["failed", "encoded"] and "-f" in records[0]["error"]
    assert Path(jobs[0].dst).read_bytes() == b"someone else's file"
    assert distributed.run(dask_client, distributed.encode_task, jobs[:1], CONFIG, True)[0]["status"] == "encoded"


def test_a_corrupt_input_is_retried_then_reported_and_the_job_goes_on(dask_client, photos, tmp_path):
    (photos / "bad.png").write_bytes(b"not an image")
    jobs = distributed.plan([str(photos)], tmp_path / "out", {".png"}, gcz_name)
    records = distributed.run(dask_client, distributed.encode_task, jobs, CONFIG, False)
    bad = [r for r in records if r["input"].endswith("bad.png")]
    assert len(bad) == 1 and bad[0]["status"] == "failed" and "cannot read" in bad[0]["error"]
    assert sum(r["status"] == "encoded" for r in records) == 21
    assert not (tmp_path / "out" / "bad.png.gcz").exists()


def test_the_cli_on_a_local_cluster_encodes_resumes_and_decodes(photos, tmp_path):
    cli = [sys.executable, "-m", "gencompress_cli.main"]
    out, back = tmp_path / "out", tmp_path / "back"
    args = ["encode", str(photos), "-o", str(out), "--workers", "2", "--model", "vae", "--quality", "2",
            "--device", "cpu", "--json"]
    first = subprocess.run([*cli, *args], capture_output=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert {r["status"] for r in json.loads(first.stdout)} == {"encoded"}
    again = subprocess.run([*cli, *args], capture_output=True, timeout=300)
    assert {r["status"] for r in json.loads(again.stdout)} == {"skipped"}
    assert b"21 files: 21 skipped" in again.stderr
    dec = subprocess.run([*cli, "decode", str(out), "-o", str(back), "--workers", "2", "-q"], capture_output=True,
                         timeout=300)
    assert dec.returncode == 0, dec.stderr
    assert Image.open(back / "sub" / "01.png").size == (24, 24) and Image.open(back / "01.png").size == (56, 40)
    bad = subprocess.run([*cli, "encode", str(photos), "--workers", "2"], capture_output=True, timeout=60)
    assert bad.returncode == 2 and b"-o DIR" in bad.stderr


def test_a_zarr_array_recompressed_on_the_cluster_reads_back_as_the_codec_decodes_each_chunk(dask_client, rgb,
                                                                                            tmp_path):
    zarr = pytest.importorskip("zarr")
    images = np.stack([rgb[:48, :64], rgb[16:64, 8:72], rgb[32:80, 32:96]])
    src = zarr.create_array(str(tmp_path / "src.zarr"), shape=images.shape, chunks=(1, 48, 64, 3), dtype="uint8")
    src[:] = images
    distributed.recompress_zarr(str(tmp_path / "src.zarr"), str(tmp_path / "dst.zarr"), model="vae", quality=2,
                                dask_client=dask_client)
    back = zarr.open_array(str(tmp_path / "dst.zarr"), mode="r")[:]
    codec = gencompress.Codec(**CONFIG)
    with like_a_worker():
        for image, got in zip(images, back):
            np.testing.assert_array_equal(got, codec.decode(codec.encode(image)))


def test_the_tiles_of_one_image_are_coded_on_several_workers_into_the_serial_file(dask_client, rgb, tmp_path):
    config = CONFIG | {"tile_size": 128}
    image = np.asarray(Image.fromarray(rgb).resize((300, 200)))
    Image.fromarray(image).save(tmp_path / "big.png")
    record = distributed.encode_image(dask_client, tmp_path / "big.png", tmp_path / "big.gcz", config)
    assert record["tiles"] == 6
    with like_a_worker():
        assert (tmp_path / "big.gcz").read_bytes() == gencompress.Codec(**config).encode(tmp_path / "big.png")
    with pytest.raises(FileExistsError):
        distributed.encode_image(dask_client, tmp_path / "big.png", tmp_path / "big.gcz", config)


def test_importing_gencompress_does_not_import_dask():
    code = "import sys, gencompress; sys.exit('dask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

"""The overfitted codec encoding on a GPU, its files measured on this CPU.

Two halves, because a GPU is lent only for minutes, on another machine (tools/device_overfit.sh):

    python benchmarks/overfit_gpu.py encode --kodak DIR --out DIR [--device cuda] [--workers 12]
                                            [--alone 3] --jobs high:kodim01,kodim05:2,4,6,8 ...
    python benchmarks/overfit_gpu.py report --files DIR [--out DIR]

`encode` (on the GPU machine) writes one .gcz per (effort, image, quality) as OUT/EFFORT/IMAGE_qQ.gcz
and a line of OUT/encodes.jsonl per file (encode seconds, steps, device, how many encodes ran
at once). The first --alone jobs run one at a time in this process: their seconds are a single
encode's on that GPU. The rest run --workers at a time, each in its own process (the fits are
small: one fit leaves most of a GPU idle), so their seconds are under contention and the
throughput is the figure. Files already there are skipped: a run stopped by a deadline resumes.
--jobs EFFORT:IMAGES:QUALITIES, IMAGES comma-separated names or "all", in order of priority.

`report` (here, on the CPU) decodes every file with its checksums on (so a GPU-encoded file
decoding bit-exactly on a CPU is checked for each one), measures bpp, PSNR and MS-SSIM against
the Kodak originals, and prints per effort the mean per quality and the BD-rate against HEIC
(the bench's settings, measured here on the same images, cached in OUT/heic.jsonl) and, with
--cpu-cache, against the same effort's encodes on a CPU read from bench caches (rows of the codec
"overfit" or "overfit@EFFORT"; where a cache holds several recipes, its last).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from kodak_codecs import SHARED  # noqa: E402


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _encode(effort: str, source: str, quality: int, target: str, device: str) -> dict:
    """One file: encode, write atomically, return its row."""
    import torch

    import gencompress
    from gencompress.atomic import write_bytes_atomic
    from gencompress.overfit.presets import EFFORTS, RECIPE

    rgb = np.asarray(Image.open(source).convert("RGB"))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    data = gencompress.encode(rgb, model="overfit", quality=quality, effort=effort, device=device)
    seconds = time.perf_counter() - start
    write_bytes_atomic(Path(target), data)
    return {"effort": effort, "image": Path(source).stem, "quality": quality, "bytes": len(data),
            "encode_s": seconds, "steps": EFFORTS[effort].steps, "recipe": RECIPE, "device": device,
            "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
            "torch": torch.__version__, "pid": os.getpid()}


def encode_main(args: argparse.Namespace) -> None:
    names = sorted(p.stem for p in args.kodak.glob("*.png"))
    wanted: dict[tuple[str, str, int], Path] = {}  # in order of priority, each once
    for spec in args.jobs:
        effort, images, qualities = spec.split(":")
        for image in names if images == "all" else images.split(","):
            for q in map(int, qualities.split(",")):
                wanted.setdefault((effort, image, q), args.out / effort / f"{image}_q{q}.gcz")
    jobs = [(e, i, q, str(t)) for (e, i, q), t in wanted.items() if not t.exists()]
    for effort in {j[0] for j in jobs}:
        (args.out / effort).mkdir(parents=True, exist_ok=True)
    _worker_init()
    warm = np.asarray(Image.open(args.kodak / f"{names[0]}.png").convert("RGB"))[:64, :64]
    import gencompress

    gencompress.encode(warm, model="overfit", effort="fast", device=args.device)  # CUDA and the tables, once
    alone, rest = jobs[:args.alone], jobs[args.alone:]
    with (args.out / "encodes.jsonl").open("a") as log:
        def record(row: dict, concurrent: int) -> None:
            row["concurrent"] = concurrent  # processes encoding at once (at most: fewer at the end)
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(f"{row['effort']:>8} {row['image']} q{row['quality']}: {row['bytes']} B {row['encode_s']:.1f} s "
                  f"({concurrent} at once)", flush=True)

        for effort, image, q, target in alone:
            record(_encode(effort, str(args.kodak / f"{image}.png"), q, target, args.device), 1)
        start = time.perf_counter()
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"), initializer=_worker_init) as pool:
            futures = [pool.submit(_encode, e, str(args.kodak / f"{i}.png"), q, t, args.device) for e, i, q, t in rest]
            for n, future in enumerate(as_completed(futures), 1):
                record(future.result(), args.workers)
                if n % 10 == 0:
                    print(f"{n} files in {time.perf_counter() - start:.0f} s", flush=True)


def report_main(args: argparse.Namespace) -> None:
    import gencompress
    from gencompress import bench

    encodes = {}
    for line in (args.files / "encodes.jsonl").read_text().splitlines():
        row = json.loads(line)
        encodes[(row["effort"], row["image"], row["quality"])] = row  # the last encode of a file wrote it
    heic_runner = bench.runner("heic")
    heic_cache = bench.Cache(args.out / "heic.jsonl")
    originals: dict[str, np.ndarray] = {}
    rows: dict[str, list[dict]] = {}
    for (effort, image, q), enc in sorted(encodes.items()):
        path = args.files / effort / f"{image}_q{q}.gcz"
        if not path.exists():
            continue
        rgb = originals.setdefault(image, np.asarray(Image.open(args.kodak / f"{image}.png").convert("RGB")))
        data = path.read_bytes()
        # the bench's measurement of a file made elsewhere: decoded here, checksums on (raises if
        # not bit-exact); its encode seconds are the GPU's, from encodes.jsonl
        made = bench.Runner("overfit (GPU)", (q,), lambda _rgb, _q, data=data: data,
                            lambda d: gencompress.decode(d, device="cpu"), {})
        rows.setdefault(effort, []).append(bench.measure(made, q, rgb) | enc)
    out: dict = {"efforts": {}}
    for effort, effort_rows in rows.items():
        qualities = sorted({r["quality"] for r in effort_rows})
        # only images measured at every quality of this effort enter its curve
        images = sorted(i for i in {r["image"] for r in effort_rows}
                        if sum(r["image"] == i for r in effort_rows) == len(qualities))
        heic = []
        for s in heic_runner.settings:
            per = [bench.measure_cached(heic_cache, heic_runner, s, i, originals[i], bench.image_digest(originals[i]))
                   for i in images]
            heic.append(bench.average(per) | {"setting": s})
        points = []
        for q in qualities:
            per = [r for r in effort_rows if r["quality"] == q and r["image"] in images]
            points.append(bench.average(per) | {"setting": q})
        alone = [r["encode_s"] for r in effort_rows if r["concurrent"] == 1]
        together = [r for r in effort_rows if r["concurrent"] > 1]
        bd = bench.bd_table({"gpu": points}, {"heic": heic}, min_points=3)["heic"]["gpu"]
        cpu = _cpu_points(args.cpu_cache, effort, images, qualities)
        bd_cpu = bench.bd_table({"gpu": points}, {"cpu": cpu}, min_points=3)["cpu"]["gpu"] if cpu else None
        entry = {"images": images, "points": points, "bd_rate_vs_heic": bd, "cpu_points": cpu, "bd_rate_vs_cpu": bd_cpu,
                 "encode_s_alone": alone, "steps": effort_rows[0]["steps"], "gpu": effort_rows[0]["gpu"],
                 "encode_s_mean_concurrent": statistics.fmean(r["encode_s"] for r in together) if together else None,
                 "concurrent": together[0]["concurrent"] if together else None}
        out["efforts"][effort] = entry
        print(f"{effort} ({entry['steps']} steps, {len(images)} images, encoded on {entry['gpu']}):")
        for p in points:
            print(f"  q{p['setting']}: {p['bpp']:.3f} bpp {p['psnr']:.2f} dB MS-SSIM {p['ms_ssim_db'] or float('nan'):.2f} dB, "
                  f"decode on this CPU {p['decode_s']:.2f} s")
        fmt = (lambda v: "n/a" if v is None else f"{v:+.1f}%")
        print(f"  BD-rate vs HEIC: PSNR {fmt(bd['psnr'])}, MS-SSIM {fmt(bd['ms_ssim_db'])}")
        if bd_cpu:
            print(f"  BD-rate vs the CPU's encodes of the same images: PSNR {fmt(bd_cpu['psnr'])}, "
                  f"MS-SSIM {fmt(bd_cpu['ms_ssim_db'])}")
        if alone:
            print(f"  alone on the GPU: {', '.join(f'{s:.1f}' for s in alone)} s per encode "
                  f"({entry['steps'] / statistics.fmean(alone):.0f} steps/s)")
        if together:
            print(f"  {entry['concurrent']} at once: {entry['encode_s_mean_concurrent']:.1f} s per encode")
    (args.out / "results.json").write_text(json.dumps(out, indent=1))


def _cpu_points(caches: list[Path], effort: str, images: list[str], qualities: list[int]) -> list[dict] | None:
    """The effort's mean points over these images from CPU bench caches, None unless all are there."""
    from gencompress import bench

    codec = "overfit" if effort == "default" else f"overfit@{effort}"
    rows = [r for c in caches for r in map(json.loads, c.read_text().splitlines()) if r["codec"] == codec]
    if not rows:
        return None
    rows = [r for r in rows if r["identity"] == rows[-1]["identity"]]
    found = {(Path(r["image"]).stem, int(r["setting"])): r for r in rows}
    if any((i, q) not in found for i in images for q in qualities):
        return None
    return [bench.average([found[i, q] for i in images]) | {"setting": q} for q in qualities]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encode")
    enc.add_argument("--kodak", type=Path, default=SHARED / "kodak")
    enc.add_argument("--out", type=Path, required=True)
    enc.add_argument("--device", default="cuda")
    enc.add_argument("--workers", type=int, default=12)
    enc.add_argument("--alone", type=int, default=0, help="the first N jobs run one at a time")
    enc.add_argument("--jobs", action="append", required=True, help="EFFORT:IMAGES:QUALITIES")
    rep = sub.add_parser("report")
    rep.add_argument("--kodak", type=Path, default=SHARED / "kodak")
    rep.add_argument("--files", type=Path, required=True)
    rep.add_argument("--out", type=Path, default=None, help="default: --files")
    rep.add_argument("--cpu-cache", type=Path, action="append", default=[], help="a bench cache.jsonl")
    args = ap.parse_args()
    if args.command == "encode":
        args.out.mkdir(parents=True, exist_ok=True)
        encode_main(args)
    else:
        args.out = args.out or args.files
        args.out.mkdir(parents=True, exist_ok=True)
        report_main(args)


if __name__ == "__main__":
    main()

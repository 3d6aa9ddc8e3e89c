"""Throughput of whole-folder encoding on a local Dask cluster against one process, and the
scheduler's cost per task: the figures behind the scaling model in README.

    python benchmarks/cluster.py [--kodak DIR] [--images 12] [--small 200] [--workers 1,2]

For each model (vae on Kodak images; overfit at the fast effort on 256x256 Kodak crops, so that a
run takes minutes) it encodes the same files serially in this process (torch on all cores) and
on local clusters of 1 and 2 single-threaded worker processes (gencompress.distributed.run, as
`gencompress encode --workers N` does), and reports images/s, MP/s and each worker's peak
resident memory. Small images (64x64, vae) measure the cluster's overhead per file; empty tasks
measure the scheduler's own cost per task. Worker start-up (importing torch) is not in the times:
each cluster first encodes one file to warm up. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def _peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM, not getrusage, whose ru_maxrss a spawned worker
    inherits from the process that started it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _nothing(i: int) -> int:
    return i


def serial(paths: list[Path], out: Path, config: dict) -> float:
    from gencompress import Codec, files

    codec = Codec(**config)
    codec.encode(str(paths[0]))  # loads the model
    start = time.perf_counter()
    for p in paths:
        files.encode_file(codec, p, out / (p.name + ".gcz"), force=True)
    return time.perf_counter() - start


def clustered(paths: list[Path], out: Path, config: dict, workers: int) -> tuple[float, list[float]]:
    from gencompress import distributed

    with distributed.client(workers=workers) as client:
        warm = distributed.plan([str(paths[0])], out / "warm", {".png"}, lambda p: p.with_name(p.name + ".gcz"))
        for w in client.scheduler_info()["workers"]:  # every worker loads the model before the clock starts
            client.submit(distributed.encode_task, warm[0], config, True, workers=[w], pure=False).result()
        jobs = distributed.plan([str(p) for p in paths], out, {".png"}, lambda p: p.with_name(p.name + ".gcz"))
        start = time.perf_counter()
        records = distributed.run(client, distributed.encode_task, jobs, config, True)
        seconds = time.perf_counter() - start
        assert all(r["status"] == "encoded" for r in records), records
        memory = list(client.run(_peak_rss_mb).values())
    return seconds, memory


def scheduler_overhead(tasks: int) -> float:
    from gencompress import distributed

    with distributed.client(workers=2) as client:
        client.gather(client.map(_nothing, range(100)))  # warm
        start = time.perf_counter()
        client.gather(client.map(_nothing, range(tasks), pure=False))
        return (time.perf_counter() - start) / tasks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", type=Path, default=ROOT.parent / "shared" / "data" / "kodak")
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--small", type=int, default=200, help="64x64 images for the per-file overhead")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cluster.json")
    args = ap.parse_args()
    kodak = sorted(args.kodak.glob("*.png"))[:args.images]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sets = {"vae": (kodak, {"model": "vae", "quality": 3, "device": "cpu"}),
                "overfit@fast": ([], {"model": "overfit", "quality": 4, "effort": "fast", "device": "cpu"}),
                "vae, 64x64": ([], {"model": "vae", "quality": 3, "device": "cpu"})}
        for i, p in enumerate(kodak[:6]):
            crop = tmp / "crops" / f"{i}.png"
            crop.parent.mkdir(exist_ok=True)
            Image.open(p).convert("RGB").crop((0, 0, 256, 256)).save(crop)
            sets["overfit@fast"][0].append(crop)
        rng = np.random.default_rng(0)
        small = tmp / "small"
        small.mkdir()
        base = np.asarray(Image.open(kodak[0]).convert("RGB"))
        for i in range(args.small):
            y, x = rng.integers(0, base.shape[0] - 64), rng.integers(0, base.shape[1] - 64)
            Image.fromarray(base[y:y + 64, x:x + 64]).save(small / f"{i:04d}.png")
            sets["vae, 64x64"][0].append(small / f"{i:04d}.png")
        for name, (paths, config) in sets.items():
            megapixels = sum(Image.open(p).width * Image.open(p).height for p in paths) / 1e6
            runs = [("serial, 1 process", None)] + [(f"{n} worker{'s' * (n > 1)}", n)
                                                    for n in map(int, args.workers.split(","))]
            for label, workers in runs:
                out = tmp / "out" / f"{name}-{label}".replace(" ", "_").replace(",", "")
                out.mkdir(parents=True)
                if workers is None:
                    seconds, memory = serial(paths, out, config), [_peak_rss_mb()]
                else:
                    seconds, memory = clustered(paths, out, config, workers)
                row = {"model": name, "run": label, "files": len(paths), "seconds": round(seconds, 2),
                       "files_per_s": round(len(paths) / seconds, 3), "mp_per_s": round(megapixels / seconds, 3),
                       "s_per_file": round(seconds / len(paths), 4), "peak_rss_mb": [round(m) for m in memory]}
                rows.append(row)
                print(json.dumps(row), flush=True)
    per_task = scheduler_overhead(2000)
    print(json.dumps({"scheduler_s_per_empty_task": round(per_task, 6)}))
    args.out.write_text(json.dumps({"rows": rows, "scheduler_s_per_empty_task": per_task}, indent=1))


if __name__ == "__main__":
    main()

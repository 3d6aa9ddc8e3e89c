"""Whole collections on a Dask cluster: one task per file, resumable, nothing lost.

    gencompress encode photos/ -o out/ --workers 4                    # a local cluster of 4 processes
    gencompress encode photos/ -o out/ --scheduler tcp://host:8786    # a cluster someone started
    recompress_zarr("in.zarr", "out.zarr", model="vae", quality=3, client=client)

Dask (`dask.distributed`, the `gencompress[distributed]` extra) does the scheduling: a
LocalCluster of worker processes, or any cluster a user started (`dask scheduler` and
`dask worker`, dask-jobqueue on SLURM, dask-kubernetes, dask-cuda for GPU workers: a worker
encodes on its GPU when it has one). gencompress adds what a file job needs:
- one task per file: the worker reads the input, codes it and writes the output itself,
  atomically, so only a small record travels back; its model is loaded once per worker process
  (the Codec's model cache) and reused by every task it runs;
- an output that already checks out (a .gcz that decodes with valid checksums, an image that
  reads whole at the right size) is skipped, so a job run again after an interruption does only
  what is missing; since outputs are whole or absent, it ends with the bytes of an uninterrupted run
  (where the workers are alike and no time budget makes bytes depend on speed); an output that
  exists but is not the job's is reported, never overwritten without force;
- a task that fails is retried once on another worker where there is one, then reported, and the
  job goes on; a worker that dies has its tasks moved to others by the scheduler;
- the output tree mirrors the input tree.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import files


@dataclass(frozen=True)
class Job:
    """One file to make: src -> dst."""
    src: str
    dst: str


def plan(inputs: list[str], out_dir: str | Path, suffixes: set[str], output_name: Callable[[Path], Path]) -> list[Job]:
    """Jobs for the inputs (files, or folders searched recursively for `suffixes`), with outputs
    under out_dir: a folder's files keep their place relative to it; a file goes to the top."""
    out, seen = [], {}
    out_dir = Path(out_dir).resolve()  # workers elsewhere resolve relative paths against their own folder
    for item in inputs:
        root = Path(item).resolve()
        if root.is_dir():
            found = [(f, f.relative_to(root)) for f in sorted(root.rglob("*"))
                     if f.is_file() and f.suffix.lower() in suffixes]
        else:
            found = [(root, Path(root.name))]
        for src, rel in found:
            dst = out_dir / rel.parent / output_name(rel).name
            if str(dst) in seen:
                raise ValueError(f"{src} and {seen[str(dst)]} would both be written to {dst}")
            seen[str(dst)] = src
            out.append(Job(str(src), str(dst)))
    return out


@contextlib.contextmanager
def client(workers: int | None = None, scheduler: str | None = None, threads_per_worker: int = 1) -> Iterator[Any]:
    """A Dask client: of the cluster at `scheduler`, or of a local cluster of `workers` processes."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as c:
            yield c
        return
    with LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, Client(cluster) as c:
        yield c


def encode_task(job: Job, config: dict[str, Any], force: bool) -> dict:
    """On a worker: encode one file unless its output already checks out."""
    from .codec import Codec

    codec = Codec(**config)
    done = _existing(job, force, lambda: files.encoded_ok(job.dst, codec, job.src))
    return done or _record(job, "encoded") | files.encode_file(codec, job.src, job.dst, force=True)


def decode_task(job: Job, config: dict[str, Any], force: bool, verify: bool = True) -> dict:
    """On a worker: decode one file unless its output already checks out."""
    from .codec import Codec

    done = _existing(job, force, lambda: files.decoded_ok(job.src, job.dst))
    return done or _record(job, "decoded") | files.decode_file(Codec(**config), job.src, job.dst, force=True,
                                                              verify=verify)


def _existing(job: Job, force: bool, checks_out: Callable[[], bool]) -> dict | None:
    """The record of a job whose output already exists (skipped if it checks out, else failed: it
    is not ours to overwrite without force); None when the job is to run (its folder made)."""
    if not force and Path(job.dst).exists():
        if checks_out():
            return _record(job, "skipped")
        return _record(job, "failed") | {"error": f"{job.dst} exists and is not this job's output (use -f to overwrite)"}
    Path(job.dst).parent.mkdir(parents=True, exist_ok=True)
    return None


def encode_image(dask_client: Any, src: str | Path, dst: str | Path, config: dict[str, Any],
                 force: bool = False) -> dict:
    """Encode one (large) image with its tiles coded as separate tasks on the cluster, the file
    assembled here and written atomically: tiles are independent in the format, so a 50-megapixel
    photo's 54 tiles take 54 workers' time, not one's. A time budget is shared by pixels, as in
    one process (each tile gets its share). The workers must be alike (all CPU or all GPU): the
    file records one device kind."""
    from .atomic import write_bytes_atomic
    from .codec import Codec
    from .container import Device

    dst = Path(dst)
    if dst.exists() and not force:
        raise FileExistsError(f"{dst} already exists (use -f to overwrite)")
    codec = Codec(**config)
    tiles = codec.split(str(src))
    pieces = tiles.pieces()
    total = sum(p.shape[0] * p.shape[1] for p in pieces)
    futures = [dask_client.submit(_code_tile, _share(config, p.shape[0] * p.shape[1] / total), p, pure=False)
               for p in pieces]
    results = dask_client.gather(futures)
    if len({Device.of(device) for _, device in results}) > 1:
        raise RuntimeError("tiles were coded on both CPU and GPU workers; a file records one device kind")
    data = codec.join(tiles, [coded for coded, _ in results], results[0][1])
    write_bytes_atomic(dst, data, overwrite=force)
    return {"input": str(src), "output": str(dst), "status": "encoded", "tiles": len(results), "bytes": len(data)}


def _share(config: dict[str, Any], fraction: float) -> dict[str, Any]:
    budget = config.get("time_budget")
    return config if budget is None else config | {"time_budget": budget * fraction}


def _code_tile(config: dict[str, Any], piece: Any) -> tuple[Any, str]:
    """On a worker: one tile's streams and checksums, and the device that coded it."""
    from .codec import Codec, load_model

    codec = Codec(**config)
    return codec.code_tiles([piece])[0], str(load_model(codec.model, codec.device).device)


def run(dask_client: Any, task: Callable[..., dict], jobs: list[Job], *args: Any,
        progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Run task(job, *args) for every job on the cluster; one record per job, in the jobs' order
    (status "failed" with the error, after one retry, for those that failed)."""
    from dask.distributed import as_completed

    def submit(job: Job, avoid: str | None = None):
        others = [w for w in dask_client.scheduler_info()["workers"] if w != avoid] if avoid else []
        placement = {"workers": others, "allow_other_workers": True} if others else {}
        return dask_client.submit(_guarded, task, job, *args, pure=False, **placement)

    futures = {submit(job): (i, job, 0) for i, job in enumerate(jobs)}
    records: list[dict | None] = [None] * len(jobs)
    pending = as_completed(list(futures))
    for future in pending:
        i, job, attempt = futures.pop(future)
        try:
            record = future.result()
        except Exception as exc:  # noqa: BLE001 - the worker died on it: KilledWorker and the like
            record = _record(job, "failed") | {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        if record["status"] == "failed" and attempt == 0:
            retry = submit(job, avoid=record.get("worker"))
            futures[retry] = (i, job, 1)
            pending.add(retry)
            continue
        records[i] = record
        if progress is not None:
            progress(record)
    return [r for r in records if r is not None]


def _guarded(task: Callable[..., dict], job: Job, *args: Any) -> dict:
    """task on a worker, its error turned into a record that names the worker."""
    from dask.distributed import get_worker

    try:
        record = task(job, *args)
    except Exception as exc:  # noqa: BLE001 - reported per file; the job goes on
        record = _record(job, "failed") | {"error": _one_line(exc)}
    return record | {"worker": get_worker().address}


def _record(job: Job, status: str) -> dict:
    return {"input": job.src, "output": job.dst, "status": status}


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if isinstance(exc, (OSError, ValueError)) and text else f"{type(exc).__name__}: {text}".rstrip(": ")


def recompress_zarr(src: str, dst: str, model: str = "vae", quality: int = 3, effort: str | None = None,
                    dask_client: Any = None) -> None:
    """Copy the zarr array of uint8 images at src (last axes H x W [x C]; chunks holding one image
    each) to a new zarr v3 array at dst whose chunks are coded by gencompress, one task a chunk, on
    the cluster of dask_client (or Dask's current scheduler)."""
    import dask.array as da
    import zarr

    from .zarr import GenCompressCodec

    source = zarr.open_array(src, mode="r")
    if source.dtype != "uint8":
        raise ValueError(f"{src}: gencompress codes uint8 images, not {source.dtype}")
    arr = da.from_zarr(source)
    target = zarr.create_array(dst, shape=source.shape, chunks=source.chunks, dtype="uint8",
                               serializer=GenCompressCodec(model=model, quality=quality, effort=effort))
    stored = da.to_zarr(arr, target, compute=False)  # chunk for chunk: each task codes one chunk
    if dask_client is not None:
        dask_client.compute(stored).result()
    else:
        stored.compute()

"""gencompress encode: images -> .gcz files."""

from __future__ import annotations

from pathlib import Path

import click

from gencompress.models import registry
from gencompress.models.registry import ENCODE_DEFAULT_MODEL, EFFORTS, shipped_names

from .common import (IMAGE_SUFFIXES, STDIO, bad_usage, expand_inputs, plan_jobs, read_input, run_each, run_on_cluster,
                     write_output)


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output file (one input; '-' for stdout) or directory (several inputs).")
@click.option("--model", type=click.Choice(shipped_names()), default=ENCODE_DEFAULT_MODEL, show_default=True,
              help="overfit: the best compression (about a minute per 768x512 image on 2 cores); "
                   "vae: under two seconds per image.")
@click.option("--quality", type=click.IntRange(1, 8), default=3, show_default=True,
              help="1 (smallest file) to 8 (best picture): the rate-distortion trade-off λ.")
@click.option("--effort", type=click.Choice(EFFORTS),
              help="overfit only: optimization steps and decoder size (README gives each preset's time "
                   "and compression). Default: default.")
@click.option("--time-budget", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="overfit only: encode each image within about this many seconds (as many steps as "
                   "fit; bytes then depend on the machine's speed) instead of the effort's steps.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Default: cuda when available.")
@click.option("--tile", "tile_size", type=int, default=1024, show_default=True,
              help="Code in tiles of at most this many pixels square (multiple of 64, 128 to 2048): bounds memory, "
                   "lets decode --region read part of the image.")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--workers", type=click.IntRange(min=1), help="Encode on a local Dask cluster of N worker "
              "processes (needs -o DIR; resumable: outputs that decode are skipped).")
@click.option("--scheduler", metavar="ADDRESS", help="Encode on the Dask cluster at this scheduler address "
              "(tcp://host:8786; needs -o DIR).")
@click.option("--json", "as_json", is_flag=True, help="Print bytes, bpp and seconds per file as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="More detail per file on stderr.")
@click.pass_context
def encode(ctx, inputs, output, model, quality, effort, time_budget, device, tile_size, force, workers, scheduler,
           as_json, quiet, verbose):
    """Compress images (files, directories, or '-' for stdin) to INPUT.gcz."""
    if workers and scheduler:
        raise click.UsageError("--workers starts a local cluster and --scheduler names another: give one")
    if workers or scheduler:
        config = {"model": model, "quality": quality, "device": device, "tile_size": tile_size, "effort": effort,
                  "time_budget": time_budget}
        _codec(**config)  # bad settings fail here, before a cluster starts
        from gencompress.distributed import encode_task

        run_on_cluster(ctx, plan_jobs(inputs, output, IMAGE_SUFFIXES, lambda p: p.with_name(p.name + ".gcz")),
                       encode_task, (config, force), workers, scheduler, quiet, as_json, "encode")
        return
    files = expand_inputs(inputs, IMAGE_SUFFIXES)
    if not files:
        raise click.UsageError("no input images found")
    codec = _codec(model=model, quality=quality, device=device, tile_size=tile_size, effort=effort,
                   progress=not quiet, time_budget=time_budget)

    def summary(r: dict) -> str:
        effort_note = f" effort {effort or 'default'}" if registry.spec(model).efforts else ""
        detail = f", {model} q{quality}{effort_note} on {codec.device}, {r['width']}x{r['height']}" if verbose else ""
        return f"{r['bytes']} bytes, {r['bpp']:.4f} bpp, {r['seconds']:.2f} s{detail}"

    run_each(ctx, files, output, lambda p: p.with_name(p.name + ".gcz"),
             lambda src, dst: _encode_one(codec, src, dst, force), summary, quiet, as_json, "encode")


def _codec(**settings):
    """The Codec of these settings, or a one-line usage error naming the option at fault."""
    from gencompress import Codec

    try:
        return Codec(**settings)
    except ValueError as exc:
        options = (("effort", "--effort"), ("budget", "--time-budget"), ("device", "--device"), ("tile", "--tile"))
        hint = next((option for key, option in options if key in str(exc)), "--quality")
        raise bad_usage(f"{hint}: {exc}") from None


def _encode_one(codec, src: str, dst: str, force: bool) -> dict:
    from gencompress import files
    from gencompress.images import open_image

    if dst != STDIO and Path(dst).exists() and not force:
        raise FileExistsError(f"{dst} already exists (use -f to overwrite)")
    image = open_image(read_input(src), "stdin") if src == STDIO else src
    data, record = files.encode(codec, image, src, dst)
    write_output(dst, data, force)
    return record

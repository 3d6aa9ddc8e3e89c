"""gencompress decode: .gcz files -> images."""

from __future__ import annotations

import io
from pathlib import Path

import click

from .common import STDIO, expand_inputs, plan_jobs, read_input, run_each, run_on_cluster, write_output


def default_output(path: Path) -> Path:
    """photo.png.gcz -> photo.png; photo.jpg.gcz and photo.gcz -> photo.png."""
    stem = path.with_suffix("") if path.suffix.lower() == ".gcz" else path
    return stem.with_suffix(".png") if stem.suffix else stem.with_name(stem.name + ".png")


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output image (one input; '-' for PNG on stdout) or directory.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Default: cuda when available.")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--workers", type=click.IntRange(min=1), help="Decode on a local Dask cluster of N worker "
              "processes (needs -o DIR; resumable: outputs that read whole are skipped).")
@click.option("--scheduler", metavar="ADDRESS", help="Decode on the Dask cluster at this scheduler address "
              "(tcp://host:8786; needs -o DIR).")
@click.option("--no-verify", is_flag=True, help="Skip the decoded-pixels checksum.")
@click.option("--region", callback=lambda ctx, param, value: _parse_region(value), metavar="X,Y,W,H",
              help="Decode only this rectangle (pixels), from the tiles it touches.")
@click.option("--sharpen", type=click.FloatRange(0, 1), is_flag=False, flag_value=1.0, default=None,
              metavar="[STRENGTH]", help="Decode through the model's GAN decoder: restored texture at realism "
                                         "STRENGTH 0..1 (default 1; 0 = the plain pixels).")
@click.option("--json", "as_json", is_flag=True, help="Print per-file results as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="More detail per file on stderr.")
@click.pass_context
def decode(ctx, inputs, output, device, force, workers, scheduler, no_verify, region, sharpen, as_json, quiet,
           verbose):
    """Decompress .gcz files (or '-' for stdin) to PNG (or the format of -o's extension)."""
    from gencompress import Codec

    if workers and scheduler:
        raise click.UsageError("--workers starts a local cluster and --scheduler names another: give one")
    if workers or scheduler:
        if region is not None or sharpen is not None:
            raise click.UsageError("--region and --sharpen are for decoding without a cluster")
        from gencompress.distributed import decode_task

        run_on_cluster(ctx, plan_jobs(inputs, output, {".gcz"}, default_output), decode_task,
                       ({"device": device}, force, not no_verify), workers, scheduler, quiet, as_json, "decode")
        return
    files = expand_inputs(inputs, {".gcz"})
    if not files:
        raise click.UsageError("no .gcz inputs found")
    codec = Codec(device=device)

    def summary(r: dict) -> str:
        detail = f", {r['width']}x{r['height']}x{r['channels']}" if verbose else ""
        return f"{r['seconds']:.2f} s{detail}"

    run_each(ctx, files, output, default_output,
             lambda src, dst: _decode_one(codec, src, dst, force, not no_verify, region, sharpen), summary, quiet, as_json, "decode")


def _parse_region(value: str | None) -> tuple[int, int, int, int] | None:
    if value is None:
        return None
    try:
        x, y, w, h = (int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected X,Y,WIDTH,HEIGHT as four integers, got {value!r}") from None
    return x, y, w, h


def _decode_one(codec, src: str, dst: str, force: bool, verify: bool, region, sharpen) -> dict:
    from gencompress import files

    if dst != STDIO and Path(dst).exists() and not force:
        raise FileExistsError(f"{dst} already exists (use -f to overwrite)")
    image, record = files.decode(codec, read_input(src), src, dst, verify, region, sharpen)
    if dst == STDIO:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        write_output(dst, buf.getvalue(), force)
    else:
        files.save_image(image, Path(dst), force)
    return record

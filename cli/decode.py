"""gencompress decode: .gcz files -> images."""

from __future__ import annotations

import io
import time
from pathlib import Path

import click

from .common import STDIO, describe, expand_inputs, output_for, print_json, progress, read_input, write_output


def default_output(path: Path) -> Path:
    """photo.png.gcz -> photo.png; photo.jpg.gcz and photo.gcz -> photo.png."""
    stem = path.with_suffix("") if path.suffix.lower() == ".gcz" else path
    return stem.with_suffix(".png") if stem.suffix else stem.with_name(stem.name + ".png")


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output image (one input; '-' for PNG on stdout) or directory.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Default: cuda when available.")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--no-verify", is_flag=True, help="Skip the decoded-pixels checksum.")
@click.option("--json", "as_json", is_flag=True, help="Print per-file results as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="More detail per file on stderr.")
@click.pass_context
def decode(ctx, inputs, output, device, force, no_verify, as_json, quiet, verbose):
    """Decompress .gcz files (or '-' for stdin) to PNG (or the format of -o's extension)."""
    from gencompress import Codec

    files = expand_inputs(inputs, {".gcz"})
    if not files:
        raise click.UsageError("no .gcz inputs found")
    codec = Codec(device=device)
    results, failed = [], 0
    for src in progress(files, quiet, "decode"):
        dst = output_for(src, output, len(files) > 1, default_output)
        if dst == STDIO and as_json:
            raise click.UsageError("--json writes to stdout; give -o for the decoded image")
        try:
            result = _decode_one(codec, src, dst, force, not no_verify)
        except Exception as exc:  # noqa: BLE001 - report, go on with the other inputs
            if len(files) == 1:
                raise
            failed += 1
            click.echo(f"Error: {src}: {describe(exc)}", err=True)
            continue
        results.append(result)
        if not quiet and not as_json:
            detail = f", {result['width']}x{result['height']}x{result['channels']}" if verbose else ""
            click.echo(f"{src} -> {dst}: {result['seconds']:.2f} s{detail}", err=True)
    if as_json:
        print_json(results)
    if failed:
        ctx.exit(1)


def _decode_one(codec, src: str, dst: str, force: bool, verify: bool) -> dict:
    from PIL import Image

    if dst != STDIO and Path(dst).exists() and not force:
        raise FileExistsError(f"{dst} already exists (use -f to overwrite)")
    start = time.perf_counter()
    pixels = codec.decode(read_input(src), verify=verify)
    seconds = time.perf_counter() - start
    image = Image.fromarray(pixels)
    if dst == STDIO:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        write_output(dst, buf.getvalue(), force)
    else:
        from gencompress.atomic import write_atomic

        fmt = Image.registered_extensions().get(Path(dst).suffix.lower(), "PNG")
        write_atomic(Path(dst), lambda tmp: image.save(tmp, format=fmt), overwrite=force)
    return {"input": src, "output": dst, "width": image.width, "height": image.height,
            "channels": 1 if pixels.ndim == 2 else pixels.shape[2], "seconds": round(seconds, 4)}

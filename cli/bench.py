"""gencompress bench: rate-distortion of our models and classical codecs on folders of images."""

from __future__ import annotations

from pathlib import Path

import click


def parse_qualities(values: tuple[str, ...]) -> dict[str, list[float]] | None:
    """--qualities jpeg=10,50,90 --qualities vae=1,3 -> {"jpeg": [10, 50, 90], "vae": [1, 3]}."""
    out = {}
    for value in values:
        name, sep, settings = value.partition("=")
        try:
            out[name] = [float(s) for s in settings.split(",")]
        except ValueError:
            sep = ""
        if not sep or not out.get(name):
            raise click.BadParameter(f"expected CODEC=Q1,Q2,...; got {value!r}", param_hint="--qualities")
    return out or None


@click.command()
@click.argument("dirs", nargs=-1, required=True)
@click.option("--codecs", default="vae,ae,jpeg,webp,avif,jxl,heic,jpeg2000", show_default=True,
              help="Comma-separated: model names (MODEL+sharpen: decoded by its GAN decoder; "
                   "MODEL@EFFORT: at an effort preset, e.g. overfit@fast) and jpeg, jpeg444, webp, avif, jxl, "
                   "heic, jpeg2000.")
@click.option("--qualities", multiple=True, help="Settings of one codec, e.g. jpeg=10,50,90 (repeatable).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="For our models; default cuda when available.")
@click.option("--out", "out_dir", default="bench-out", show_default=True,
              help="Folder for the cache, results.json and the RD plots.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Also write the results JSON here.")
@click.option("--anchor", default="jpeg", show_default=True, help="Codec that BD-rates are measured against.")
@click.option("--published", type=click.Path(exists=True, dir_okay=False),
              help="CompressAI-style JSON of published curves to compare and overlay.")
@click.option("--realism", is_flag=True, help="Also Laplacian-patch SWD and high-frequency spectrum error "
                                              "(lower is closer to the original's texture).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def bench(dirs, codecs, qualities, device, out_dir, json_file, anchor, published, realism, quiet):
    """Measure bpp, PSNR, MS-SSIM and speed of codecs on the images in DIRS."""
    from gencompress import bench as engine
    from gencompress.atomic import write_bytes_atomic

    cfg = engine.BenchConfig(dirs=list(dirs), codecs=[c.strip() for c in codecs.split(",") if c.strip()],
                             qualities=parse_qualities(qualities), device=device, out=out_dir, anchor=anchor,
                             published=published, realism=realism)
    result = engine.run(cfg, progress=not quiet)
    engine.plot(result, Path(out_dir))
    if json_file:
        import json

        write_bytes_atomic(Path(json_file), json.dumps(result, indent=1).encode(), overwrite=True)
    click.echo(engine.format_table(result))

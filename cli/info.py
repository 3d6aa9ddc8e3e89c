"""gencompress info and gencompress models: what a file holds, what the package ships."""

from __future__ import annotations

import click

from .common import print_json, read_input


@click.command()
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Print the header as JSON.")
def info(file, as_json):
    """Show the header of a .gcz FILE (no decoding, no model loading)."""
    from gencompress.container import unpack
    from gencompress.models.registry import shipped_names

    data = read_input(file)
    c = unpack(data)
    h = c.header
    fields = {
        "file": file, "model": h.model, "quality": h.quality, "width": h.width, "height": h.height,
        "channels": h.channels, "bit_depth": h.bit_depth, "bytes": len(data), "bpp": 8 * len(data) / h.pixels,
        "weights_sha256": h.weights_sha256.hex(), "model_shipped": h.model in shipped_names(),
        "encoded_on": h.device.name.lower(), "format_version": h.version,
        "tiles": {"count": len(c.tiles), "size": h.tile_size, "overlap": h.overlap},
        "latent_bytes": sum(len(s) for t in c.tiles for s in t.streams), "alpha_bytes": len(c.alpha or b""),
    }
    if as_json:
        print_json(fields)
        return
    for key, value in fields.items():
        if key == "tiles":
            value = f"{value['count']} of up to {value['size']}x{value['size']} pixels, overlapping by {value['overlap']}"
        elif key == "bpp":
            value = f"{value:.4f}"
        click.echo(f"{key:>15}: {value}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def models(as_json):
    """List the shipped models, their qualities and measured Kodak figures."""
    from gencompress.models.manifest import shipped_models

    rows = shipped_models()
    if as_json:
        print_json(rows)
        return
    for row in rows:
        click.echo(f"{row['name']}: {row['description']}")
        click.echo(f"    weights {row['weights']} ({row['weights_bytes'] / 1e6:.1f} MB, sha256 {row['sha256'][:12]})")
        click.echo(f"    GAN decoder (decode --sharpen): {row['gan_decoder'] or 'none'}")
        if row["efforts"]:
            click.echo(f"    efforts (encode --effort): {', '.join(row['efforts'])}")
        for point in row.get("kodak", []):
            click.echo(f"    quality {point['quality']}: {point['bpp']:.3f} bpp, {point['psnr']:.2f} dB PSNR, "
                       f"{point['ms_ssim']:.4f} MS-SSIM")
        if "kodak_bd_rate_vs_jpeg" in row:
            click.echo(f"    Kodak BD-rate vs JPEG (PSNR): {row['kodak_bd_rate_vs_jpeg']:+.1f}%")

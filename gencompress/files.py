"""One image in, one file out, and back: what `gencompress encode` / `decode` and the Dask workers
do per file.

Outputs are written atomically (a temporary file renamed into place), so an output that exists is
whole; `encoded_ok` / `decoded_ok` say whether one already checks out, which is how a job that was
interrupted and run again knows what is left to do.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .atomic import write_atomic, write_bytes_atomic
from .codec import Codec, Region
from .images import ImageLike


def encode(codec: Codec, image: ImageLike, src: str, dst: str) -> tuple[bytes, dict]:
    """The .gcz bytes of an image and the record of it (src, dst: the names to report)."""
    from .container import unpack

    start = time.perf_counter()
    data = codec.encode(image)
    seconds = time.perf_counter() - start
    header = unpack(data).header
    return data, {"input": src, "output": dst, "model": header.model, "quality": header.quality,
                  "width": header.width, "height": header.height, "bytes": len(data),
                  "bpp": 8 * len(data) / header.pixels, "seconds": round(seconds, 4)}


def decode(codec: Codec, data: bytes, src: str, dst: str, verify: bool = True, region: Region | None = None,
           sharpen: float | None = None) -> tuple[Any, dict]:
    """The decoded picture (a PIL image) of .gcz bytes and the record of it."""
    from PIL import Image

    start = time.perf_counter()
    pixels = codec.decode(data, verify=verify, region=region, sharpen=sharpen)
    seconds = time.perf_counter() - start
    image = Image.fromarray(pixels)
    return image, {"input": src, "output": dst, "width": image.width, "height": image.height,
                   "channels": 1 if pixels.ndim == 2 else pixels.shape[2], "seconds": round(seconds, 4)}


def encode_file(codec: Codec, src: str | Path, dst: str | Path, force: bool = False) -> dict:
    """Encode the image file src to dst (refused if dst exists, unless force)."""
    _refuse_existing(Path(dst), force)
    data, record = encode(codec, str(src), str(src), str(dst))
    write_bytes_atomic(Path(dst), data, overwrite=force)
    return record


def decode_file(codec: Codec, src: str | Path, dst: str | Path, force: bool = False, verify: bool = True) -> dict:
    """Decode the .gcz file src to the image dst (its format from its extension, else PNG)."""
    _refuse_existing(Path(dst), force)
    image, record = decode(codec, Path(src).read_bytes(), str(src), str(dst), verify)
    save_image(image, Path(dst), force)
    return record


def save_image(image: Any, dst: Path, force: bool) -> None:
    """Write a PIL image atomically, in the format of dst's extension (PNG for others)."""
    from PIL import Image

    fmt = Image.registered_extensions().get(dst.suffix.lower(), "PNG")
    write_atomic(dst, lambda tmp: image.save(tmp, format=fmt), overwrite=force)


def encoded_ok(path: str | Path, codec: Codec, src: str | Path) -> bool:
    """Whether path is what encoding src with codec makes, as far as can be told without encoding
    again: a .gcz file newer than src, of codec's model and quality and src's size, that decodes
    with valid checksums."""
    from PIL import Image

    from .container import unpack

    try:
        data = Path(path).read_bytes()
        header = unpack(data).header
        with Image.open(src) as im:
            size = im.size
        if (header.model, header.quality, (header.width, header.height)) != (codec.model, codec.quality, size):
            return False
        if Path(path).stat().st_mtime < Path(src).stat().st_mtime:
            return False
        codec.decode(data)
    except Exception:  # noqa: BLE001 - whatever is wrong with it, it is not a finished output
        return False
    return True


def decoded_ok(src: str | Path, dst: str | Path) -> bool:
    """Whether dst is an image newer than the .gcz file src that reads whole at the size src says."""
    from PIL import Image

    from .container import unpack

    try:
        header = unpack(Path(src).read_bytes()).header
        if Path(dst).stat().st_mtime < Path(src).stat().st_mtime:
            return False
        with Image.open(dst) as im:
            im.load()
            return im.size == (header.width, header.height)
    except Exception:  # noqa: BLE001 - whatever is wrong with it, it is not a finished output
        return False


def _refuse_existing(dst: Path, force: bool) -> None:
    if dst.exists() and not force:
        raise FileExistsError(f"{dst} already exists (use -f to overwrite)")

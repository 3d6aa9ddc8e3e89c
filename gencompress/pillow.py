"""Pillow plugin: after register(), Image.open("x.gcz") reads and im.save("x.gcz", quality=3) writes.

Open reads only the header: size and mode are known before decoding, so Pillow's
decompression-bomb check (Image.MAX_IMAGE_PIXELS) applies before any pixel is made. The pixels are
decoded on load(). Save options: quality (1..8, default 3), model (default the codec's default), effort (overfit).
"""

from __future__ import annotations

from typing import IO

from PIL import Image, ImageFile

from . import container
from .codec import Codec
from .models.registry import DEFAULT_MODEL

FORMAT = "GCZ"
MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def _accept(prefix: bytes) -> bool:
    return prefix[:len(container.MAGIC)] == container.MAGIC


class GczImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "gencompress learned image codec"

    def _open(self) -> None:
        try:
            header = container.read_header(self.fp.read(container.HEADER_MAX_BYTES))
        except container.FormatError as exc:
            raise SyntaxError(str(exc)) from None  # Pillow's "not this format" signal
        self._size = (header.width, header.height)
        self._mode = MODES[header.channels]
        self.info.update(model=header.model, quality=header.quality)
        self.tile = [ImageFile._Tile("gcz", (0, 0, *self.size), 0, None)]


class GczDecoder(ImageFile.PyDecoder):
    _pulls_fd = True

    def decode(self, buffer: bytes | None) -> tuple[int, int]:
        self.fd.seek(0)
        pixels = Codec().decode(self.fd.read())
        self.set_as_raw(pixels.tobytes())
        return -1, 0


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    options = im.encoderinfo
    codec = Codec(model=options.get("model", DEFAULT_MODEL), quality=int(options.get("quality", 3)),
                  effort=options.get("effort"))
    fp.write(codec.encode(im))


def register() -> None:
    """Teach Pillow to open and save .gcz files (idempotent)."""
    Image.register_open(FORMAT, GczImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, ".gcz")
    Image.register_mime(FORMAT, "image/x-gcz")
    Image.register_decoder("gcz", GczDecoder)

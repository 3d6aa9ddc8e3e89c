"""numcodecs codec `gencompress`: uint8 image chunks (HxW or HxWxC, C = 1, 3, 4) to .gcz bytes and back.

    numcodecs.get_codec({"id": "gencompress", "model": "vae", "quality": 3})
    numcodecs.get_codec({"id": "gencompress", "model": "overfit", "quality": 4, "effort": "fast"})

is found through the `numcodecs.codecs` entry point (install the `gencompress[zarr]` extra). As a
zarr v2 compressor it receives each chunk with its shape; chunks of an image stack such as
(1, H, W, 3) are accepted as long as the extra leading axes have length 1. Lossy: decode gives
the codec's reconstruction, not the stored values. For zarr v3 see gencompress.zarr.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numcodecs.abc import Codec as NumcodecsCodec
from numcodecs.compat import ensure_bytes, ensure_ndarray, ndarray_copy

from .codec import Codec
from .models.registry import DEFAULT_MODEL


def image_view(chunk: Any) -> np.ndarray:
    """The chunk as HxW or HxWxC uint8, dropping leading axes of length 1; ValueError for anything else."""
    arr = np.asarray(chunk)
    if arr.dtype != np.uint8:
        raise ValueError(f"gencompress codes uint8 images, got dtype {arr.dtype}")
    while arr.ndim > 2 and arr.shape[0] == 1 and (arr.ndim > 3 or arr.shape[-1] not in (1, 3, 4)):
        arr = arr[0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"gencompress codes HxW or HxWxC (C = 1, 3, 4) chunks, got shape {np.shape(chunk)}")
    return arr


class GenCompress(NumcodecsCodec):
    """Learned lossy image compression as a numcodecs codec; config: model, quality (1..8) and,
    for models that optimize while encoding (overfit), effort."""

    codec_id = "gencompress"

    def __init__(self, model: str = DEFAULT_MODEL, quality: int = 3, effort: str | None = None):
        self.model, self.quality, self.effort = model, int(quality), effort
        self._codec = Codec(model=model, quality=self.quality, effort=effort)

    def encode(self, buf: Any) -> bytes:
        return self._codec.encode(image_view(ensure_ndarray(buf)))

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        image = self._codec.decode(ensure_bytes(buf))
        return ndarray_copy(image, out) if out is not None else image

    def get_config(self) -> dict[str, Any]:
        return self._codec.get_config()

    def __repr__(self) -> str:
        effort = f", effort={self.effort!r}" if self.effort else ""
        return f"GenCompress(model={self.model!r}, quality={self.quality}{effort})"

"""gencompress: learned image compression (overfitted per-image codec, autoencoder, hyperprior VAE) into .gcz files.

    >>> import gencompress
    >>> data = gencompress.encode("photo.png", model="vae", quality=3)   # bytes
    >>> pixels = gencompress.decode(data)                                # HxWx3 uint8 array

Importing this package is cheap: torch loads when the first image is coded.
"""

from __future__ import annotations

import numpy as np

from .codec import DEFAULT_TILE_SIZE, Codec, SharpenError
from .container import DEFAULT_MAX_PIXELS, ChecksumError, FormatError
from .images import ImageError, ImageLike
from .models.registry import DEFAULT_MODEL, MODELS

__version__ = "0.1.0"
__all__ = ["Codec", "ChecksumError", "SharpenError", "FormatError", "ImageError", "MODELS", "decode", "encode", "__version__"]


def encode(image: ImageLike, *, model: str = DEFAULT_MODEL, quality: int = 3, device: str | None = None,
           tile_size: int = DEFAULT_TILE_SIZE, effort: str | None = None, time_budget: float | None = None) -> bytes:
    """Compress an image (path, PIL image, or uint8 array HxW / HxWxC) to .gcz bytes; effort: a
    preset of the models that optimize while encoding (overfit: "fast", "default", "high");
    time_budget: seconds that encoding may take (overfit), instead of the preset's steps."""
    return Codec(model=model, quality=quality, device=device, tile_size=tile_size, effort=effort,
                 time_budget=time_budget).encode(image)


def decode(data: bytes, *, device: str | None = None, verify: bool = True,
           region: tuple[int, int, int, int] | None = None, sharpen: float | None = None,
           max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decompress .gcz bytes to a uint8 array (HxW for grayscale, HxWx3, HxWx4 with alpha);
    region=(x, y, width, height) decodes only that rectangle; sharpen=s in [0, 1] decodes through
    the model's GAN decoder at realism strength s (SharpenError if the model has none);
    max_pixels: files of larger images are refused (FormatError) before anything is allocated."""
    return Codec(device=device, max_pixels=max_pixels).decode(data, verify=verify, region=region, sharpen=sharpen)

"""Images in and out: whatever users hand us becomes 8-bit RGB (+ alpha), and back.

The models code 3-channel RGB. Grayscale is coded as RGB with equal channels and returned as one
channel; an alpha plane travels losslessly beside the lossy colour (gray + alpha is coded as RGBA
and decodes as HxWx4). 16-bit and other Pillow modes are converted to 8 bits with a warning, since
the format stores 8-bit samples only. The EXIF orientation of files and PIL images is applied:
what viewers show is coded. Animated and multi-page images are refused rather than cut to a frame.
"""

from __future__ import annotations

import io
import os
import re
import sys
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps

from .container import FormatError

ImageLike = Union[np.ndarray, Image.Image, str, os.PathLike]


class ImageError(ValueError):
    """The input cannot be read as an image, or has a layout the codec does not store."""


@dataclass(frozen=True)
class Planes:
    """An image split into what the model codes (rgb) and what is stored losslessly (alpha)."""

    rgb: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray | None  # (H, W) uint8 or None
    channels: int  # 1, 3 or 4: the layout decode() returns


def to_planes(image: ImageLike) -> Planes:
    """Normalize a path, PIL image or uint8 array (HxW, HxWx1/3/4) into Planes."""
    if isinstance(image, (str, os.PathLike)):
        return _from_pil(open_image(Path(image)))
    if isinstance(image, Image.Image):
        return _from_pil(image)
    if isinstance(image, np.ndarray):
        return _from_array(image)
    raise ImageError(f"cannot encode an object of type {type(image).__name__}")


def open_image(source: Path | bytes, name: str | None = None) -> Image.Image:
    """A still image from a file or its bytes, loaded; ImageError (one line, naming `name` or the
    path) if it is not one. Pillow's decompression-bomb warning is not shown: the codec's own
    pixel limits apply. Pillow refuses images over twice its limit (about 179 MP) itself."""
    name = name or str(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
                _check_still(img, name)
                img.load()
                return img.copy()  # (the file closes with the block)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: larger than Pillow's decompression-bomb limit "
                         f"({2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} MP)") from None
    except (OSError, ValueError) as exc:
        reason = str(exc).replace(repr(str(source)), "").replace(str(source), "").strip(" :")
        if isinstance(source, bytes):
            reason = re.sub(r" ?<_io\.BytesIO object at 0x[0-9a-f]+>", "", reason)
        raise ImageError(f"{name}: cannot read as an image ({reason or type(exc).__name__})") from None


def _check_still(img: Image.Image, name: str) -> None:
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        raise ImageError(f"{name}: an animated or multi-page image ({frames} frames); gencompress codes "
                         f"still images: extract the frame to code first")


def _from_pil(img: Image.Image) -> Planes:
    """A PIL image's planes, with its EXIF orientation applied (what viewers show is coded)."""
    _check_still(img, "image")
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in ("1", "L"):
        return _from_array(np.asarray(img.convert("L")))
    if mode in ("LA", "La"):  # gray + alpha: coded, and decoded, as RGBA
        la = np.asarray(img.convert("LA"))
        return _checked(Planes(np.repeat(la[:, :, :1], 3, axis=2), la[:, :, 1].copy(), 4))
    if mode in ("RGB",):
        return _from_array(np.asarray(img))
    if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in img.info):
        return _from_array(np.asarray(img.convert("RGBA")))
    if mode in ("P", "CMYK", "YCbCr", "LAB", "HSV"):
        return _from_array(np.asarray(img.convert("RGB")))
    if mode.startswith("I") or mode == "F":
        _warn(f"converting {mode} (16/32-bit) samples to 8 bits: .gcz stores 8-bit samples")
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        return _from_array(np.clip(np.round(arr * 255.0 / peak), 0, 255).astype(np.uint8))
    raise ImageError(f"unsupported image mode {mode}")


def _warn(message: str) -> None:
    """A UserWarning attributed to the first caller outside this package (so that Python's
    one-line-plus-source display shows the user's own line, and filters by module work)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 2  # stacklevel 2: the caller of _warn
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def _from_array(arr: np.ndarray) -> Planes:
    if arr.dtype != np.uint8:
        raise ImageError(f"expected a uint8 array, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        rgb = np.repeat(arr[:, :, None], 3, axis=2)
        return _checked(Planes(rgb, None, 1))
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        alpha = arr[:, :, 3].copy() if arr.shape[2] == 4 else None
        return _checked(Planes(np.ascontiguousarray(arr[:, :, :3]), alpha, arr.shape[2]))
    if arr.ndim == 3 and arr.shape[2] == 2:
        raise ImageError("an HxWx2 array is ambiguous; for gray + alpha pass HxWx4 (gray in the first three "
                         "channels) or a PIL image of mode 'LA' (both decode as HxWx4)")
    raise ImageError(f"expected an array of shape HxW or HxWxC with C in 1, 3, 4; got {arr.shape}")


def _checked(p: Planes) -> Planes:
    if p.rgb.shape[0] < 1 or p.rgb.shape[1] < 1:
        raise ImageError("the image is empty")
    return p


def from_planes(rgb: np.ndarray, alpha: np.ndarray | None, channels: int) -> np.ndarray:
    """The decoded array in the input's layout: HxW for gray, HxWx3, HxWx4."""
    if channels == 1:
        return rgb.mean(axis=2, dtype=np.float32).round().astype(np.uint8)
    if channels == 4:
        return np.dstack([rgb, alpha])
    return rgb


def pad(rgb: np.ndarray, multiple: int) -> np.ndarray:
    """Edge-replicate to a multiple of the model's stride (replication costs fewer bits than zeros)."""
    h, w = rgb.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    return np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else rgb


def compress_alpha(alpha: np.ndarray) -> bytes:
    return zlib.compress(np.ascontiguousarray(alpha).tobytes(), 9)


def decompress_alpha(data: bytes, height: int, width: int) -> np.ndarray:
    """Inflate at most height*width bytes; raise FormatError unless exactly that many come out."""
    try:
        d = zlib.decompressobj()
        raw = d.decompress(data, height * width)
    except zlib.error as exc:
        raise FormatError(f"corrupt alpha stream ({exc})") from None
    if len(raw) != height * width or d.unconsumed_tail or not d.eof:
        raise FormatError("corrupt alpha stream (wrong size)")
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width)

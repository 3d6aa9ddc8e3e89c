"""Images in and out: whatever users hand us becomes 8-bit RGB (+ alpha), and back.

The models code 3-channel RGB. Grayscale is coded as RGB with equal channels and returned as one
channel; an alpha plane travels losslessly beside the lossy colour. 16-bit and other Pillow modes
are converted to 8 bits with a warning, since the format stores 8-bit samples only.
"""

from __future__ import annotations

import os
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
        return _from_pil(_open(Path(image)))
    if isinstance(image, Image.Image):
        return _from_pil(image)
    if isinstance(image, np.ndarray):
        return _from_array(image)
    raise ImageError(f"cannot encode an object of type {type(image).__name__}")


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()
            return ImageOps.exif_transpose(img)  # code what viewers show: the EXIF orientation applied
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (OSError, Image.DecompressionBombError, ValueError) as exc:
        raise ImageError(f"{path}: cannot read as an image ({exc})") from None


def _from_pil(img: Image.Image) -> Planes:
    mode = img.mode
    if mode in ("1", "L"):
        return _from_array(np.asarray(img.convert("L")))
    if mode in ("LA", "La"):
        return _from_array(np.asarray(img.convert("LA")))
    if mode in ("RGB",):
        return _from_array(np.asarray(img))
    if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in img.info):
        return _from_array(np.asarray(img.convert("RGBA")))
    if mode in ("P", "CMYK", "YCbCr", "LAB", "HSV"):
        return _from_array(np.asarray(img.convert("RGB")))
    if mode.startswith("I") or mode == "F":
        warnings.warn(f"converting {mode} (16/32-bit) samples to 8 bits", stacklevel=3)
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        return _from_array(np.clip(np.round(arr * 255.0 / peak), 0, 255).astype(np.uint8))
    raise ImageError(f"unsupported image mode {mode}")


def _from_array(arr: np.ndarray) -> Planes:
    if arr.dtype != np.uint8:
        raise ImageError(f"expected a uint8 array, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        rgb = np.repeat(arr[:, :, None], 3, axis=2)
        return _checked(Planes(rgb, None, 1))
    if arr.ndim == 3 and arr.shape[2] == 2:  # gray + alpha: decoded as RGBA
        return _checked(Planes(np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1].copy(), 4))
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        alpha = arr[:, :, 3].copy() if arr.shape[2] == 4 else None
        return _checked(Planes(np.ascontiguousarray(arr[:, :, :3]), alpha, arr.shape[2]))
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

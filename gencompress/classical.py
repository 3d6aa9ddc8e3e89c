"""Classical codecs for benchmarks, each in its strongest PSNR configuration, named and versioned.

Settings follow what was measured on Kodak on this kind of machine (see the project's
classical_kodak_settings.json): AVIF 4:4:4 with tune=psnr; HEIC (x265, the closest to BPG we have)
4:4:4 with tune=psnr and AQ / psycho-visual tools off; JPEG 2000 9/7 with the colour transform in
fixed-quality (dB) mode. A codec whose library is missing reports itself unavailable.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, features


@dataclass(frozen=True)
class ClassicalCodec:
    name: str
    settings: str  # how it is run, in words
    qualities: tuple[float, ...]  # the default sweep, about 0.05 .. 2 bpp on Kodak
    quality_meaning: str
    encode: Callable[[np.ndarray, float], bytes]  # HxWx3 uint8, quality setting -> bytes
    decode: Callable[[bytes], np.ndarray]  # -> HxWx3 uint8
    available: Callable[[], bool]
    versions: Callable[[], dict[str, str]]


def _pil_encoder(fmt: str, **options) -> Callable[[np.ndarray, float], bytes]:
    def encode(rgb: np.ndarray, quality: float) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format=fmt, **_quality_option(fmt, quality), **options)
        return buf.getvalue()

    return encode


def _quality_option(fmt: str, quality: float) -> dict:
    if fmt == "JPEG2000":
        return {"quality_mode": "dB", "quality_layers": [float(quality)]}
    return {"quality": int(quality)}


def _pil_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def _heic_encode(rgb: np.ndarray, quality: float) -> bytes:
    import pillow_heif

    heif = pillow_heif.from_bytes(mode="RGB", size=(rgb.shape[1], rgb.shape[0]), data=np.ascontiguousarray(rgb).tobytes())
    buf = io.BytesIO()
    heif.save(buf, quality=int(quality), chroma=444, enc_params=HEIC_PARAMS)
    return buf.getvalue()


def _heic_decode(data: bytes) -> np.ndarray:
    import pillow_heif

    return np.asarray(pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True).to_pillow().convert("RGB"))


def _jxl_encode(rgb: np.ndarray, distance: float) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpegxl_encode(rgb, distance=float(distance), effort=7))


def _jxl_decode(data: bytes) -> np.ndarray:
    import imagecodecs

    return np.asarray(imagecodecs.jpegxl_decode(data))[:, :, :3]


def _has_module(name: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            __import__(name)
        except ImportError:
            return False
        return True

    return check


def _pil_versions(feature: str) -> Callable[[], dict[str, str]]:
    return lambda: {"Pillow": Image.__version__, feature: str(features.version(feature))}


def _heic_versions() -> dict[str, str]:
    import pillow_heif

    return {"pillow-heif": pillow_heif.__version__, "libheif": pillow_heif.libheif_version()}


def _jxl_versions() -> dict[str, str]:
    import imagecodecs

    return {"imagecodecs": imagecodecs.__version__, "libjxl": imagecodecs.jpegxl_version()}


HEIC_PARAMS = {"preset": "slow", "tune": "psnr", "x265:aq-mode": "0", "x265:psy-rd": "0", "x265:psy-rdoq": "0"}
AVIF_SPEED = 6  # speed 2 is ~10% smaller at equal PSNR and ~15x slower

CODECS: dict[str, ClassicalCodec] = {c.name: c for c in (
    ClassicalCodec("jpeg", "libjpeg-turbo via Pillow, 4:2:0, standard Huffman tables (Pillow defaults)",
                   (5, 10, 20, 30, 50, 70, 85, 95), "Pillow quality 1..95",
                   _pil_encoder("JPEG"), _pil_decode, lambda: features.check("jpg"), _pil_versions("jpg")),
    ClassicalCodec("jpeg444", "libjpeg-turbo via Pillow, 4:4:4, standard Huffman tables",
                   (5, 10, 20, 30, 50, 70, 85, 95), "Pillow quality 1..95",
                   _pil_encoder("JPEG", subsampling=0), _pil_decode, lambda: features.check("jpg"), _pil_versions("jpg")),
    ClassicalCodec("webp", "libwebp via Pillow, lossy, method 6, 4:2:0",
                   (0, 5, 20, 40, 60, 80, 90, 95), "Pillow quality 0..100",
                   _pil_encoder("WEBP", method=6), _pil_decode, lambda: features.check("webp"), _pil_versions("webp")),
    ClassicalCodec("avif", f"libavif + libaom via Pillow, 4:4:4, tune=psnr, speed {AVIF_SPEED}, 8-bit",
                   (5, 10, 20, 30, 40, 50, 60, 75), "Pillow quality 0..100",
                   _pil_encoder("AVIF", speed=AVIF_SPEED, subsampling="4:4:4", codec="aom", advanced=(("tune", "psnr"),)),
                   _pil_decode, lambda: features.check("avif"), _pil_versions("avif")),
    ClassicalCodec("jxl", "libjxl via imagecodecs, VarDCT, effort 7",
                   (20, 11, 6, 4.5, 3.2, 2.2, 1.5, 1.0, 0.7), "Butteraugli distance (lower is better)",
                   _jxl_encode, _jxl_decode, _has_module("imagecodecs"), _jxl_versions),
    ClassicalCodec("heic", "libheif + x265 via pillow-heif, 4:4:4, preset slow, tune=psnr, aq-mode=0, "
                           "psy-rd=0, psy-rdoq=0 (PSNR-tuned HEVC intra, BPG-like)",
                   (5, 10, 15, 20, 25, 30, 40, 50, 60), "pillow-heif quality 0..100",
                   _heic_encode, _heic_decode, _has_module("pillow_heif"), _heic_versions),
    ClassicalCodec("jpeg2000", "OpenJPEG via Pillow, 9/7 irreversible, colour transform, 6 resolutions, "
                               "fixed quality (target PSNR in dB per image)",
                   (25, 27, 29, 31, 33, 35, 37, 39, 41), "target PSNR in dB",
                   _pil_encoder("JPEG2000", irreversible=True, mct=1, num_resolutions=6, no_jp2=True),
                   _pil_decode, lambda: features.check("jpg_2000"), _pil_versions("jpg_2000")),
)}

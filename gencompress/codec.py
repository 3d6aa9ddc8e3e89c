"""Codec: a named model at a quality on a device; image -> .gcz bytes -> image.

This is the one place where images, the network, the entropy coder and the container meet; each
arrow of the path below is a single call with plain data (arrays, bytes, small dataclasses).

    encode: to_planes -> pad -> model.encode (latents, reconstruction) -> entropy.encode
            -> checksums -> container.pack
    decode: container.unpack -> weight check -> entropy.decode (inside model.decode) -> crop
            -> alpha -> checksums

torch and compressai are imported when a model is first loaded, never at `import gencompress`.
Loaded models are cached per (name, device) and shared by all Codec instances and threads.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import container, entropy, images
from .container import ChecksumError, Container, Device, FormatError, Header, StreamKind
from .models import registry

QUALITIES = range(1, 9)


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # torch.nn.Module in eval mode on its device
    tables: dict[str, entropy.Tables]
    sha256: bytes
    device: Any  # torch.device

    @functools.cached_property
    def min_bits(self) -> float:
        """The fewest bits any latent symbol can cost under any of the model's tables."""
        return min(float(t.min_bits.min()) for t in self.tables.values())


_loaded: dict[tuple[str, str], LoadedModel] = {}
_load_lock = threading.Lock()


def load_model(name: str, device: str) -> LoadedModel:
    """The named model with its shipped weights and coding tables, loaded once per device."""
    with _load_lock:
        key = (name, device)
        if key not in _loaded:
            import torch

            from .models.storage import load_weights

            path = registry.spec(name).weights
            if not path.is_file():
                raise FileNotFoundError(f"weights of model {name!r} are missing: {path}")
            data = path.read_bytes()
            net = load_weights(registry.build(name), data)
            dev = torch.device(device)
            net = net.to(dev).eval()
            tables = {k: entropy.Tables(*t) for k, t in net.tables().items()}
            _loaded[key] = LoadedModel(net, tables, hashlib.sha256(data).digest(), dev)
        return _loaded[key]


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Codec:
    """Encode images to .gcz bytes and decode them back; safe to share between threads.

    model: a registered model name ("ae", "vae"); quality: 1 (smallest) to 8 (best), CompressAI's
    λ table; device: "cpu", "cuda" or None for CUDA when available.
    Decoding reads model and quality from the file, so one Codec decodes any .gcz file.
    """

    def __init__(self, model: str = registry.DEFAULT_MODEL, quality: int = 3, device: str | None = None,
                 max_pixels: int = container.DEFAULT_MAX_PIXELS):
        if not registry.spec(model).shipped:  # spec() raises KeyError for unknown names
            raise KeyError(f"model {model!r} has no trained weights in this installation")
        if quality not in QUALITIES:
            raise ValueError(f"quality must be an integer from 1 to 8, got {quality!r}")
        self.model, self.quality, self.max_pixels = model, quality, max_pixels
        self._device = device

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = default_device()
        return self._device

    def get_config(self) -> dict[str, Any]:
        return {"id": "gencompress", "model": self.model, "quality": self.quality}

    def encode(self, image: images.ImageLike) -> bytes:
        """Compress an image (path, PIL image, or uint8 array HxW / HxWxC with C in 1, 3, 4)."""
        import torch

        planes = images.to_planes(image)
        height, width = planes.rgb.shape[:2]
        net = load_model(self.model, self.device)
        padded = images.pad(planes.rgb, net.model.stride)
        x = torch.tensor(padded, device=net.device).permute(2, 0, 1)[None].float() / 255.0
        latents, x_hat = net.model.encode(x, self.quality - 1)
        streams = [(StreamKind.LATENTS, entropy.encode(sym, idx, net.tables[table])) for sym, idx, table in latents]
        if planes.alpha is not None:
            streams.append((StreamKind.ALPHA, images.compress_alpha(planes.alpha)))
        decoded = images.from_planes(_to_uint8(x_hat)[:height, :width], planes.alpha, planes.channels)
        header = Header(
            model=self.model, weights_sha256=net.sha256, quality=self.quality, width=width, height=height,
            channels=planes.channels, device=_device_kind(net.device),
            symbols_crc=_symbols_crc(sym for sym, _, _ in latents), pixels_crc=zlib.crc32(decoded.tobytes()),
        )
        return container.pack(Container(header, tuple(streams)))

    def decode(self, data: bytes, verify: bool = True) -> np.ndarray:
        """Decompress .gcz bytes to a uint8 array: HxW (gray), HxWx3 or HxWx4.

        Raises FormatError for anything that is not a valid file this version can decode, and
        ChecksumError (a FormatError) when the decoded symbols, or the pixels on the encoder's kind
        of device, differ from what the encoder recorded. verify=False skips the pixel check.
        """
        c = container.unpack(data, self.max_pixels)
        h = c.header
        net = self._model_for(h)
        alpha_streams = c.stream(StreamKind.ALPHA)
        if len(alpha_streams) != (h.channels == 4):
            raise FormatError(f"corrupt .gcz file ({len(alpha_streams)} alpha streams for {h.channels} channels)")
        stride = net.model.stride
        latent_hw = (-(-h.height // stride) * stride // 16, -(-h.width // stride) * stride // 16)
        coded = list(c.stream(StreamKind.LATENTS))
        # Streams shorter than the least information their symbols can carry are not genuine: refuse
        # a small file claiming a large image before allocating for it (half: constriction's rounding).
        if 0.5 * net.model.symbol_count(latent_hw) * net.min_bits > 8 * sum(map(len, coded)) + 64:
            raise FormatError("corrupt .gcz file (streams too short for the image size it claims)")
        symbols: list[np.ndarray] = []

        def read(indexes: np.ndarray, table: str) -> np.ndarray:
            if len(symbols) == len(coded):
                raise FormatError("corrupt .gcz file (too few latent streams)")
            try:
                symbols.append(entropy.decode(coded[len(symbols)], indexes, net.tables[table]))
            except entropy.EntropyDecodeError as exc:
                raise FormatError(f"corrupt .gcz file ({exc})") from None
            return symbols[-1]

        x_hat = net.model.decode(latent_hw, h.quality - 1, read, net.device)
        if len(symbols) != len(coded):
            raise FormatError("corrupt .gcz file (too many latent streams)")
        if _symbols_crc(symbols) != h.symbols_crc:
            raise ChecksumError("decoded latents differ from the encoder's (symbols CRC mismatch)")
        alpha = images.decompress_alpha(alpha_streams[0], h.height, h.width) if alpha_streams else None
        pixels = images.from_planes(_to_uint8(x_hat)[:h.height, :h.width], alpha, h.channels)
        if verify and h.device == _device_kind(net.device) and zlib.crc32(pixels.tobytes()) != h.pixels_crc:
            raise ChecksumError("decoded pixels differ from the encoder's (pixel CRC mismatch)")
        return pixels

    def _model_for(self, h: Header) -> LoadedModel:
        if h.model not in registry.shipped_names():
            raise FormatError(f"file needs model {h.model!r}, which this version does not ship")
        if h.quality not in QUALITIES:
            raise FormatError(f"corrupt .gcz header (quality {h.quality})")
        net = load_model(h.model, self.device)
        if net.sha256 != h.weights_sha256:
            raise FormatError(f"file was made with weights {h.weights_sha256.hex()} of model {h.model!r}; "
                              f"this version ships {net.sha256.hex()}")
        return net


def _to_uint8(x_hat) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] -> (H, W, 3) uint8 (round half to even)."""
    import torch

    return (x_hat[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _device_kind(device) -> Device:
    return Device.CUDA if device.type == "cuda" else Device.CPU


def _symbols_crc(arrays) -> int:
    crc = 0
    for sym in arrays:
        crc = zlib.crc32(np.ascontiguousarray(sym, dtype="<i4").tobytes(), crc)
    return crc

"""Codec: a named model at a quality on a device; image -> .gcz bytes -> image.

This is the one place where images, tiles, the network, the entropy coder and the container meet;
each arrow of the path below is a single call with plain data (arrays, bytes, small dataclasses).

    encode: to_planes -> cut into tiles -> per tile: pad -> model.analyze (batched across tiles)
            -> model.code (symbols) -> entropy.encode -> model.synthesize (the decoder's pixels)
            -> checksums -> container.pack
    decode: container.unpack -> weight check -> per tile touching the region: entropy.decode
            (inside model.read_latents) -> model.synthesize -> checksums -> blend tiles -> alpha

Tiles (tiling.py) bound memory: a 50-megapixel photo is coded 1024x1024 pixels at a time, and a
region decodes from the tiles it touches. Images up to the tile size are one tile, coded exactly
as a whole image. torch and compressai are imported when a model is first loaded, never at
`import gencompress`. Loaded models are cached per (name, device) and shared by all Codec
instances and threads.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from . import container, entropy, images, tiling
from .container import ChecksumError, Container, Device, FormatError, Header, TileData
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


class SharpenError(ValueError):
    """Sharpening was asked for a file whose model has no (matching) GAN decoder, or a bad strength."""


_sharpeners: dict[tuple[str, str], Any] = {}


def load_sharpener(name: str, device: str):
    """The GAN decoder of the named model (models/gan.py), loaded once per device.

    Raises SharpenError when this installation has none for the model, or has one trained for
    other weights than the model's shipped ones.
    """
    net = load_model(name, device)
    with _load_lock:
        key = (name, device)
        if key not in _sharpeners:
            import json

            from .models.gan import Sharpener
            from .models.storage import load_weights, weights_metadata

            path = registry.spec(name).gan_weights
            if not path.is_file():
                have = [n for n in registry.shipped_names() if registry.spec(n).gan_weights.is_file()]
                raise SharpenError(f"model {name!r} has no GAN decoder in this installation, so its files "
                                   f"cannot be sharpened (models with one: {', '.join(have) or 'none'})")
            data = path.read_bytes()
            meta = weights_metadata(data)
            if meta.get("base_sha256") != net.sha256.hex():
                raise SharpenError(f"the GAN decoder {path.name} was trained for other weights of model {name!r}")
            config = json.loads(meta.get("config", "{}"))
            gan = load_weights(Sharpener(m=net.model.gains.gain.shape[1], **config), data)
            _sharpeners[key] = gan.to(net.device).eval().requires_grad_(False)
        return _sharpeners[key]


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


DEFAULT_TILE_SIZE = 1024  # pixels; Kodak-size images are one tile, a 50 MP photo about 54
TILE_OVERLAP = 32  # pixels cross-faded between neighbouring tiles (tiling.py)
# Pixels the network sees at once, per device: batching small images keeps a GPU busy; on a CPU it
# gains nothing, so the budget there is one full tile (bounded memory).
BATCH_PIXELS = {"cpu": DEFAULT_TILE_SIZE ** 2, "cuda": 8 * DEFAULT_TILE_SIZE ** 2}

Region = tiling.Region


class Codec:
    """Encode images to .gcz bytes and decode them back; safe to share between threads.

    model: a registered model name ("ae", "vae"); quality: 1 (smallest) to 8 (best), CompressAI's
    λ table; device: "cpu", "cuda" or None for CUDA when available; max_pixels: larger images in
    files are refused before anything is allocated; tile_size: images are coded in tiles of at most
    this many pixels square (a multiple of 64, at least 128), which bounds memory.
    Decoding reads model, quality and tiling from the file, so one Codec decodes any .gcz file.
    """

    def __init__(self, model: str = registry.DEFAULT_MODEL, quality: int = 3, device: str | None = None,
                 max_pixels: int = container.DEFAULT_MAX_PIXELS, tile_size: int = DEFAULT_TILE_SIZE):
        if not registry.spec(model).shipped:  # spec() raises KeyError for unknown names
            raise KeyError(f"model {model!r} has no trained weights in this installation")
        if quality not in QUALITIES:
            raise ValueError(f"quality must be an integer from 1 to 8, got {quality!r}")
        if tile_size < 128 or tile_size % 64:
            raise ValueError(f"tile size must be a multiple of 64 of at least 128, got {tile_size!r}")
        self.model, self.quality, self.max_pixels, self.tile_size = model, quality, max_pixels, tile_size
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
        return self.encode_many([image])[0]

    def encode_many(self, many: Iterable[images.ImageLike]) -> list[bytes]:
        """Compress several images; tiles of equal shape share the analysis transform's batches.

        Each file is what encode() makes of its image, except that a batched convolution may round
        differently from a single one (CUDA), which can change a symbol, never whether or how the
        file decodes: symbols, coding tables and the recorded pixels are computed tile by tile.
        """
        import torch

        net = load_model(self.model, self.device)
        stride, q = net.model.stride, self.quality - 1
        jobs = [_Encoding(images.to_planes(image), self.tile_size) for image in many]
        work = [(job, tile) for job in jobs for tile in job.grid.tiles()]
        for batch in _batches(work, lambda jt: _padded(jt[1], stride), self._batch_pixels):
            x = np.stack([images.pad(job.planes.rgb[t.y0:t.y1, t.x0:t.x1], stride) for job, t in batch])
            # contiguous (NCHW): a channels-last input would run the convolutions with other roundings
            x = (torch.from_numpy(x).to(net.device).permute(0, 3, 1, 2).float() / 255.0).contiguous()
            for (job, tile), y in zip(batch, net.model.analyze(x, q)):
                latents, y_in = net.model.code(y[None], q)
                pixels = _to_uint8(net.model.synthesize(y_in.contiguous()))[:tile.height, :tile.width]
                job.tiles[tile.index] = TileData(
                    tuple(entropy.encode(sym, idx, net.tables[table]) for sym, idx, table in latents),
                    _symbols_crc(sym for sym, _, _ in latents), zlib.crc32(pixels.tobytes()))
        return [container.pack(job.container(self, net)) for job in jobs]

    def decode(self, data: bytes, verify: bool = True, region: Region | None = None,
               sharpen: float | None = None) -> np.ndarray:
        """Decompress .gcz bytes to a uint8 array: HxW (gray), HxWx3 or HxWx4.

        region=(x, y, width, height) decodes only that rectangle, from the tiles it touches.
        sharpen=s in [0, 1] decodes through the model's GAN decoder at realism strength s (0: the
        plain pixels exactly; 1: full detail); SharpenError if the file's model has none.
        Raises FormatError for anything that is not a valid file this version can decode, and
        ChecksumError (a FormatError) when the decoded symbols, or the pixels on the encoder's kind
        of device, differ from what the encoder recorded. verify=False skips the pixel check.
        ValueError: a region outside the image.
        """
        if sharpen is not None and not 0 <= sharpen <= 1:
            raise SharpenError(f"sharpen strength must be from 0 to 1, got {sharpen!r}")
        c, net = self._open(data)
        h = c.header
        gan = None if sharpen is None else load_sharpener(h.model, self.device)
        if region is not None:
            region = h.grid.check_region(region)
        if h.image_crc is not None:  # version 1: one tile, its pixel CRC is of the whole plain image
            plain = self._finish(c, h.grid.assemble(lambda t: self._decode_tile(c, net, t, verify)), None)
            if verify and h.device == _device_kind(net.device) and zlib.crc32(plain.tobytes()) != h.image_crc:
                raise ChecksumError("decoded pixels differ from the encoder's (pixel CRC mismatch)")
            full = plain if gan is None else self._finish(
                c, h.grid.assemble(lambda t: self._decode_tile(c, net, t, False, gan, sharpen)), None)
            x, y, w, hh = region or (0, 0, h.width, h.height)
            return full[y:y + hh, x:x + w]
        tiles = h.grid.assemble(lambda t: self._decode_tile(c, net, t, verify, gan, sharpen), region)
        return self._finish(c, tiles, region)

    def decode_many(self, blobs: Sequence[bytes], verify: bool = True) -> list[np.ndarray]:
        """Decompress several files; tiles of equal shape share the synthesis transform's batches.

        Returns what decode() returns for each file: a tile whose batched synthesis misses its
        pixel checksum is synthesized again alone. Holds every decoded tile until the end: for a
        huge image, decode() holds only a row of tiles.
        """
        import torch

        opened = [self._open(data) for data in blobs]
        if any(c.header.image_crc is not None for c, _ in opened):  # version 1: the whole-image path
            return [self.decode(data, verify) for data in blobs]
        work = [(i, tile) for i, (c, _) in enumerate(opened) for tile in c.header.grid.tiles()]
        done: dict[tuple[int, int], np.ndarray] = {}
        for batch in _batches(work, lambda it: (opened[it[0]][1].sha256, *_padded(it[1], opened[it[0]][1].model.stride)),
                              self._batch_pixels):
            net = opened[batch[0][0]][1]
            inputs = [self._read_tile(opened[i][0], net, tile) for i, tile in batch]
            x_hat = net.model.synthesize(torch.cat(inputs))
            for k, (i, tile) in enumerate(batch):
                pixels = _to_uint8(x_hat[k:k + 1])[:tile.height, :tile.width]
                if len(batch) > 1 and not self._pixels_ok(opened[i][0], net, tile, pixels, verify):
                    pixels = _to_uint8(net.model.synthesize(inputs[k]))[:tile.height, :tile.width]
                self._check_pixels(opened[i][0], net, tile, pixels, verify)
                done[i, tile.index] = pixels
        return [self._finish(c, c.header.grid.assemble(lambda t, i=i: done.pop((i, t.index))), None)
                for i, (c, net) in enumerate(opened)]

    @property
    def _batch_pixels(self) -> int:
        return BATCH_PIXELS.get(self.device.split(":")[0], BATCH_PIXELS["cpu"])

    def _open(self, data: bytes) -> tuple[Container, LoadedModel]:
        """Parse and check a file against the model it names, before anything is decoded."""
        c = container.unpack(data, self.max_pixels)
        h = c.header
        if h.model not in registry.shipped_names():
            raise FormatError(f"file needs model {h.model!r}, which this version does not ship")
        if h.quality not in QUALITIES:
            raise FormatError(f"corrupt .gcz header (quality {h.quality})")
        net = load_model(h.model, self.device)
        if net.sha256 != h.weights_sha256:
            raise FormatError(f"file was made with weights {h.weights_sha256.hex()} of model {h.model!r}; "
                              f"this version ships {net.sha256.hex()}")
        # Streams shorter than the least information their symbols can carry are not genuine: refuse
        # a small file claiming a large image before allocating for it (half: constriction's rounding).
        symbols = sum(net.model.symbol_count(_latent_hw(t, net.model.stride)) for t in h.grid.tiles())
        if 0.5 * symbols * net.min_bits > 8 * sum(len(s) for t in c.tiles for s in t.streams) + 64 * len(c.tiles):
            raise FormatError("corrupt .gcz file (streams too short for the image size it claims)")
        return c, net

    def _read_tile(self, c: Container, net: LoadedModel, tile: tiling.Tile):
        """Entropy-decode one tile's symbols (checked against their CRC) into its synthesis input."""
        coded, symbols = c.tiles[tile.index].streams, []

        def read(indexes: np.ndarray, table: str) -> np.ndarray:
            if len(symbols) == len(coded):
                raise FormatError("corrupt .gcz file (too few latent streams)")
            try:
                symbols.append(entropy.decode(coded[len(symbols)], indexes, net.tables[table]))
            except entropy.EntropyDecodeError as exc:
                raise FormatError(f"corrupt .gcz file ({exc})") from None
            return symbols[-1]

        y = net.model.read_latents(_latent_hw(tile, net.model.stride), c.header.quality - 1, read, net.device)
        if len(symbols) != len(coded):
            raise FormatError("corrupt .gcz file (too many latent streams)")
        if _symbols_crc(symbols) != c.tiles[tile.index].symbols_crc:
            raise ChecksumError("decoded latents differ from the encoder's (symbols CRC mismatch)")
        return y

    def _decode_tile(self, c: Container, net: LoadedModel, tile: tiling.Tile, verify: bool,
                     gan: Any = None, strength: float | None = None) -> np.ndarray:
        """One tile's pixels: the plain synthesis, checked against its CRC; sharpened by gan if given."""
        import torch

        y = self._read_tile(c, net, tile)
        x_hat = net.model.synthesize(y)
        pixels = _to_uint8(x_hat)[:tile.height, :tile.width]
        self._check_pixels(c, net, tile, pixels, verify)
        if gan is None:
            return pixels
        with torch.no_grad():
            sharp = gan(y, x_hat, torch.full((1,), float(strength), device=y.device))
        return _to_uint8(sharp)[:tile.height, :tile.width]

    @staticmethod
    def _pixels_ok(c: Container, net: LoadedModel, tile: tiling.Tile, pixels: np.ndarray, verify: bool) -> bool:
        expected = c.tiles[tile.index].pixels_crc
        if not verify or expected is None or c.header.device != _device_kind(net.device):
            return True  # not checkable: another kind of device computes other roundings
        return zlib.crc32(pixels.tobytes()) == expected

    def _check_pixels(self, c: Container, net: LoadedModel, tile: tiling.Tile, pixels: np.ndarray,
                      verify: bool) -> None:
        if not self._pixels_ok(c, net, tile, pixels, verify):
            raise ChecksumError(f"decoded pixels of tile {tile.index} differ from the encoder's (pixel CRC mismatch)")

    @staticmethod
    def _finish(c: Container, rgb: np.ndarray, region: Region | None) -> np.ndarray:
        """The decoded RGB with the file's alpha plane (cut to the region) in the file's layout."""
        h = c.header
        alpha = None
        if c.alpha is not None:
            alpha = images.decompress_alpha(c.alpha, h.height, h.width)
            if region is not None:
                x, y, w, hh = region
                alpha = alpha[y:y + hh, x:x + w]
        return images.from_planes(rgb, alpha, h.channels)


class _Encoding:
    """One image on its way through encode_many: its planes, tiles, and the tiles coded so far."""

    def __init__(self, planes: images.Planes, tile_size: int):
        self.planes = planes
        height, width = planes.rgb.shape[:2]
        self.grid = tiling.Grid(width, height, tile_size, TILE_OVERLAP)
        self.tiles: dict[int, TileData] = {}

    def container(self, codec: Codec, net: LoadedModel) -> Container:
        header = Header(
            model=codec.model, weights_sha256=net.sha256, quality=codec.quality, width=self.grid.width,
            height=self.grid.height, channels=self.planes.channels, device=_device_kind(net.device),
            tile_size=self.grid.size, overlap=self.grid.overlap,
        )
        alpha = images.compress_alpha(self.planes.alpha) if self.planes.alpha is not None else None
        return Container(header, tuple(self.tiles[i] for i in range(len(self.tiles))), alpha)


T = TypeVar("T")


def _batches(items: list[T], shape: Callable[[T], tuple], budget: int) -> Iterator[list[T]]:
    """Items grouped by shape (the last two entries: height, width) in batches of at most budget
    pixels, one item at least; groups in order of first appearance."""
    groups: dict[tuple, list[T]] = {}
    for item in items:
        groups.setdefault(shape(item), []).append(item)
    for key, group in groups.items():
        per = max(1, budget // (key[-2] * key[-1]))
        for i in range(0, len(group), per):
            yield group[i:i + per]


def _padded(tile: tiling.Tile, stride: int) -> tuple[int, int]:
    return -(-tile.height // stride) * stride, -(-tile.width // stride) * stride


def _latent_hw(tile: tiling.Tile, stride: int) -> tuple[int, int]:
    h, w = _padded(tile, stride)
    return h // 16, w // 16


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

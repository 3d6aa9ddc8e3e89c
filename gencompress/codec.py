"""Codec: a named model at a quality on a device; image -> .gcz bytes -> image.

This is the one place where images, tiles, a model family, the entropy streams and the container
meet; each arrow of the path below is a single call with plain data (arrays, bytes, dataclasses).

    encode: to_planes -> cut into tiles -> family.encode_tiles (per tile: streams, symbols CRC,
            pixels CRC) -> container.pack
    decode: container.unpack -> model and weights check -> family.check_streams -> per tile
            touching the region: family.decode_tile (streams -> checked pixels) -> blend tiles
            -> alpha

A family (family.py) is what turns tile pixels into streams and back: the amortized models
(models/amortized.py) run trained transforms, the overfitted codec (overfit/) optimizes a decoder
per tile. Tiles (tiling.py) bound memory: a 50-megapixel photo is coded 1024x1024 pixels at a
time, and a region decodes from the tiles it touches. Images up to the tile size are one tile,
coded exactly as a whole image. torch and compressai are imported when a model is first loaded,
never at `import gencompress`. Loaded models are cached per (name, device) and shared by all Codec
instances and threads.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from . import container, images, tiling
from .container import Container, Device, FormatError, Header, TileData
from .family import SharpenError, TileCoder
from .models import registry

QUALITIES = range(1, 9)

_loaded: dict[tuple[str, str], TileCoder] = {}
_load_lock = threading.Lock()


def load_model(name: str, device: str) -> TileCoder:
    """The named model with its shipped file (weights and coding tables), loaded once per device."""
    with _load_lock:
        key = (name, device)
        if key not in _loaded:
            spec = registry.spec(name)
            if not spec.weights.is_file():
                raise FileNotFoundError(f"weights of model {name!r} are missing: {spec.weights}")
            module, cls = spec.coder.split(":")
            coder = getattr(importlib.import_module(f"gencompress.{module}"), cls)
            _loaded[key] = coder(name, spec.weights.read_bytes(), device)
        return _loaded[key]


@functools.lru_cache(maxsize=None)
def weights_sha256(name: str) -> bytes:
    """SHA-256 of a model's shipped file, as files name it (without loading the model)."""
    return hashlib.sha256(registry.spec(name).weights.read_bytes()).digest()


def load_sharpener(name: str, device: str):
    """The GAN decoder of the named model (SharpenError when there is none)."""
    coder = load_model(name, device)
    if not hasattr(coder, "sharpener"):
        raise SharpenError(f"model {name!r} has no GAN decoder, so its files cannot be sharpened")
    return coder.sharpener()


def _is_int(value: Any) -> bool:
    """An integer (numpy's too), not a bool or a float that happens to be whole."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_device(device: Any) -> str | None:
    """A device name ("cpu", "cuda", "cuda:N") or None, checked now rather than at first use:
    ValueError for other names and for CUDA where this machine has none (this imports torch)."""
    if device is None:
        return None
    name = str(device)
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: no CUDA GPU is available on this machine")
        if index and int(index) >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return name


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


DEFAULT_TILE_SIZE = 1024  # pixels; Kodak-size images are one tile, a 50 MP photo about 54
MIN_TILE_SIZE = 128  # the encoder's least tile size (container.MAX_TILE_SIZE is the largest)
TILE_OVERLAP = 32  # pixels cross-faded between neighbouring tiles (tiling.py)

Region = tiling.Region


class Codec:
    """Encode images to .gcz bytes and decode them back; safe to share between threads.

    model: a registered model name ("overfit", "vae", "ae"); quality: 1 (smallest) to 8 (best);
    effort: for models that optimize while encoding (overfit), a preset name ("fast", "default",
    "high"), None for the default; device: "cpu", "cuda" or None for CUDA when available;
    time_budget: seconds to encode each image in (overfit: the fit stops in time to code within
    it; its bytes then depend on the machine's speed); max_pixels: larger images in files are
    refused before anything is allocated; tile_size: images are coded in tiles of at most this
    many pixels square (a multiple of 64 from 128 to 2048), which bounds memory; progress: a progress
    bar on stderr while encoding (overfit).
    Decoding reads model, quality and tiling from the file, so one Codec decodes any .gcz file.
    """

    def __init__(self, model: str = registry.DEFAULT_MODEL, quality: int = 3, device: str | None = None,
                 max_pixels: int = container.DEFAULT_MAX_PIXELS, tile_size: int = DEFAULT_TILE_SIZE,
                 effort: str | None = None, progress: bool = False, time_budget: float | None = None):
        spec = registry.spec(model)  # KeyError for unknown names
        if not spec.shipped:
            raise KeyError(f"model {model!r} has no trained weights in this installation")
        if not _is_int(quality) or quality not in QUALITIES:
            raise ValueError(f"quality must be an integer from 1 to 8, got {quality!r}")
        if not _is_int(tile_size) or not MIN_TILE_SIZE <= tile_size <= container.MAX_TILE_SIZE or tile_size % 64:
            raise ValueError(f"tile size must be a multiple of 64 from {MIN_TILE_SIZE} to {container.MAX_TILE_SIZE}, "
                             f"got {tile_size!r}")
        if not _is_int(max_pixels) or max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
        quality, tile_size, max_pixels = int(quality), int(tile_size), int(max_pixels)
        device = check_device(device)
        if effort is not None and effort not in spec.efforts:
            raise ValueError(f"model {model!r} has no effort {effort!r}"
                             + (f" (efforts: {', '.join(spec.efforts)})" if spec.efforts else " (it has no effort setting)"))
        if time_budget is not None:
            if not spec.efforts:
                raise ValueError(f"model {model!r} does not optimize while encoding: a time budget means nothing to it")
            if isinstance(time_budget, bool) or not isinstance(time_budget, (int, float)) or not time_budget > 0:
                raise ValueError(f"time budget must be a positive number of seconds, got {time_budget!r}")
        self.model, self.quality, self.max_pixels, self.tile_size = model, quality, max_pixels, tile_size
        self.effort, self.progress, self.time_budget = effort, progress, time_budget
        self._device = device

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = default_device()
        return self._device

    def get_config(self) -> dict[str, Any]:
        config = {"id": "gencompress", "model": self.model, "quality": self.quality}
        return config | ({"effort": self.effort} if self.effort else {})

    def encode(self, image: images.ImageLike) -> bytes:
        """Compress an image (path, PIL image, or uint8 array HxW / HxWxC with C in 1, 3, 4)."""
        return self.encode_many([image])[0]

    def encode_many(self, many: Iterable[images.ImageLike]) -> list[bytes]:
        """Compress several images; the model's family may batch their tiles (amortized models
        share the analysis transform's batches across tiles of equal shape)."""
        coder = load_model(self.model, self.device)
        jobs = [self.split(image) for image in many]
        coded: dict[int, list[TileData]] = {}
        # One call for all tiles (a family may batch them), or, under a time budget, one per image.
        for group in ([jobs] if self.time_budget is None else [[job] for job in jobs]):
            out = iter(self.code_tiles([piece for job in group for piece in job.pieces()]))
            for job in group:
                coded[id(job)] = [next(out) for _ in range(job.grid.count)]
        return [self.join(job, coded[id(job)], coder.device) for job in jobs]

    def split(self, image: images.ImageLike) -> ImageTiles:
        """An image cut into the tiles its file will hold. Tiles are independent: they may be coded
        here (code_tiles) or elsewhere, on other processes or machines, then join()ed."""
        return ImageTiles(images.to_planes(image), self.tile_size)

    def code_tiles(self, pieces: Sequence[np.ndarray]) -> list[TileData]:
        """Code tiles' pixels (ImageTiles.pieces()) with this Codec's model and settings."""
        return load_model(self.model, self.device).encode_tiles(pieces, self.quality, self.effort, self.progress,
                                                                self.time_budget)

    def join(self, tiles: ImageTiles, coded: Sequence[TileData], device: Any) -> bytes:
        """The .gcz file of an image from its coded tiles, in order; device: the torch device
        they were coded on (the file records its kind)."""
        if len(coded) != tiles.grid.count:
            raise ValueError(f"{len(coded)} coded tiles for an image of {tiles.grid.count}")
        return container.pack(tiles.container(self, weights_sha256(self.model), coded, device))

    def decode(self, data: bytes, verify: bool = True, region: Region | None = None,
               sharpen: float | None = None) -> np.ndarray:
        """Decompress .gcz bytes to a uint8 array: HxW (gray), HxWx3 or HxWx4.

        region=(x, y, width, height) decodes only that rectangle, from the tiles it touches.
        sharpen=s in [0, 1] decodes through the model's GAN decoder at realism strength s (0: the
        plain pixels exactly; 1: full detail); SharpenError if the file's model has none.
        Raises FormatError for anything that is not a valid file this version can decode, and
        ChecksumError (a FormatError) when the decoded symbols or pixels differ from what the
        encoder recorded (pixels: in files of format version 3 on, which decode exactly: docs/FORMAT.md).
        verify=False skips the pixel check. ValueError: a region outside the image. Running out of
        memory is a FormatError too: what a file makes the decoder allocate is the file's doing.
        """
        with _out_of_memory_is_a_format_error():
            return self._decode(data, verify, region, sharpen)

    def _decode(self, data: bytes, verify: bool, region: Region | None, sharpen: float | None) -> np.ndarray:
        if sharpen is not None and not 0 <= sharpen <= 1:
            raise SharpenError(f"sharpen strength must be from 0 to 1, got {sharpen!r}")
        c, coder = self._open(data)
        h = c.header
        if region is not None:
            region = h.grid.check_region(region)
        tiles = h.grid.assemble(lambda t: coder.decode_tile(h, t, c.tiles[t.index], verify, sharpen), region)
        return self._finish(c, tiles, region)

    def decode_many(self, blobs: Sequence[bytes], verify: bool = True) -> list[np.ndarray]:
        """Decompress several files; returns what decode() returns for each. The model's family
        may batch their tiles. Holds every decoded tile until the end: for a huge image, decode()
        holds only one tile."""
        with _out_of_memory_is_a_format_error():
            return self._decode_many(blobs, verify)

    def _decode_many(self, blobs: Sequence[bytes], verify: bool) -> list[np.ndarray]:
        opened = [self._open(data) for data in blobs]
        done: dict[tuple[int, int], np.ndarray] = {}
        by_coder: dict[int, list[tuple[int, tiling.Tile]]] = {}
        for i, (c, coder) in enumerate(opened):
            by_coder.setdefault(id(coder), []).extend((i, t) for t in c.header.grid.tiles())
        for work in by_coder.values():
            coder = opened[work[0][0]][1]
            items = [(opened[i][0].header, t, opened[i][0].tiles[t.index]) for i, t in work]
            for (i, t), pixels in zip(work, coder.decode_tiles(items, verify)):
                done[i, t.index] = pixels
        return [self._finish(c, c.header.grid.assemble(lambda t, i=i: done.pop((i, t.index))), None)
                for i, (c, _) in enumerate(opened)]

    def _open(self, data: bytes) -> tuple[Container, TileCoder]:
        """Parse and check a file against the model it names, before anything is decoded."""
        c = container.unpack(_file_bytes(data), self.max_pixels)
        h = c.header
        if h.model not in registry.shipped_names():
            raise FormatError(f"file needs model {h.model!r}, which this version does not ship")
        if h.quality not in QUALITIES:
            raise FormatError(f"corrupt .gcz header (quality {h.quality})")
        coder = load_model(h.model, self.device)
        if coder.sha256 != h.weights_sha256:
            raise FormatError(f"file was made with weights {h.weights_sha256.hex()} of model {h.model!r}; "
                              f"this version ships {coder.sha256.hex()}")
        coder.check_streams(h, c.tiles)
        return c, coder

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


def _file_bytes(data: Any) -> bytes:
    """The bytes of a .gcz file from any bytes-like object; TypeError, saying what to pass, otherwise."""
    try:
        return bytes(memoryview(data))
    except TypeError:
        hint = " (a path? pass the file's bytes: Path(p).read_bytes())" if isinstance(data, (str, os.PathLike)) else ""
        raise TypeError(f"decode needs the bytes of a .gcz file, got {type(data).__name__}{hint}") from None


@contextlib.contextmanager
def _out_of_memory_is_a_format_error():
    """MemoryError, and torch's allocation failures, as FormatError: the file asked for more than
    this process can have."""
    try:
        yield
    except MemoryError:
        raise FormatError("not enough memory to decode this file") from None
    except RuntimeError as exc:
        if "can't allocate memory" in str(exc) or "out of memory" in str(exc).lower():
            raise FormatError("not enough memory to decode this file") from None
        raise


class ImageTiles:
    """One image on its way to a file: its planes and the grid of tiles it is coded in."""

    def __init__(self, planes: images.Planes, tile_size: int):
        self.planes = planes
        height, width = planes.rgb.shape[:2]
        self.grid = tiling.Grid(width, height, tile_size, TILE_OVERLAP)

    def pieces(self) -> list[np.ndarray]:
        """Each tile's RGB pixels (uint8 h x w x 3), in the file's order."""
        return [self.planes.rgb[t.y0:t.y1, t.x0:t.x1] for t in self.grid.tiles()]

    def container(self, codec: Codec, weights_sha256: bytes, coded: Sequence[TileData], device: Any) -> Container:
        header = Header(
            model=codec.model, weights_sha256=weights_sha256, quality=codec.quality, width=self.grid.width,
            height=self.grid.height, channels=self.planes.channels, device=Device.of(device),
            tile_size=self.grid.size, overlap=self.grid.overlap,
        )
        alpha = images.compress_alpha(self.planes.alpha) if self.planes.alpha is not None else None
        return Container(header, tuple(coded), alpha)

"""The amortized family (`ae`, `vae`, `vae-ctx`): trained transforms, coded tile by tile for the Codec.

A model here codes in four steps (models/base.py): `analyze` (the analysis transform, batched
across tiles of equal padded shape), `code` (one tile's symbols, table indexes and table names,
and the synthesis input the decoder will rebuild), `read_latents` (that input from the decoded
symbols) and `synthesize` (batched). Everything that decides symbols, tables or recorded checksums
runs per tile; only the two transforms are batched, which a GPU likes and a CPU does not mind.

Decoding networks run in exact fixed point (models/exact.py) for files of format version 3, so
their pixels are the same on every machine and always checked against the encoder's CRC. Files of
versions 1 and 2 were reconstructed in float32, whose roundings depend on the machine (thread
count, oneDNN, instruction set, device): they decode as before and their pixel CRC is not checked
(their symbols CRC is).
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from .. import entropy, images
from ..container import ChecksumError, FormatError, Header, TileData
from ..family import SharpenError, symbols_crc
from ..tiling import Tile
from . import registry

# Pixels the network sees at once, per device: batching small images keeps a GPU busy; on a CPU it
# gains nothing, so the budget there is one full 1024x1024 tile (bounded memory).
BATCH_PIXELS = {"cpu": 1024 ** 2, "cuda": 8 * 1024 ** 2}


class AmortizedCoder:
    """A trained model with its shipped weights and coding tables, on one device."""

    def __init__(self, name: str, data: bytes, device: str):
        from .storage import load_weights

        self.name = name
        self.device = torch.device(device)
        self.model = load_weights(registry.build(name), data).to(self.device).eval()
        self.tables = {k: entropy.Tables(*t) for k, t in self.model.tables().items()}
        self.sha256 = hashlib.sha256(data).digest()
        self._sharpener: Any = None
        self._lock = threading.Lock()

    @functools.cached_property
    def min_bits(self) -> float:
        """The fewest bits any latent symbol can cost under any of the model's tables."""
        return min(float(t.min_bits.min()) for t in self.tables.values())

    def sharpener(self):
        """The GAN decoder (models/gan.py) of this model's weights, loaded once.

        Raises SharpenError when this installation has none for the model, or has one trained for
        other weights than the model's shipped ones.
        """
        with self._lock:
            if self._sharpener is None:
                from .gan import Sharpener
                from .storage import load_weights, weights_metadata

                path = registry.spec(self.name).gan_weights
                if not path.is_file():
                    have = [n for n in registry.shipped_names() if registry.spec(n).gan_weights.is_file()]
                    raise SharpenError(f"model {self.name!r} has no GAN decoder in this installation, so its "
                                       f"files cannot be sharpened (models with one: {', '.join(have) or 'none'})")
                data = path.read_bytes()
                meta = weights_metadata(data)
                if meta.get("base_sha256") != self.sha256.hex():
                    raise SharpenError(f"the GAN decoder {path.name} was trained for other weights of model {self.name!r}")
                config = json.loads(meta.get("config", "{}"))
                gan = load_weights(Sharpener(m=self.model.gains.gain.shape[1], **config), data)
                self._sharpener = gan.to(self.device).eval().requires_grad_(False)
            return self._sharpener

    def encode_tiles(self, tiles: Sequence[np.ndarray], quality: int, effort: str | None = None,
                     progress: bool = False, time_budget: float | None = None) -> list[TileData]:
        """Tiles of equal padded shape share the analysis transform's batches. A batched
        convolution may round differently from a single one (CUDA), which can change a symbol,
        never whether or how the file decodes: symbols, tables and pixels are computed per tile."""
        stride, q = self.model.stride, quality - 1
        out: dict[int, TileData] = {}
        for batch in _batches(list(enumerate(tiles)), lambda it: _padded(it[1].shape[:2], stride), self._batch_pixels):
            x = np.stack([images.pad(rgb, stride) for _, rgb in batch])
            # contiguous (NCHW): a channels-last input would run the convolutions with other roundings
            x = (torch.from_numpy(x).to(self.device).permute(0, 3, 1, 2).float() / 255.0).contiguous()
            for (i, rgb), y in zip(batch, self.model.analyze(x, q)):
                latents, y_in = self.model.code(y[None], q)
                pixels = self.model.synthesize_exact(y_in)[0, :rgb.shape[0], :rgb.shape[1]]
                out[i] = TileData(tuple(entropy.encode(sym, idx, self.tables[table]) for sym, idx, table in latents),
                                  symbols_crc(sym for sym, _, _ in latents), zlib.crc32(pixels.tobytes()))
        return [out[i] for i in range(len(tiles))]

    def check_streams(self, header: Header, tiles: Sequence[TileData]) -> None:
        """Streams shorter than the least information their symbols can carry are not genuine:
        refuse a small file claiming a large image (half: constriction's rounding)."""
        stride = self.model.stride
        symbols = sum(n * self.model.symbol_count(_latent_hw(shape, stride)) for shape, n in header.grid.shapes().items())
        if 0.5 * symbols * self.min_bits > 8 * sum(len(s) for t in tiles for s in t.streams) + 64 * len(tiles):
            raise FormatError("corrupt .gcz file (streams too short for the image size it claims)")

    def decode_tile(self, header: Header, tile: Tile, data: TileData, verify: bool,
                    sharpen: float | None = None) -> np.ndarray:
        """One tile's plain pixels, checked against their CRC; sharpened by the GAN decoder if asked."""
        gan = None if sharpen is None else self.sharpener()
        y = self._read_tile(header, tile, data)
        full = self._synthesize(header, y)  # (1, padded height, padded width, 3)
        pixels = full[0, :tile.height, :tile.width]
        self._check_pixels(header, tile, data, pixels, verify)
        if gan is None:
            return pixels
        # the GAN's residual on the plain pixels themselves: strength 0 gives them back exactly
        plain = torch.from_numpy(full).permute(0, 3, 1, 2).to(y.device, torch.float32) / 255
        with torch.no_grad():
            sharp = gan(y, plain, torch.full((1,), float(sharpen), device=y.device))
        return _to_uint8(sharp)[0, :tile.height, :tile.width]

    def decode_tiles(self, items: Sequence[tuple[Header, Tile, TileData]], verify: bool) -> list[np.ndarray]:
        """Tiles of equal shape share the synthesis transform's batches (exact: a batch gives each
        tile what it gives alone; in float, versions 1 and 2, it may round otherwise: unchecked)."""
        done: dict[int, np.ndarray] = {}
        stride = self.model.stride
        for batch in _batches(list(enumerate(items)), lambda it: (it[1][0].version >= 3,
                              *_padded((it[1][1].height, it[1][1].width), stride)), self._batch_pixels):
            inputs = [self._read_tile(*item) for _, item in batch]
            pixels = self._synthesize(batch[0][1][0], torch.cat(inputs))
            for k, (i, (header, tile, data)) in enumerate(batch):
                done[i] = pixels[k, :tile.height, :tile.width]
                self._check_pixels(header, tile, data, done[i], verify)
        return [done[i] for i in range(len(items))]

    def _synthesize(self, header: Header, y: torch.Tensor) -> np.ndarray:
        """Pixels (B, H, W, 3) uint8 of synthesis inputs: exact from format version 3 on, else float32."""
        if header.version >= 3:
            return self.model.synthesize_exact(y)
        return _to_uint8(self.model.synthesize(y))

    @property
    def _batch_pixels(self) -> int:
        return BATCH_PIXELS.get(self.device.type, BATCH_PIXELS["cpu"])

    def _read_tile(self, header: Header, tile: Tile, data: TileData) -> torch.Tensor:
        """Entropy-decode one tile's symbols (checked against their CRC) into its synthesis input."""
        coded, symbols = data.streams, []

        def read(indexes: np.ndarray, table: str) -> np.ndarray:
            if len(symbols) == len(coded):
                raise FormatError("corrupt .gcz file (too few latent streams)")
            try:
                symbols.append(entropy.decode(coded[len(symbols)], indexes, self.tables[table]))
            except entropy.EntropyDecodeError as exc:
                raise FormatError(f"corrupt .gcz file ({exc})") from None
            return symbols[-1]

        y = self.model.read_latents(_latent_hw((tile.height, tile.width), self.model.stride), header.quality - 1, read,
                                    self.device, exact=header.version >= 3)
        if len(symbols) != len(coded):
            raise FormatError("corrupt .gcz file (too many latent streams)")
        if symbols_crc(symbols) != data.symbols_crc:
            raise ChecksumError("decoded latents differ from the encoder's (symbols CRC mismatch)")
        return y

    @staticmethod
    def _check_pixels(header: Header, tile: Tile, data: TileData, pixels: np.ndarray, verify: bool) -> None:
        """Exact pixels (version 3 on) must match the encoder's CRC; float ones are not checked."""
        if verify and header.version >= 3 and zlib.crc32(np.ascontiguousarray(pixels).tobytes()) != data.pixels_crc:
            raise ChecksumError(f"decoded pixels of tile {tile.index} differ from the encoder's (pixel CRC mismatch)")


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


def _padded(hw: tuple[int, int], stride: int) -> tuple[int, int]:
    return -(-hw[0] // stride) * stride, -(-hw[1] // stride) * stride


def _latent_hw(shape: tuple[int, int], stride: int) -> tuple[int, int]:
    """The latent grid of a tile of shape (height, width), padded to the model's stride."""
    h, w = _padded(shape, stride)
    return h // 16, w // 16


def _to_uint8(x_hat: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) uint8 (round half to even)."""
    return (x_hat.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

"""zarr v3 codec `gencompress`: the array-to-bytes step of a zarr v3 codec pipeline.

    zarr.create_array(store, shape=(n, h, w, 3), chunks=(1, h, w, 3), dtype="uint8",
                      serializer=GenCompressCodec(model="vae", quality=3))

Registered with zarr under the name "gencompress" (entry point `zarr.codecs`), so arrays written
with it open again by name. A thin wrapper of gencompress.numcodecs.GenCompress, which does the work.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration
from zarr.registry import register_codec

from .models.registry import DEFAULT_MODEL
from .numcodecs import GenCompress


@dataclass(frozen=True)
class GenCompressCodec(ArrayBytesCodec):
    """Each chunk becomes one .gcz file; configuration: model, quality (1..8), effort (overfit)."""

    is_fixed_size = False
    model: str = DEFAULT_MODEL
    quality: int = 3
    effort: str | None = None
    _codec: GenCompress = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_codec", GenCompress(self.model, self.quality, self.effort))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenCompressCodec:
        _, config = parse_named_configuration(data, "gencompress", require_configuration=False)
        return cls(**(config or {}))

    def to_dict(self) -> dict[str, Any]:
        config = {"model": self.model, "quality": self.quality} | ({"effort": self.effort} if self.effort else {})
        return {"name": "gencompress", "configuration": config}

    def validate(self, *, shape: Any, dtype: Any, chunk_grid: Any) -> None:
        if str(dtype.to_native_dtype()) != "uint8":
            raise ValueError(f"gencompress codes uint8 images, not {dtype}")

    async def _encode_single(self, chunk_array: Any, chunk_spec: Any) -> Any:
        data = await asyncio.to_thread(self._codec.encode, chunk_array.as_numpy_array())
        return chunk_spec.prototype.buffer.from_bytes(data)

    async def _decode_single(self, chunk_bytes: Any, chunk_spec: Any) -> Any:
        image = await asyncio.to_thread(self._codec.decode, chunk_bytes.to_bytes())
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(image.reshape(chunk_spec.shape))

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: Any) -> int:
        raise NotImplementedError("the size of a .gcz chunk is known only after coding")


register_codec("gencompress", GenCompressCodec)

"""gencompress inside the tools storage systems use: numcodecs, zarr v2 and v3, Pillow."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import gencompress
from gencompress import metrics

numcodecs = pytest.importorskip("numcodecs")
zarr = pytest.importorskip("zarr")


def stack(rgb: np.ndarray) -> np.ndarray:
    """Two 64x80 RGB images."""
    return np.stack([rgb[:64, :80], rgb[16:80, 16:96]])


def test_numcodecs_finds_the_codec_by_id(rgb):
    codec = numcodecs.get_codec({"id": "gencompress", "model": "ae", "quality": 2})
    assert codec.get_config() == {"id": "gencompress", "model": "ae", "quality": 2}
    data = codec.encode(rgb)
    assert data == gencompress.encode(rgb, model="ae", quality=2)
    out = np.zeros_like(rgb)
    assert codec.decode(data, out=out) is out and np.array_equal(out, gencompress.decode(data))


def test_numcodecs_rejects_what_is_not_an_image(rgb):
    codec = numcodecs.get_codec({"id": "gencompress"})
    for bad in (rgb.astype(np.float32), np.zeros((2, 8, 8, 3), np.uint8), np.zeros((8, 8, 5), np.uint8)):
        with pytest.raises(ValueError, match="gencompress codes"):
            codec.encode(bad)


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_array_round_trip(tmp_path, rgb, fmt):
    images = stack(rgb)
    if fmt == 2:
        codec = numcodecs.get_codec({"id": "gencompress", "model": "vae", "quality": 4})
        kwargs = {"compressors": codec, "zarr_format": 2}
    else:
        from gencompress.zarr import GenCompressCodec

        kwargs = {"serializer": GenCompressCodec(model="vae", quality=4), "compressors": None}
    path = tmp_path / f"v{fmt}.zarr"
    arr = zarr.create_array(str(path), shape=images.shape, chunks=(1, *images.shape[1:]), dtype="uint8", **kwargs)
    arr[:] = images
    back = zarr.open_array(str(path), mode="r")[:]  # a fresh open finds the codec by its name
    assert back.shape == images.shape
    for original, decoded in zip(images, back):
        assert np.array_equal(decoded, gencompress.decode(gencompress.encode(original, model="vae", quality=4)))
        assert metrics.psnr(original, decoded) > 20


def test_pillow_plugin_open_and_save(tmp_path, rgb):
    from gencompress.pillow import register

    register()
    for mode, image in (("RGB", rgb), ("L", rgb[..., 1]), ("RGBA", np.dstack([rgb, rgb[..., :1]]))):
        path = tmp_path / f"{mode}.gcz"
        Image.fromarray(image).save(path, quality=5, model="ae")
        with Image.open(path) as im:
            assert (im.format, im.mode, im.size) == ("GCZ", mode, (96, 80))
            assert im.info == {"model": "ae", "quality": 5}
            assert np.array_equal(np.asarray(im), gencompress.decode(path.read_bytes()))


def test_pillow_knows_the_size_before_decoding(tmp_path, rgb, monkeypatch):
    from gencompress.pillow import register

    register()
    path = tmp_path / "a.gcz"
    path.write_bytes(gencompress.encode(rgb))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the bomb check runs on the header's size
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(io.BytesIO(b"\x89GCZ\r\n\x1a\n" + b"\x00" * 40))  # our magic, broken header


def test_the_overfitted_codec_through_numcodecs_zarr_and_pillow(tmp_path, rgb, monkeypatch):
    from gencompress.overfit import presets
    from gencompress.pillow import register
    from gencompress.zarr import GenCompressCodec

    monkeypatch.setitem(presets.EFFORTS, "fast", presets.Effort(steps=3))
    config = {"id": "gencompress", "model": "overfit", "quality": 5, "effort": "fast"}
    codec = numcodecs.get_codec(config)
    assert codec.get_config() == config
    images = np.stack([rgb[:24, :32], rgb[8:32, 8:40]])
    v3 = GenCompressCodec(model="overfit", quality=5, effort="fast")
    assert v3.to_dict()["configuration"] == {"model": "overfit", "quality": 5, "effort": "fast"}
    arr = zarr.create_array(str(tmp_path / "o.zarr"), shape=images.shape, chunks=(1, 24, 32, 3), dtype="uint8",
                            serializer=v3, compressors=None)
    arr[:] = images
    back = zarr.open_array(str(tmp_path / "o.zarr"), mode="r")[:]
    for original, decoded in zip(images, back):  # the overfit encoder is seeded: same chunk, same bytes
        assert np.array_equal(decoded, gencompress.decode(codec.encode(original)))
    register()
    Image.fromarray(rgb[:20, :20]).save(tmp_path / "o.gcz", model="overfit", effort="fast")
    with Image.open(tmp_path / "o.gcz") as im:
        assert im.info["model"] == "overfit" and im.size == (20, 20)

"""Tiled coding: the tile grid, blending, region decode, batched encode/decode."""

from __future__ import annotations

import numpy as np
import pytest

import gencompress
from gencompress import container, tiling
from gencompress.codec import Codec


@pytest.mark.parametrize("length, size, overlap", [(1, 128, 32), (128, 128, 32), (129, 128, 32), (1000, 128, 32),
                                                   (700, 256, 0), (97, 64, 32)])
def test_spans_cover_the_axis_with_the_stated_overlap(length, size, overlap):
    s = tiling.spans(length, size, overlap)
    assert len(s) == tiling.span_count(length, size, overlap)
    assert s[0][0] == 0 and s[-1][1] == length
    assert all(e - b <= size for b, e in s)
    assert all(a[1] - b[0] == overlap for a, b in zip(s, s[1:]))  # neighbours overlap exactly
    assert all(e - b > overlap for b, e in s[1:])  # the last span is longer than its ramp


@pytest.mark.parametrize("width, height, size, overlap", [(1000, 700, 128, 32), (97, 64, 64, 0), (16, 16, 2048, 0)])
def test_areas_are_the_tiles_pixel_counts_in_raster_order(width, height, size, overlap):
    grid = tiling.Grid(width, height, size, overlap)
    assert grid.areas().tolist() == [t.width * t.height for t in grid.tiles()]


def test_blend_weights_sum_to_one():
    s = tiling.spans(1000, 128, 32)
    total = np.zeros(1000, np.float64)
    for i, (b, e) in enumerate(s):
        total[b:e] += tiling.axis_weights(s, i, 32)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_assemble_reproduces_a_tiled_image_and_its_regions():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 470, 3), dtype=np.uint8)
    grid = tiling.Grid(470, 300, 128, 32)
    calls = []

    def tile_pixels(t):
        calls.append(t.index)
        return image[t.y0:t.y1, t.x0:t.x1]

    np.testing.assert_array_equal(grid.assemble(tile_pixels), image)  # consistent tiles blend to themselves
    assert sorted(calls) == list(range(grid.count))
    calls.clear()
    np.testing.assert_array_equal(grid.assemble(tile_pixels, (20, 50, 30, 20)), image[50:70, 20:50])
    assert len(calls) == 1  # a region inside one tile decodes that tile alone


def test_a_lone_tile_ignores_a_huge_claimed_overlap():
    """A hostile header may claim any overlap: nothing is allocated for it unless tiles overlap."""
    grid = tiling.Grid(24, 16, 1 << 29, 1 << 27)
    assert grid.count == 1
    image = np.zeros((16, 24, 3), np.uint8)
    np.testing.assert_array_equal(grid.assemble(lambda t: image), image)


def test_check_region():
    grid = tiling.Grid(100, 50, 128, 32)
    assert grid.check_region((0, 0, 100, 50)) == (0, 0, 100, 50)
    for bad in ((0, 0, 0, 5), (-1, 0, 5, 5), (90, 0, 11, 5), (0, 45, 5, 6)):
        with pytest.raises(ValueError, match="outside"):
            grid.check_region(bad)


@pytest.fixture(scope="module")
def big(rgb):
    """A 200x300 photo-like image: the test photo tiled, with a gradient so no two tiles are alike."""
    base = np.tile(rgb, (3, 4, 1))[:200, :300].astype(np.int16)
    return np.clip(base + np.linspace(-30, 30, 300)[None, :, None], 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiled_file(big):
    return Codec(model="vae", quality=4, device="cpu", tile_size=128).encode(big)


def test_tiled_file_records_its_grid_and_round_trips(big, tiled_file):
    c = container.unpack(tiled_file)
    assert (c.header.tile_size, c.header.overlap, len(c.tiles)) == (128, 32, 2 * 3)
    decoded = gencompress.decode(tiled_file, device="cpu")
    assert decoded.shape == big.shape
    err = (decoded.astype(float) - big) ** 2
    psnr = 10 * np.log10(255 ** 2 / err.mean())
    assert psnr > 24
    # no seam: the columns where tiles are cross-faded are not worse than the rest
    seams = [x for b, e in tiling.spans(300, 128, 32)[1:] for x in range(b, b + 32)]
    assert err[:, seams].mean() < 1.5 * err.mean()


def test_region_decode_equals_the_crop_of_the_whole(tiled_file):
    whole = gencompress.decode(tiled_file, device="cpu")
    codec = Codec(device="cpu")
    for region in ((0, 0, 300, 200), (90, 80, 20, 30), (299, 199, 1, 1), (5, 150, 200, 10)):
        x, y, w, h = region
        np.testing.assert_array_equal(codec.decode(tiled_file, region=region), whole[y:y + h, x:x + w])
    with pytest.raises(ValueError, match="outside"):
        codec.decode(tiled_file, region=(250, 0, 100, 10))


def test_region_of_rgba_and_gray_files(rgb):
    rgba = np.dstack([rgb, np.arange(80 * 96, dtype=np.uint8).reshape(80, 96)])
    data = gencompress.encode(rgba, model="ae", device="cpu")
    np.testing.assert_array_equal(gencompress.decode(data, device="cpu", region=(10, 20, 30, 40)),
                                  gencompress.decode(data, device="cpu")[20:60, 10:40])
    gray = gencompress.encode(rgb[:, :, 1], model="ae", device="cpu")
    assert gencompress.decode(gray, device="cpu", region=(0, 0, 5, 7)).shape == (7, 5)


def test_one_tile_is_whole_image_coding(rgb):
    """Images up to the tile size are coded exactly as before tiling existed: same symbols and pixels."""
    small = Codec(model="vae", quality=3, device="cpu", tile_size=128).encode(rgb)
    large = Codec(model="vae", quality=3, device="cpu", tile_size=1024).encode(rgb)
    a, b = container.unpack(small), container.unpack(large)
    assert a.tiles == b.tiles


def test_many_equals_one_at_a_time(rgb, big):
    codec = Codec(model="vae", quality=2, device="cpu", tile_size=128)
    images = [rgb, big, np.ascontiguousarray(rgb[::-1]), rgb[:40, :50].copy()]
    many = codec.encode_many(images)
    assert many == [codec.encode(im) for im in images]  # on CPU the batched analysis rounds alike
    decoded = codec.decode_many(many)
    for data, pixels in zip(many, decoded):
        np.testing.assert_array_equal(pixels, codec.decode(data))


def test_tile_size_is_checked():
    for bad in (64, 100, 1000):
        with pytest.raises(ValueError, match="tile size"):
            Codec(tile_size=bad)

"""Library round trips with the shipped weights: shapes, modes, exactness, bad input, threads."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

import gencompress
from gencompress import container
from gencompress.codec import Codec, load_model
from gencompress.container import ChecksumError, FormatError


@pytest.mark.parametrize("model", ["ae", "vae"])
def test_decoded_pixels_equal_the_models_reconstruction(rgb, model):
    data = gencompress.encode(rgb, model=model, quality=4, device="cpu")
    decoded = gencompress.decode(data, device="cpu")
    net = load_model(model, "cpu")
    padded = np.pad(rgb, ((0, -80 % net.model.stride), (0, -96 % net.model.stride), (0, 0)), mode="edge")
    x = torch.tensor(padded).permute(2, 0, 1)[None].float() / 255
    _, y_in = net.model.code(net.model.analyze(x, 3), 3)
    np.testing.assert_array_equal(decoded, net.model.synthesize_exact(y_in)[0, :80, :96])
    assert decoded.shape == rgb.shape and decoded.dtype == np.uint8
    # the fixed-point synthesis is the float one to within rounding: one level at most, in few values
    x_hat = net.model.synthesize(y_in)
    in_float = (x_hat[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()[:80, :96]
    difference = np.abs(decoded.astype(int) - in_float)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.15


def natural(rgb: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An image of the given shape (HxW or HxWxC, C in 1, 3, 4) cut from the tiled test photo."""
    h, w = shape[:2]
    tiled = np.tile(rgb, (-(-h // rgb.shape[0]), -(-w // rgb.shape[1]), 1))[:h, :w]
    if len(shape) == 2:
        return tiled[:, :, 1].copy()
    if shape[2] == 1:
        return tiled[:, :, 1:2].copy()
    if shape[2] == 4:
        return np.dstack([tiled, np.arange(h * w, dtype=np.uint8).reshape(h, w)])
    return tiled.copy()


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 1000, 3), (1000, 1, 3), (37, 53, 3), (17, 9), (23, 31, 4), (5, 7, 1)])
def test_shapes_round_trip(rgb, shape):
    image = natural(rgb, shape)
    decoded = gencompress.decode(gencompress.encode(image, quality=2, device="cpu"), device="cpu")
    assert decoded.shape == (shape[:2] if len(shape) == 2 or shape[2] == 1 else shape)
    if len(shape) == 3 and shape[2] == 4:
        np.testing.assert_array_equal(decoded[:, :, 3], image[:, :, 3])  # alpha is lossless


def test_pil_modes_and_paths(rgb, tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(rgb).save(path)
    assert gencompress.decode(gencompress.encode(path, device="cpu")).shape == rgb.shape
    gray = Image.fromarray(rgb).convert("L")
    assert gencompress.decode(gencompress.encode(gray, device="cpu")).shape == rgb.shape[:2]
    pal = Image.fromarray(rgb).convert("P")
    assert gencompress.decode(gencompress.encode(pal, device="cpu")).shape == rgb.shape
    deep = Image.fromarray((rgb[:, :, 0].astype(np.int32) * 257)).convert("I;16")
    with pytest.warns(UserWarning, match="8 bits"):
        data = gencompress.encode(deep, device="cpu")
    assert gencompress.decode(data).shape == rgb.shape[:2]


def test_warnings_point_at_the_callers_line(rgb):
    deep = Image.fromarray((rgb[:, :, 0].astype(np.int32) * 257)).convert("I;16")
    with pytest.warns(UserWarning, match="8 bits") as caught:
        gencompress.encode(deep, device="cpu")
    assert caught[0].filename == __file__  # not a line inside gencompress


def test_exif_orientation_is_applied_to_paths_pil_images_and_bytes(rgb, tmp_path):
    from gencompress.images import open_image

    stored = Image.fromarray(rgb)  # 96 wide, 80 high, shown rotated a quarter turn: 80 wide, 96 high
    exif = stored.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    for image in (path, Image.open(path), open_image(path.read_bytes(), "stdin")):
        assert gencompress.decode(gencompress.encode(image, device="cpu")).shape == (96, 80, 3)


def test_gray_alpha(rgb):
    la = Image.fromarray(np.dstack([rgb[:, :, 0], rgb[:, :, 1]]), "LA")
    decoded = gencompress.decode(gencompress.encode(la, device="cpu"))
    assert decoded.shape == (80, 96, 4)  # documented: gray + alpha decodes as RGBA
    np.testing.assert_array_equal(decoded[:, :, 3], rgb[:, :, 1])
    with pytest.raises(gencompress.ImageError, match="HxWx2 array is ambiguous"):
        gencompress.encode(np.dstack([rgb[:, :, 0], rgb[:, :, 1]]))


def test_animated_images_are_refused_not_cut(rgb, tmp_path):
    from gencompress.images import open_image

    path = tmp_path / "anim.gif"
    frames = [Image.fromarray(np.roll(rgb, k, axis=1)) for k in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    for image in (path, Image.open(path)):
        with pytest.raises(gencompress.ImageError, match="animated or multi-page image .3 frames."):
            gencompress.encode(image)
    with pytest.raises(gencompress.ImageError, match="^stdin: an animated"):
        open_image(path.read_bytes(), "stdin")


def test_input_is_not_modified(rgb):
    image = rgb.copy()
    gencompress.encode(image, device="cpu")
    np.testing.assert_array_equal(image, rgb)


@pytest.mark.parametrize("bad", [np.zeros((0, 4, 3), np.uint8), np.zeros((4, 4, 2, 1), np.uint8),
                                 np.zeros((4, 4), np.float32), "no/such/file.png", 42])
def test_bad_images_raise_image_error(bad):
    with pytest.raises(gencompress.ImageError):
        gencompress.encode(bad, device="cpu")


def test_quality_changes_rate(rgb):
    sizes = [len(gencompress.encode(rgb, quality=q, device="cpu")) for q in (1, 4, 8)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_unknown_model_and_foreign_weights(small_gcz):
    c = container.unpack(small_gcz)
    renamed = container.pack(dataclasses.replace(c, header=dataclasses.replace(c.header, model="nope")))
    with pytest.raises(FormatError, match="does not ship"):
        gencompress.decode(renamed)
    foreign = container.pack(dataclasses.replace(c, header=dataclasses.replace(c.header, weights_sha256=bytes(32))))
    with pytest.raises(FormatError, match="weights"):
        gencompress.decode(foreign)


def test_pixel_and_symbol_checks(small_gcz):
    c = container.unpack(small_gcz)
    for field in ("pixels_crc", "symbols_crc"):
        tile = dataclasses.replace(c.tiles[0], **{field: getattr(c.tiles[0], field) ^ 1})
        wrong = container.pack(dataclasses.replace(c, tiles=(tile,)))
        with pytest.raises(ChecksumError):
            gencompress.decode(wrong)
        if field == "pixels_crc":
            assert gencompress.decode(wrong, verify=False).shape == (16, 24, 3)


def test_every_truncation_and_flip_of_a_real_file(small_gcz):
    codec = Codec(device="cpu")
    for n in range(len(small_gcz)):
        with pytest.raises(FormatError):
            codec.decode(small_gcz[:n])
    for i in range(0, len(small_gcz), 3):
        bad = bytearray(small_gcz)
        bad[i] ^= 0x10
        with pytest.raises(FormatError):
            codec.decode(bytes(bad))


def test_corrupt_stream_with_valid_crc_is_a_format_error(small_gcz):
    """Streams rewritten (and the CRC recomputed) must still fail cleanly inside the decoder."""
    c = container.unpack(small_gcz)
    rng = np.random.default_rng(0)
    for trial in range(30):
        streams = list(c.tiles[0].streams)
        k = trial % len(streams)
        data = bytearray(streams[k])
        data[rng.integers(0, len(data))] ^= 1 << int(rng.integers(0, 8))
        streams[k] = bytes(data[: len(data) - 4 * (trial % 3 == 0)])
        forged = container.pack(dataclasses.replace(c, tiles=(dataclasses.replace(c.tiles[0], streams=tuple(streams)),)))
        with pytest.raises(FormatError):
            gencompress.decode(forged)


def test_decodes_in_a_fresh_process(rgb, tmp_path):
    data = gencompress.encode(rgb, model="ae", quality=2, device="cpu")
    (tmp_path / "x.gcz").write_bytes(data)
    code = ("import sys, hashlib, gencompress; a = gencompress.decode(open(sys.argv[1], 'rb').read(), device='cpu');"
            "print(hashlib.sha256(a.tobytes()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.gcz")], capture_output=True, text=True, check=True)
    import hashlib

    assert out.stdout.strip() == hashlib.sha256(gencompress.decode(data).tobytes()).hexdigest()


def test_shared_codec_is_thread_safe(rgb):
    codec = Codec(model="vae", quality=3, device="cpu")
    images = [np.ascontiguousarray(np.roll(rgb, 7 * i, axis=1)) for i in range(4)]
    serial = [codec.encode(im) for im in images]
    serial_decoded = [codec.decode(data) for data in serial]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(codec.encode, images * 4))
    assert parallel == serial * 4  # 8 threads, same bytes as serial use
    with ThreadPoolExecutor(8) as pool:
        decoded = list(pool.map(codec.decode, serial * 4))
    assert all(np.array_equal(d, s) for d, s in zip(decoded, serial_decoded * 4))


def test_codec_arguments():
    with pytest.raises(KeyError):
        Codec(model="nope")
    assert Codec(model="ae", quality=5).get_config() == {"id": "gencompress", "model": "ae", "quality": 5}
    assert Codec(quality=np.int64(4), tile_size=2048).quality == 4


@pytest.mark.parametrize("arguments, message", [
    ({"quality": 9}, "quality must be an integer from 1 to 8"),
    ({"quality": 3.0}, "quality must be an integer"),
    ({"quality": True}, "quality must be an integer"),
    ({"tile_size": 10**6}, "tile size must be a multiple of 64 from 128 to 2048"),
    ({"tile_size": 256.0}, "tile size"),
    ({"max_pixels": 0}, "max_pixels must be a positive integer"),
    ({"device": "tpu"}, "device must be 'cpu', 'cuda' or 'cuda:N'"),
    ({"device": "cpu:1"}, "device must be"),
])
def test_bad_arguments_are_refused_at_construction(arguments, message):
    with pytest.raises(ValueError, match=message):
        Codec(**arguments)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_refused_at_construction():
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        Codec(device="cuda")


@pytest.mark.parametrize("data, message", [("photo.gcz", "got str .a path"), (None, "got NoneType"), (42, "got int")])
def test_decode_wants_bytes(data, message):
    with pytest.raises(TypeError, match=message):
        gencompress.decode(data)


def test_decode_takes_any_bytes_like(small_gcz):
    expected = gencompress.decode(small_gcz)
    for data in (bytearray(small_gcz), memoryview(small_gcz), np.frombuffer(small_gcz, np.uint8)):
        assert np.array_equal(gencompress.decode(data), expected)


def test_import_is_light():
    code = "import sys, gencompress; print('torch' in sys.modules, 'compressai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]

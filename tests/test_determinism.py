"""Files decode to identical pixels, with their checksums, under other thread counts, oneDNN off and
other CPU capabilities (issue 14, item 1; docs/FORMAT.md), each setting in a fresh process."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

import gencompress
from gencompress.portability import SETTINGS, decode_everywhere


def test_every_model_decodes_identically_everywhere(rgb, tmp_path):
    tiled = np.tile(rgb, (2, 2, 1))[:150, :180]
    cases = [(tiled, "vae", 6, 128), (rgb[:, :, 1], "vae", 8, 1024), (np.dstack([rgb, rgb[:, :, 0]]), "ae", 2, 1024),
             (tiled, "ae", 7, 128), (tiled[:100, :140], "overfit", 4, 128)]
    paths, expected = [], []
    for i, (image, model, quality, tile) in enumerate(cases):
        data = gencompress.encode(image, model=model, quality=quality, tile_size=tile,
                                  **({"effort": "fast"} if model == "overfit" else {}))
        paths.append(tmp_path / f"{i}.gcz")
        paths[-1].write_bytes(data)
        expected.append(hashlib.sha256(gencompress.decode(data).tobytes()).hexdigest())
    # and an overfit tile whose entropy model reads ancestors (preamble version 2: the high effort's)
    paths.append(Path(__file__).parent / "data" / "golden" / "v3_overfit_q5_ancestors.gcz")
    expected.append(hashlib.sha256(gencompress.decode(paths[-1].read_bytes()).tobytes()).hexdigest())
    settings = {name: SETTINGS[name] for name in ("1 thread", "oneDNN off", "ATEN default, 1 thread", "ATEN avx512")}
    settings["BLAS without AVX"] = {"OPENBLAS_CORETYPE": "Prescott", "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512_SKX AVX2 FMA3",
                                    "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    for name, got in decode_everywhere(paths, settings).items():
        assert got == expected, name  # decoded (the pixel checksum held there) to the very same pixels


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("model", ["ae", "vae"])
def test_a_gpu_encoded_file_decodes_on_the_cpu_with_its_checksums(rgb, model):
    data = gencompress.encode(rgb, model=model, quality=3, device="cuda")
    assert np.array_equal(gencompress.decode(data, device="cpu"), gencompress.decode(data, device="cuda"))


def test_the_scale_indexes_are_compressais_and_need_no_buffer_on_the_models_device(rgb):
    """On a GPU a vae compared its CPU scales with the Gaussian's CUDA buffers, which torch refuses
    (the likely cause of the GPU test above failing on a lent H200, read from the code, not yet
    confirmed on a GPU); the indexes now come from constants. They must be
    what compressai computes, or old files would decode otherwise; and coding must not read those
    buffers, wherever they are (here on the meta device, which holds no values)."""
    from gencompress.codec import load_model
    from gencompress.models.vae import SCALE_TABLE, scale_indexes

    model = load_model("vae", "cpu").model
    table = torch.tensor(SCALE_TABLE, dtype=torch.float64)
    scales = torch.cat([torch.exp(torch.empty(5000, dtype=torch.float64).uniform_(-4, 7)), table,
                        table.float().double(), torch.tensor([0.0, -1.0, 0.11, 1e9], dtype=torch.float64)])
    assert torch.equal(scale_indexes(scales), model.gaussian.build_indexes(scales))
    data = gencompress.encode(rgb, model="vae", quality=3)
    pixels = gencompress.decode(data)
    gaussian = model.gaussian
    model.gaussian = copy.deepcopy(gaussian).to("meta")
    try:
        assert gencompress.encode(rgb, model="vae", quality=3) == data
        assert np.array_equal(gencompress.decode(data), pixels)
    finally:
        model.gaussian = gaussian


def test_a_decoder_with_other_weights_fails_the_pixel_check(rgb):
    """Exactness keeps the check strict: a synthesis weight off by one step of 2^-16 is caught."""
    from gencompress.codec import load_model

    data = gencompress.encode(rgb, model="vae", quality=3)
    first = load_model("vae", "cpu").model.exact_twin("g_s")[0]
    first.weight[0, 0, 2, 2] += 1
    try:
        with pytest.raises(gencompress.ChecksumError, match="pixel CRC"):
            gencompress.decode(data)
    finally:
        first.weight[0, 0, 2, 2] -= 1
    gencompress.decode(data)

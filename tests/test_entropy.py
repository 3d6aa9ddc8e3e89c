"""Entropy coding from integer CDF tables: exact round trip, escapes, rate near the ideal."""

from __future__ import annotations

import numpy as np
import pytest
from compressai.entropy_models import GaussianConditional

from gencompress import entropy
from gencompress.models.vae import SCALE_TABLE


@pytest.fixture(scope="module")
def tables() -> entropy.Tables:
    g = GaussianConditional(SCALE_TABLE)
    g.update()
    return entropy.Tables(g._quantized_cdf.numpy(), g._cdf_length.numpy(), g._offset.numpy())


def gaussian_symbols(shape, seed=0):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(SCALE_TABLE), size=shape).astype(np.int32)
    sym = np.round(rng.normal(0, np.asarray(SCALE_TABLE)[idx])).astype(np.int32)
    return sym, idx


def test_round_trip_and_rate(tables):
    from scipy.stats import norm

    sym, idx = gaussian_symbols((16, 20, 24))
    data = entropy.encode(sym, idx, tables)
    np.testing.assert_array_equal(entropy.decode(data, idx, tables), sym)
    scale = np.asarray(SCALE_TABLE)[idx]
    p = norm.cdf((np.abs(sym) + 0.5) / scale) - norm.cdf((np.abs(sym) - 0.5) / scale)
    ideal = -np.log2(np.maximum(p, 1e-12)).sum() / 8
    assert ideal <= len(data) < 1.01 * ideal + 16


def test_values_outside_the_tables_escape(tables):
    sym, idx = gaussian_symbols((4, 5, 6), seed=1)
    sym[0, 0, 0], sym[1, 2, 3], sym[3, 4, 5] = 2**30, -(2**30), 5000
    idx[0, 0, 0] = 0
    data = entropy.encode(sym, idx, tables)
    np.testing.assert_array_equal(entropy.decode(data, idx, tables), sym)


def test_empty_and_single(tables):
    for shape in ((0,), (1, 1, 1)):
        sym, idx = gaussian_symbols(shape)
        np.testing.assert_array_equal(entropy.decode(entropy.encode(sym, idx, tables), idx, tables), sym)


def test_garbage_never_escapes_as_another_error(tables):
    sym, idx = gaussian_symbols((8, 8, 8), seed=2)
    data = entropy.encode(sym, idx, tables)
    rng = np.random.default_rng(3)
    for _ in range(200):
        bad = bytearray(data[: rng.integers(0, len(data) + 1)])
        if bad:
            bad[rng.integers(0, len(bad))] ^= 1 << int(rng.integers(0, 8))
        try:
            entropy.decode(bytes(bad), idx, tables)
        except entropy.EntropyDecodeError:
            pass

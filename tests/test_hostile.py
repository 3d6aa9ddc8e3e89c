"""Hostile files (valid CRCs, absurd but self-consistent claims) end in FormatError, fast and in bounded memory.

Each model's cases are decoded in one fresh process (gencompress.fuzz.decode_in_subprocess), which
measures each case's peak resident memory above what the process held before it.
"""

from __future__ import annotations

import numpy as np
import pytest

import gencompress
from gencompress import fuzz

# What one largest tile (2048 x 2048) may cost: the overfitted decoder runs its entropy model over
# every latent of a claimed tile before it can tell that the stream had other data (a legitimate
# flat tile can take a few dozen bytes); the amortized models find out from their first stream.
TILE_MB, TILE_SECONDS = 400, 20.0
CASE_MB, CASE_SECONDS = 150, 1.0


@pytest.fixture(scope="module")
def image(rgb) -> np.ndarray:
    return rgb[:16, :24]


@pytest.mark.parametrize("model", ["vae", "overfit"])
def test_hostile_files_are_refused_fast_in_bounded_memory(image, model):
    valid = gencompress.encode(image, model=model, quality=1, **({"effort": "fast"} if model == "overfit" else {}))
    cases = fuzz.hostile(valid)
    results = dict(zip(cases, fuzz.decode_in_subprocess([(valid, forged) for forged in cases.values()])))
    for name, r in results.items():
        largest = name == "huge image, largest tiles" and model == "overfit"
        if name == "duplicated tile":  # a genuine file: an image of two equal halves
            assert r["outcome"] == "decoded", r
            continue
        assert r["outcome"].startswith("FormatError"), (name, r)
        assert r["extra_mb"] < (TILE_MB if largest else CASE_MB), (name, r)
        assert r["seconds"] < (TILE_SECONDS if largest else CASE_SECONDS), (name, r)


def test_running_out_of_memory_is_a_format_error(image):
    """Under an address-space cap too small for the claimed image, the refusal is still a FormatError."""
    import dataclasses

    from gencompress import container

    valid = gencompress.encode(image, model="vae", quality=1)
    c = container.unpack(valid)
    header = dataclasses.replace(c.header, width=2048 * 8, height=2048 * 8, tile_size=2048)
    forged = container.pack(dataclasses.replace(c, header=header, tiles=c.tiles * header.grid.count))
    [r] = fuzz.decode_in_subprocess([(valid, forged)], memory_cap=200 << 20)  # the output alone needs 805 MB
    assert r["outcome"] == "FormatError: not enough memory to decode this file", r


def test_the_duplicated_tile_file_decodes_to_two_equal_halves(image):
    valid = gencompress.encode(image, model="vae", quality=1)
    twice = gencompress.decode(fuzz.hostile(valid)["duplicated tile"])
    once = gencompress.decode(valid)
    assert np.array_equal(twice, np.concatenate([once, once], axis=1))

"""The decoder under seeded mutation fuzzing, and refusing bombs at once."""

from __future__ import annotations

import dataclasses
import random
import time

import numpy as np
import pytest

import gencompress
from gencompress import container, fuzz


@pytest.fixture(scope="module")
def seeds(rgb) -> list[bytes]:
    return [gencompress.encode(rgb[:16, :24], model="vae", quality=1),
            gencompress.encode(rgb[:8, :8, 0], model="ae", quality=3),
            gencompress.encode(np.dstack([rgb[:8, :16], rgb[:8, :16, :1]]), model="ae", quality=1),
            gencompress.encode(np.tile(rgb, (1, 2, 1))[:20, :130], model="vae", quality=2, tile_size=128)]  # 2 tiles


def test_only_format_errors_come_out(seeds):
    report = fuzz.run(seeds, cases=3000, decode=gencompress.decode, seed=1)
    assert report.crashes == [], report.crashes[:5]
    assert report.cases == 3000 and len(report.outcomes) > 5  # the mutations reach many different checks
    assert report.slowest[0] < 5.0, report.summary()


def test_mutations_are_reproducible(seeds):
    a = [fuzz.mutate(seeds[0], random.Random(7), seeds[1]) for _ in range(3)]
    b = [fuzz.mutate(seeds[0], random.Random(7), seeds[1]) for _ in range(3)]
    assert a == b


def test_a_tiny_file_claiming_a_huge_image_is_refused_at_once(small_gcz):
    c = container.unpack(small_gcz)
    for w, h, message in ((100_000, 100_000, "exceeds the limit"), (8192, 8192, "exceed the limit of 2048")):
        forged = container.pack(dataclasses.replace(c, header=dataclasses.replace(c.header, width=w, height=h, tile_size=w)))
        gencompress.decode(small_gcz)  # model loaded: time only the refusal
        start = time.perf_counter()
        with pytest.raises(gencompress.FormatError, match=message):
            gencompress.decode(forged)
        assert time.perf_counter() - start < 0.1

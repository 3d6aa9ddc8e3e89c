"""The fixed-point twins of the amortized decoders: exact, so thread count and band order cannot change them."""

from __future__ import annotations

import torch

from gencompress.codec import load_model
from gencompress.models.exact import in_bands, to_fixed


def test_bands_give_the_whole_synthesis_exactly():
    twin = load_model("vae", "cpu").model.exact_twin("g_s")
    y = to_fixed(torch.randn(1, 192, 45, 3, generator=torch.Generator().manual_seed(0)) * 3)
    whole = twin(y)
    for band in (8, 16, 32):
        assert torch.equal(in_bands(twin, y, 16, band=band, halo=3), whole)


def test_thread_count_does_not_change_the_integers():
    twin = load_model("ae", "cpu").model.exact_twin("g_s")
    y = to_fixed(torch.randn(1, 192, 12, 10, generator=torch.Generator().manual_seed(1)) * 3)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(twin(y))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(*results) and bool((results[0] == results[0].floor()).all())  # integers, the same

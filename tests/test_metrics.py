"""Metrics on cases with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gencompress import metrics

RATES = [0.2, 0.4, 0.8, 1.6, 3.2]
PSNRS = [27.0, 30.5, 33.8, 36.9, 39.5]


def test_bd_rate_identical_curves_is_zero():
    assert metrics.bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0, abs=1e-9)


def test_bd_rate_scaled_rates():
    assert metrics.bd_rate(RATES, PSNRS, [0.9 * r for r in RATES], PSNRS) == pytest.approx(-10, abs=1e-6)
    assert metrics.bd_rate(RATES, PSNRS, [1.2 * r for r in RATES], PSNRS) == pytest.approx(20, abs=1e-6)


def test_psnr_and_ms_ssim():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    assert metrics.psnr(a, a) == float("inf")
    b = np.clip(a.astype(int) + 1, 0, 255).astype(np.uint8)
    assert 48 < metrics.psnr(a, b) < 48.2  # MSE just under 1
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0)
    assert metrics.ms_ssim(a, b) < 1.0 and metrics.ms_ssim_db(0.99) == pytest.approx(20.0)


def _kodak_like():
    from PIL import Image

    rgb = np.asarray(Image.open(Path(__file__).parent / "data" / "parrot_96x80.png").convert("RGB"))
    return np.tile(rgb, (2, 2, 1))


def test_realism_metrics_are_zero_for_identical_images():
    a = _kodak_like()
    assert metrics.patch_swd(a, a) == 0 and metrics.spectrum_error(a, a) == 0


def test_blur_scores_worse_than_the_original_and_more_blur_worse_still():
    from PIL import Image, ImageFilter

    a = _kodak_like()
    blurred = [np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(r))) for r in (1, 2)]
    swd = [metrics.patch_swd(a, b) for b in blurred]
    spec = [metrics.spectrum_error(a, b) for b in blurred]
    assert 0 < swd[0] < swd[1] and 0 < spec[0] < spec[1]
    assert metrics.spectrum_bias(a, blurred[0]) < 0  # blur removes high-frequency power
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    assert metrics.spectrum_bias(a, noisy) > 0 and metrics.patch_swd(a, noisy) > 0

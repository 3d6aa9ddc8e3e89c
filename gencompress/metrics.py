"""Image quality and rate-distortion metrics, with the averaging rules CompressAI uses.

PSNR is on 8-bit RGB (all channels pooled) per image; averages over a data set are of per-image
dB values. MS-SSIM is pytorch-msssim's on RGB in [0, 1]; as dB: -10·log10(1 - MS-SSIM).
BD-rate is the `bjontegaard` package's (piecewise cubic, pchip) over the overlapping quality range.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images of the same shape (inf when identical)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two HxWx3 uint8 images (needs both sides > 160 px, as pytorch-msssim does)."""
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    ta, tb = (torch.tensor(x).permute(2, 0, 1)[None].double() / 255 for x in (a, b))
    return float(_ms_ssim(ta, tb, data_range=1.0))


def ms_ssim_db(value: float) -> float:
    return float(-10 * np.log10(max(1 - value, 1e-12)))


def bd_rate(anchor_rate: Sequence[float], anchor_dist: Sequence[float],
            test_rate: Sequence[float], test_dist: Sequence[float]) -> float:
    """Average bit-rate difference in % of test against anchor at equal quality (negative = test is smaller).

    Integrated over the quality interval both curves cover (pchip), however narrow: callers that
    need a minimum overlap check it themselves.
    """
    import bjontegaard

    return float(bjontegaard.bd_rate(np.asarray(anchor_rate), np.asarray(anchor_dist), np.asarray(test_rate),
                                     np.asarray(test_dist), method="pchip", require_matching_points=False, min_overlap=0))

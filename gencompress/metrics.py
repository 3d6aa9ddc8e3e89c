"""Image quality and rate-distortion metrics, with the averaging rules CompressAI uses.

PSNR is on 8-bit RGB (all channels pooled) per image; averages over a data set are of per-image
dB values. MS-SSIM is pytorch-msssim's on RGB in [0, 1]; as dB: -10·log10(1 - MS-SSIM).
BD-rate is the `bjontegaard` package's (piecewise cubic, pchip) over the overlapping quality range.

Realism without pretrained networks (for the GAN decoder): patch_swd, the sliced Wasserstein
distance between the 7x7 Laplacian-pyramid patches of two images (Karras et al. 2018), and
spectrum_error, the distance between their radially averaged power spectra.
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


def _binomial_blur(img: np.ndarray) -> np.ndarray:
    """Separable binomial 5-tap blur ([1, 4, 6, 4, 1] / 16) with reflected edges, same size."""
    k = np.array([1, 4, 6, 4, 1], np.float32) / 16
    for axis in (0, 1):
        pad = [(2, 2) if a == axis else (0, 0) for a in range(img.ndim)]
        p = np.pad(img, pad, mode="reflect")
        img = sum(k[i] * np.take(p, range(i, i + img.shape[axis]), axis=axis) for i in range(5))
    return img


def laplacian_pyramid(img: np.ndarray, min_size: int = 16) -> list[np.ndarray]:
    """Band-pass levels, finest first, down to a low-pass level no smaller than min_size (float32 HxWxC).

    Burt and Adelson: blur and decimate; each band is a level minus its coarser level brought back up
    (nearest-neighbour doubling, then the same blur).
    """
    levels, g = [], img.astype(np.float32)
    while min(g.shape[:2]) // 2 >= min_size:
        low = _binomial_blur(g)[::2, ::2]
        up = np.repeat(np.repeat(low, 2, axis=0), 2, axis=1)[:g.shape[0], :g.shape[1]]
        levels.append(g - _binomial_blur(up))
        g = low
    return levels + [g]


def patch_swd(reference: np.ndarray, test: np.ndarray, patches: int = 4096, directions: int = 256,
              seed: int = 0) -> float:
    """Sliced Wasserstein distance (x1000) between the 7x7 patches of two images' Laplacian pyramids.

    Karras et al. 2018 (ProGAN): at each level, `patches` random 7x7x3 neighbourhoods from each
    image (the same positions), normalized per channel by the reference's mean and standard
    deviation (ProGAN normalizes each set by its own: that would hide the loss of contrast that
    blur causes), projected on `directions` random unit vectors; the distance of the sorted
    projections, averaged over directions and then over levels. 0 for identical images; larger
    when the test image's local texture is distributed differently (blur, noise, artefacts).
    """
    rng = np.random.default_rng(seed)
    ref, tst = laplacian_pyramid(_rgb(reference)), laplacian_pyramid(_rgb(test))
    distances = []
    for a, b in zip(ref, tst):
        h, w = a.shape[:2]
        if h < 7 or w < 7:
            break
        ys, xs = rng.integers(0, h - 6, patches), rng.integers(0, w - 6, patches)
        idx = (ys[:, None, None] + np.arange(7)[None, :, None], xs[:, None, None] + np.arange(7)[None, None, :])
        da, db = a[idx].reshape(patches, -1), b[idx].reshape(patches, -1)  # (patches, 7*7*3)
        mean, std = a.reshape(-1, 3).mean(0), a.reshape(-1, 3).std(0) + 1e-6
        da, db = ((d.reshape(patches, 49, 3) - mean) / std for d in (da, db))
        dirs = rng.standard_normal((147, directions)).astype(np.float32)
        dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
        pa, pb = (np.sort(d.reshape(patches, 147) @ dirs, axis=0) for d in (da, db))
        distances.append(float(np.abs(pa - pb).mean()))
    return 1000 * float(np.mean(distances))


def power_spectrum(img: np.ndarray, bins: int = 64) -> np.ndarray:
    """Radially averaged power spectrum of the luma, in dB, over `bins` radii from 0 to 0.5 cycles/pixel.

    The image (mean removed) is Hann-windowed so that its borders do not leak into high frequencies.
    """
    rgb = _rgb(img)
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    h, w = luma.shape
    window = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    power = np.abs(np.fft.fft2((luma - luma.mean()) * window)) ** 2
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    radius = np.sqrt(fy ** 2 + fx ** 2)
    which = np.minimum((radius / 0.5 * bins).astype(int), bins)  # bin `bins`: corners beyond 0.5
    sums = np.bincount(which.ravel(), power.ravel(), bins + 1)[:bins]
    counts = np.maximum(np.bincount(which.ravel(), minlength=bins + 1)[:bins], 1)
    return 10 * np.log10(sums / counts + 1e-10)


def spectrum_error(reference: np.ndarray, test: np.ndarray, low: float = 0.25, high: float = 0.5) -> float:
    """Mean absolute difference (dB) of the two power spectra over radii in [low, high) cycles/pixel.

    The default band is the upper half of the frequencies, where blur removes power and a GAN
    decoder puts it back; 0 for identical images.
    """
    return float(np.abs(_spectrum_difference(reference, test, low, high)).mean())


def spectrum_bias(reference: np.ndarray, test: np.ndarray, low: float = 0.25, high: float = 0.5) -> float:
    """Mean signed difference test − reference (dB) over the band: negative for blur, positive for noise."""
    return float(_spectrum_difference(reference, test, low, high).mean())


def _spectrum_difference(reference: np.ndarray, test: np.ndarray, low: float, high: float) -> np.ndarray:
    """test's power spectrum minus reference's (dB), at the radii in [low, high) cycles/pixel."""
    a, b = power_spectrum(reference), power_spectrum(test)
    radii = (np.arange(len(a)) + 0.5) / len(a) * 0.5
    band = (radii >= low) & (radii < high)
    return b[band] - a[band]


def _rgb(img: np.ndarray) -> np.ndarray:
    """float32 HxWx3 (gray repeated) from uint8 HxW / HxWx1 / HxWx3 / HxWx4 (alpha dropped)."""
    img = np.asarray(img, np.float32)
    if img.ndim == 2:
        img = img[:, :, None]
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img[:, :, :3]

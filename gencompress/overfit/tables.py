"""The coding tables of the overfitted codec: quantized Laplace distributions, shipped as data.

Each latent symbol (and each network parameter) is coded with one of SCALE_BINS x MEAN_BINS
integer tables: a Laplace distribution of scale b_k (log-spaced, 0.04 to 40) centred at the
fraction c_m in [-0.5, 0.5) of the predicted mean, over the integers -R .. R (R covers all but
2^-16 of the mass), plus an escape symbol (entropy.py). The tables are computed once (build()),
stored in `weights/overfit.safetensors` and read back, never recomputed at run time: the
exponentials behind them may round differently on another machine, the stored integers cannot.
The file's SHA-256 is the `weights_sha256` of every overfit file.

Which table codes a latent is decided in integers from the entropy model's fixed-point outputs
(table_index), so encoder and decoder pick the same one on any machine.
"""

from __future__ import annotations

import math

import numpy as np

from .architecture import FRACTION_BITS

SCALE_BINS = 64
MEAN_BINS = 16
PRECISION = 16  # table frequencies sum to 2^16
ONE = 1 << FRACTION_BITS
LOG_SCALE_MIN = round(math.log(0.04) * ONE)  # ln b of bin 0, fixed point
LOG_SCALE_STEP = round(math.log(1000.0) / (SCALE_BINS - 1) * ONE)  # ln b between bins, fixed point
PARAMETER_MEAN_BIN = MEAN_BINS // 2  # parameters are coded centred (c = +1/32)


def log_scale(k: np.ndarray | int) -> np.ndarray:
    """ln b of scale bin k (float)."""
    return (LOG_SCALE_MIN + np.asarray(k) * LOG_SCALE_STEP) / ONE


def parameter_table(scale_bin: int) -> int:
    """The table index that codes network parameters with scale bin `scale_bin` (zero mean)."""
    return scale_bin * MEAN_BINS + PARAMETER_MEAN_BIN


def symbol_bits(symbols: np.ndarray, index: np.ndarray, coding, axis: int | None = None):
    """What symbols cost (bits) with these tables (entropy.Tables), escapes (the escape symbol +
    32 bits) included: in all, or summed along `axis` (symbols and index broadcast together)."""
    pos = symbols.astype(np.int64) - coding.offset[index]
    escape = coding.escape(index)
    escaped = (pos < 0) | (pos >= escape)
    pos = np.where(escaped, escape, pos)
    freq = coding.cdf[index, pos + 1] - coding.cdf[index, pos]
    total = -np.log2(freq / 2.0 ** PRECISION).sum(axis) + 32 * escaped.sum(axis)
    return float(total) if axis is None else total


def table_index(mean: np.ndarray, log_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From fixed-point mean and ln-scale (int64, scale 2^-FRACTION_BITS): the integer shift
    (the mean rounded half up; a symbol is value - shift) and the table index of each element."""
    shift = (mean + ONE // 2) >> FRACTION_BITS
    fraction = mean - (shift << FRACTION_BITS)  # in [-ONE/2, ONE/2)
    mean_bin = ((fraction + ONE // 2) * MEAN_BINS) >> FRACTION_BITS
    scale_bin = np.clip((log_b - LOG_SCALE_MIN + LOG_SCALE_STEP // 2) // LOG_SCALE_STEP, 0, SCALE_BINS - 1)
    return shift, scale_bin * MEAN_BINS + mean_bin


def build() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tables as (frequencies concatenated, length, offset): table t has length[t] - 1
    frequencies (2R + 1 values from offset[t] = -R, then the escape), summing to 2^PRECISION."""
    freqs, lengths, offsets = [], [], []
    for k in range(SCALE_BINS):
        b = math.exp(float(log_scale(k)))
        radius = math.ceil(b * PRECISION * math.log(2)) + 1
        for m in range(MEAN_BINS):
            centre = (m + 0.5) / MEAN_BINS - 0.5
            edges = np.arange(-radius, radius) + 0.5 - centre  # between consecutive values
            cdf = np.where(edges < 0, 0.5 * np.exp(np.minimum(edges, 0) / b), 1 - 0.5 * np.exp(-np.maximum(edges, 0) / b))
            mass = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
            available = (1 << PRECISION) - 1  # one count for the escape
            f = np.maximum(1, np.floor(mass * available)).astype(np.int64)
            f[np.argmax(f)] += available - f.sum()
            freqs.append(np.append(f, 1))
            lengths.append(f.size + 2)
            offsets.append(-radius)
    return np.concatenate(freqs).astype(np.uint16), np.array(lengths, np.int32), np.array(offsets, np.int32)


def to_cdf(freq: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The (tables, max length) int64 CDF array entropy.Tables takes, from build()'s frequencies."""
    cdf = np.zeros((length.size, int(length.max())), np.int64)
    start = 0
    for t, n in enumerate(length.tolist()):
        cdf[t, 1:n] = np.cumsum(freq[start:start + n - 1])
        start += n - 1
    return cdf


def save() -> bytes:
    """The tables as the shipped safetensors file's bytes (frequencies uint16, lengths, offsets)."""
    import torch
    from safetensors.torch import save as save_tensors

    freq, length, offset = build()
    return save_tensors({"freq": torch.from_numpy(freq.astype(np.int32)).to(torch.uint16),
                         "length": torch.from_numpy(length), "offset": torch.from_numpy(offset)},
                        metadata={"model": "overfit", "content": f"{SCALE_BINS} scale x {MEAN_BINS} mean Laplace tables"})


def load(data: bytes):
    """entropy.Tables from the shipped file's bytes."""
    from safetensors.numpy import load as load_arrays

    from ..entropy import Tables

    arrays = load_arrays(data)
    length = arrays["length"].astype(np.int64)
    return Tables(to_cdf(arrays["freq"], length), length, arrays["offset"])

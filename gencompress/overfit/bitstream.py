"""One overfitted tile as streams, and back: parameter quantization, symbols, the integer decoder.

A tile has two streams (docs/FORMAT.md):
- the preamble, raw bytes: version, the Architecture, and per module (ARM anchor, ARM other,
  upsampling, synthesis) the step exponent k of its parameters (value = integer * 2^-k) and the
  scale bin of the zero-mean Laplace table their integers are coded with;
- one entropy stream (entropy.encode_chunks) of chunks in decoding order: each module's parameter
  integers, then per latent grid, coarsest first, its anchors and then its other half, each
  symbol coded with the table the integer entropy model picks from what was decoded before.

The encoder chooses each module's step by rate-distortion on the real integer decoder: the
entropy model's steps by the bits of latents plus parameters, the upsampling's and synthesis's by
MSE + lambda x parameter bits.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch

from .. import entropy
from ..container import FormatError
from ..family import symbols_crc
from . import tables
from .architecture import MAX_STEP_BITS, MODULES, WEIGHT_LIMIT, Architecture
from .integer import IntegerDecoder, checkerboard
from .network import LATENT_GAIN, OverfitNet

# Preamble versions: 1 holds version, levels, synthesis width, ARM anchor width, ARM other width;
# 2 adds the ancestors the ARMs read. A tile whose ARMs read none is written as version 1, the
# oldest that says all it needs, so its bytes are what they were before version 2.
_PREAMBLES = {1: struct.Struct("<5B"), 2: struct.Struct("<6B")}
_MODULE = struct.Struct("<2B")  # step exponent k, scale bin of the parameters' table
STEP_CANDIDATES = range(4, 15)  # parameter steps 2^-4 .. 2^-14 ...
FIRST_STEP = 8  # ... searched from 2^-8 towards the better neighbour
DEFAULT_STEP = 12  # for modules whose step is not chosen yet


@dataclass(frozen=True)
class CodedTile:
    streams: tuple[bytes, bytes]  # preamble, entropy stream
    symbols_crc: int
    pixels: np.ndarray  # (h, w, 3) uint8: exactly what the decoder will make
    decoder: IntegerDecoder  # the quantized decoder the streams carry


def encode(net: OverfitNet, image: np.ndarray, lam: float, coding: entropy.Tables) -> CodedTile:
    """Quantize a trained tile model and code it; image is the tile's uint8 (h, w, 3) original."""
    h, w = image.shape[:2]
    latents = [torch.round(p.detach() * LATENT_GAIN).cpu().double().numpy() for p in net.latents]
    floats = {m: [(n, t.detach().cpu().double().numpy()) for n, t in ts] for m, ts in net.named_for_coding().items()}
    target = image.astype(np.float64) / 255
    steps = {m: DEFAULT_STEP for m in MODULES}

    def decoder() -> IntegerDecoder:
        return IntegerDecoder(net.arch, {n: quantize(v, steps[m]) for m in MODULES for n, v in floats[m]}, steps)

    def parameter_bits(module: str) -> float:
        return _best_scale_bin(np.concatenate([quantize(v, steps[module]).ravel() for _, v in floats[module]]),
                               coding)[1]

    def cost(module: str, k: int) -> float:
        steps[module] = k
        dec = decoder()
        if module.startswith("arm"):
            bits = _latent_bits(dec, latents, coding)
            return lam * (bits + parameter_bits(module)) / (h * w)
        mse = float(np.mean((dec.synthesize(latents).astype(np.float64) / 255 - target) ** 2))
        return mse + lam * parameter_bits(module) / (h * w)

    for module in MODULES:
        steps[module] = _best_step(lambda k: cost(module, k))

    dec = decoder()
    a, version = net.arch, 2 if net.arch.ancestors else 1
    fields = (a.levels, a.synthesis_width, a.arm_anchor_width, a.arm_other_width, a.ancestors)
    preamble = _PREAMBLES[version].pack(version, *fields[:_PREAMBLES[version].size - 1])
    chunks = []
    for m in MODULES:
        ints = np.concatenate([dec.params[n].ravel() for n, _ in floats[m]]).astype(np.int32)
        scale_bin, _ = _best_scale_bin(ints, coding)
        preamble += _MODULE.pack(steps[m], scale_bin)
        chunks.append((ints, np.full(ints.size, scale_bin * tables.MEAN_BINS + tables.PARAMETER_MEAN_BIN)))

    def take(i: int, anchors: bool, shift: np.ndarray, index: np.ndarray) -> np.ndarray:
        symbols = _known_symbols(latents, i, anchors, shift)
        chunks.append((symbols.astype(np.int32), index))
        return symbols

    grids = dec.latents(h, w, take)
    stream = entropy.encode_chunks(chunks, coding)
    return CodedTile((preamble, stream), symbols_crc(s for s, _ in chunks), dec.synthesize(grids), dec)


def decode(streams: tuple[bytes, ...], height: int, width: int, coding: entropy.Tables) -> tuple[int, np.ndarray]:
    """The symbols CRC and pixels (h, w, 3) of a tile; FormatError for anything malformed."""
    dec, grids, crc = parse(streams, height, width, coding)
    return crc, dec.synthesize(grids)


def parse(streams: tuple[bytes, ...], height: int, width: int,
          coding: entropy.Tables) -> tuple[IntegerDecoder, list[np.ndarray], int]:
    """A tile's decoder, latent grids and symbols CRC from its streams; FormatError if malformed."""
    if len(streams) != 2:
        raise FormatError(f"corrupt .gcz file ({len(streams)} streams in an overfit tile, expected 2)")
    preamble, stream = streams
    if not preamble:
        raise FormatError("corrupt .gcz file (overfit tile preamble size)")
    version = preamble[0]
    if version not in _PREAMBLES:
        raise FormatError(f"unsupported overfit tile version {version}")
    head = _PREAMBLES[version]
    if len(preamble) != head.size + len(MODULES) * _MODULE.size:
        raise FormatError("corrupt .gcz file (overfit tile preamble size)")
    _, *sizes = head.unpack_from(preamble)
    try:
        arch = Architecture(*sizes)
    except ValueError as exc:
        raise FormatError(f"corrupt .gcz file ({exc})") from None
    layout = arch.parameters()
    steps, bins = {}, {}
    for j, m in enumerate(MODULES):
        steps[m], bins[m] = _MODULE.unpack_from(preamble, head.size + j * _MODULE.size)
        if steps[m] > MAX_STEP_BITS or bins[m] >= tables.SCALE_BINS:
            raise FormatError("corrupt .gcz file (overfit parameter step or table)")
    n_params = sum(int(np.prod(s)) for m in MODULES for _, s in layout[m])
    n_latents = sum(gh * gw for gh, gw in arch.grid_shapes(height, width))
    read: list[np.ndarray] = []
    try:
        reader = entropy.StreamReader(stream, coding, n_params + n_latents)
        params = {}
        for m in MODULES:
            size = sum(int(np.prod(s)) for _, s in layout[m])
            ints = reader.read(np.full(size, bins[m] * tables.MEAN_BINS + tables.PARAMETER_MEAN_BIN))
            if size and np.abs(ints).max() > WEIGHT_LIMIT:
                raise FormatError("corrupt .gcz file (overfit parameter out of range)")
            read.append(ints)
            start = 0
            for name, shape in layout[m]:
                n = int(np.prod(shape))
                params[name] = ints[start:start + n].reshape(shape).astype(np.float64)
                start += n
        dec = IntegerDecoder(arch, params, steps)

        def take(i: int, anchors: bool, shift: np.ndarray, index: np.ndarray) -> np.ndarray:
            read.append(reader.read(index))
            return read[-1]

        grids = dec.latents(height, width, take)
        reader.close()
    except entropy.EntropyDecodeError as exc:
        raise FormatError(f"corrupt .gcz file ({exc})") from None
    return dec, grids, symbols_crc(read)


def _best_step(cost) -> int:
    """The step exponent of least cost, by descent from FIRST_STEP (the cost is near unimodal in k)."""
    k, best = FIRST_STEP, cost(FIRST_STEP)
    for direction in (1, -1):
        moved = False
        while k + direction in STEP_CANDIDATES:
            c = cost(k + direction)
            if c >= best:
                break
            k, best, moved = k + direction, c, True
        if moved:
            break
    return k


def quantize(values: np.ndarray, k: int) -> np.ndarray:
    """Parameters as integers at step 2^-k (float64 holding integers), within +-WEIGHT_LIMIT."""
    return np.clip(np.round(values * (1 << k)), -WEIGHT_LIMIT, WEIGHT_LIMIT)


def symbol_bits(symbols: np.ndarray, index: np.ndarray, coding: entropy.Tables) -> float:
    """What symbols cost (bits) with these tables, escapes (the escape symbol + 32 bits) included."""
    pos = symbols.astype(np.int64) - coding.offset[index]
    escape = coding.escape(index)
    escaped = (pos < 0) | (pos >= escape)
    pos = np.where(escaped, escape, pos)
    freq = coding.cdf[index, pos + 1] - coding.cdf[index, pos]
    return float(-np.log2(freq / 2.0 ** tables.PRECISION).sum() + 32 * escaped.sum())


def _best_scale_bin(ints: np.ndarray, coding: entropy.Tables) -> tuple[int, float]:
    """The zero-mean table that codes these parameter integers in the fewest bits, and the bits."""
    if not ints.size:
        return 0, 0.0
    costs = [symbol_bits(ints, np.full(ints.size, k * tables.MEAN_BINS + tables.PARAMETER_MEAN_BIN), coding)
             for k in range(tables.SCALE_BINS)]
    best = int(np.argmin(costs))
    return best, costs[best]


def _latent_bits(dec: IntegerDecoder, latents: list[np.ndarray], coding: entropy.Tables) -> float:
    total = 0.0

    def take(i: int, anchors: bool, shift: np.ndarray, index: np.ndarray) -> np.ndarray:
        nonlocal total
        symbols = _known_symbols(latents, i, anchors, shift)
        total += symbol_bits(symbols, index, coding)
        return symbols

    dec.latents(*latents[0].shape, take)
    return total


def _known_symbols(latents: list[np.ndarray], i: int, anchors: bool, shift: np.ndarray) -> np.ndarray:
    """The encoder's symbols of one checkerboard pass: its latents minus the model's shifts."""
    return latents[i][checkerboard(*latents[i].shape, anchors)].astype(np.int64) - shift

"""One overfitted tile as streams, and back: parameter integers, symbols, the integer decoder.

A tile has two streams (docs/FORMAT.md):
- the preamble, raw bytes: version, the Architecture, and per parameter tensor (version 3; per
  module in versions 1 and 2) the step exponent k of its parameters (value = integer * 2^-k) and
  the scale bin of the zero-mean Laplace table their integers are coded with;
- one entropy stream (entropy.encode_chunks) of chunks in decoding order: each module's parameter
  integers, then per latent grid, coarsest first, its anchors and then its other half, each
  symbol coded with the table the integer entropy model picks from what was decoded before.

The encoder chooses each tensor's step by rate-distortion (parameter_steps.py) and then runs the
decoder's own integer code on the result, so its reconstruction is the decoder's by construction.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch

from .. import entropy
from ..container import FormatError
from ..family import symbols_crc
from . import parameter_steps, tables
from .architecture import MAX_STEP_BITS, MODULES, WEIGHT_LIMIT, Architecture
from .integer import IntegerDecoder, checkerboard
from .network import LATENT_GAIN, OverfitNet

# Preamble versions: 1 holds version, levels, synthesis width, ARM anchor width, ARM other width,
# then a step and a table per module; 2 adds the ancestors the ARMs read; 3 (what the encoder
# writes) has version 2's fields and a step and a table per parameter tensor.
_PREAMBLES = {1: struct.Struct("<5B"), 2: struct.Struct("<6B"), 3: struct.Struct("<6B")}
VERSION = 3
_ENTRY = struct.Struct("<2B")  # step exponent k, scale bin of the parameters' table


@dataclass(frozen=True)
class CodedTile:
    streams: tuple[bytes, bytes]  # preamble, entropy stream
    symbols_crc: int
    pixels: np.ndarray  # (h, w, 3) uint8: exactly what the decoder will make
    decoder: IntegerDecoder  # the quantized decoder the streams carry


def encode(net: OverfitNet, image: np.ndarray, lam: float, coding: entropy.Tables) -> CodedTile:
    """Quantize a trained tile model and code it; image is the tile's uint8 (h, w, 3) original."""
    h, w = image.shape[:2]
    layout = net.arch.parameters()
    steps = parameter_steps.choose(net, image, lam, coding)
    ints: dict[str, np.ndarray] = {}
    for m in MODULES:
        ints |= parameter_steps.quantize_module(
            {n: t.detach().cpu().double().numpy() for n, t in net.named_for_coding()[m]}, steps)
    dec = _decoder(net.arch, ints, steps)
    a = net.arch
    preamble = _PREAMBLES[VERSION].pack(VERSION, a.levels, a.synthesis_width, a.arm_anchor_width,
                                        a.arm_other_width, a.ancestors)
    chunks = []
    for m in MODULES:
        symbols, index = [], []
        for n, _ in layout[m]:
            scale_bin, _ = parameter_steps.bits(ints[n].ravel(), coding)
            preamble += _ENTRY.pack(steps[n], scale_bin)
            symbols.append(ints[n].ravel())
            index.append(np.full(ints[n].size, tables.parameter_table(scale_bin)))
        chunks.append((np.concatenate(symbols).astype(np.int32), np.concatenate(index)))
    latents = [torch.round(p.detach() * LATENT_GAIN).cpu().double().numpy() for p in net.latents]

    def take(i: int, anchors: bool, shift: np.ndarray, index: np.ndarray) -> np.ndarray:
        symbols = latents[i][checkerboard(*latents[i].shape, anchors)].astype(np.int64) - shift
        chunks.append((symbols.astype(np.int32), index))
        return symbols

    grids = dec.latents(h, w, take)
    stream = entropy.encode_chunks(chunks, coding)
    return CodedTile((preamble, stream), symbols_crc(s for s, _ in chunks), dec.synthesize(grids), dec)


def _decoder(arch: Architecture, ints: dict[str, np.ndarray], steps: dict[str, int]) -> IntegerDecoder:
    """The integer decoder of parameters sent as integers at their tensors' steps: each module
    computed at its finest step, its other tensors' integers scaled to it (exact: powers of two)."""
    layout = arch.parameters()
    module_steps = {m: parameter_steps.module_step(steps, [n for n, _ in layout[m]])
                    for m in MODULES}
    params = {n: ints[n] * float(1 << (module_steps[m] - steps[n])) for m in MODULES for n, _ in layout[m]}
    return IntegerDecoder(arch, params, module_steps)


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
    if len(preamble) < head.size:
        raise FormatError("corrupt .gcz file (overfit tile preamble size)")
    _, *sizes = head.unpack_from(preamble)
    try:
        arch = Architecture(*sizes)
    except ValueError as exc:
        raise FormatError(f"corrupt .gcz file ({exc})") from None
    layout = arch.parameters()
    # version 3: an entry per tensor; 1 and 2: an entry per module, for each of its tensors
    if version == 3:
        groups = [[n] for m in MODULES for n, _ in layout[m]]
    else:
        groups = [[n for n, _ in layout[m]] for m in MODULES]
    if len(preamble) != head.size + len(groups) * _ENTRY.size:
        raise FormatError("corrupt .gcz file (overfit tile preamble size)")
    steps, bins = {}, {}
    for j, names in enumerate(groups):
        k, b = _ENTRY.unpack_from(preamble, head.size + j * _ENTRY.size)
        if k > MAX_STEP_BITS or b >= tables.SCALE_BINS:
            raise FormatError("corrupt .gcz file (overfit parameter step or table)")
        for n in names:
            steps[n], bins[n] = k, b
    n_params = sum(int(np.prod(s)) for m in MODULES for _, s in layout[m])
    n_latents = sum(gh * gw for gh, gw in arch.grid_shapes(height, width))
    read: list[np.ndarray] = []
    try:
        reader = entropy.StreamReader(stream, coding, n_params + n_latents)
        ints = {}
        for m in MODULES:
            k_m = parameter_steps.module_step(steps, [n for n, _ in layout[m]])
            sizes = [int(np.prod(shape)) for _, shape in layout[m]]
            index = [np.full(size, tables.parameter_table(bins[n])) for (n, _), size in zip(layout[m], sizes)]
            read.append(reader.read(np.concatenate(index)))
            start = 0
            for (name, shape), size in zip(layout[m], sizes):
                values = read[-1][start:start + size]
                if size and np.abs(values).max() > WEIGHT_LIMIT >> (k_m - steps[name]):
                    raise FormatError("corrupt .gcz file (overfit parameter out of range)")
                ints[name] = values.reshape(shape).astype(np.float64)
                start += size
        dec = _decoder(arch, ints, steps)

        def take(i: int, anchors: bool, shift: np.ndarray, index: np.ndarray) -> np.ndarray:
            read.append(reader.read(index))
            return read[-1]

        grids = dec.latents(height, width, take)
        reader.close()
    except entropy.EntropyDecodeError as exc:
        raise FormatError(f"corrupt .gcz file ({exc})") from None
    return dec, grids, symbols_crc(read)



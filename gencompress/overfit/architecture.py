"""The shape of an overfitted decoder: sizes, parameter layout, context neighbourhoods, fixed point.

Both sides read this module: the encoder's float network (network.py) and the integer decoder
(integer.py). A tile's Architecture travels in its preamble, so a file says which decoder it needs.

The decoder, for a tile of H x W pixels:
- latent grids: `levels` one-channel grids, grid i of ceil(H / 2^i) x ceil(W / 2^i) integers;
- entropy model (ARM): two small MLPs read a latent's context and give a Laplace mean and log-scale.
  Grids decode from the coarsest to the finest, each in two checkerboard passes: anchors
  ((row + col) even) see the 3x3 neighbourhood of their parent in the coarser grid; the other
  half also sees the 12 anchors around them (odd Manhattan offsets within distance 2). Both may
  also read `ancestors` grids beyond the parent, grid i+1+d at the co-located position
  ((y // 2) >> d, (x // 2) >> d): what a latent's wider surroundings hold, for a few more weights.
  An ARM's inputs, in order: the 12 neighbours (other half only), the 9 parent values, the
  ancestors from the nearest;
- upsampling: each x2 step has a learned separable, symmetric 4-tap-per-phase filter (8 taps);
  the coarsest grid is upsampled, the next grid joins as a channel, and so on to full resolution;
- synthesis: 1x1 layers levels -> width -> 3 (ReLU), then two residual 3x3 convolutions 3 -> 3.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# Fixed point (integer.py): activations are integers at scale 2^-FRACTION_BITS; every product and
# sum stays below 2^53, so float64 arithmetic on them is exact on any machine.
FRACTION_BITS = 12
ACTIVATION_LIMIT = 1 << 28  # activations are clipped to +-this (at 2^-12: +-65536)
LATENT_LIMIT = 1 << 15  # latent values seen by the networks are clipped to +-this
WEIGHT_LIMIT = 1 << 16  # quantized parameters lie within +-this
MAX_STEP_BITS = 16  # parameter steps are 2^-k, k in 0..MAX_STEP_BITS

PARENT_OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
NEIGHBOUR_OFFSETS = ((-1, 0), (0, -1), (0, 1), (1, 0), (-2, -1), (-2, 1), (-1, -2), (-1, 2),
                     (1, -2), (1, 2), (2, -1), (2, 1))  # odd offsets: the anchors around a non-anchor

# Initial upsampling taps (phase 0: output 2k from inputs k-2 .. k+1): Keys' cubic, a = -0.5.
CUBIC_TAPS = (-0.0234375, 0.2265625, 0.8671875, -0.0703125)

MODULES = ("arm_anchor", "arm_other", "upsampling", "synthesis")


@dataclass(frozen=True)
class Architecture:
    levels: int = 7
    synthesis_width: int = 24
    arm_anchor_width: int = 8
    arm_other_width: int = 12
    ancestors: int = 0  # coarser grids beyond the parent that the entropy model reads (at most levels - 2)

    LIMITS = {"levels": (1, 12), "synthesis_width": (1, 64), "arm_anchor_width": (1, 32), "arm_other_width": (1, 32),
              "ancestors": (0, 10)}

    def __post_init__(self) -> None:
        for name, (lo, hi) in self.LIMITS.items():
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(f"overfit architecture: {name} {getattr(self, name)} outside {lo}..{hi}")
        if self.ancestors > max(self.levels - 2, 0):
            raise ValueError(f"overfit architecture: {self.ancestors} ancestors of {self.levels} levels "
                             f"(at most {max(self.levels - 2, 0)})")

    def __repr__(self) -> str:
        """The dataclass's, without `ancestors` when 0: benchmarks key cached rows by an effort's
        repr, and an architecture that reads none is what every effort was before the field."""
        shown = (f for f in dataclasses.fields(self) if f.name != "ancestors" or self.ancestors)
        return f"Architecture({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in shown)})"

    def grid_shapes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Shapes of the latent grids, finest (full resolution) first."""
        return [(-(-height >> i), -(-width >> i)) for i in range(self.levels)]

    def parameters(self) -> dict[str, list[tuple[str, tuple[int, ...]]]]:
        """Per module, its tensors in coding order: (name, shape). Linear weights are (out, in)."""
        a, o, s, n = self.arm_anchor_width, self.arm_other_width, self.synthesis_width, self.levels
        pa = len(PARENT_OFFSETS) + self.ancestors
        no = len(NEIGHBOUR_OFFSETS) + pa
        return {
            "arm_anchor": _mlp("arm_anchor", (pa, a, a, 2)),
            "arm_other": _mlp("arm_other", (no, o, o, 2)),
            "upsampling": [("upsampling.taps", (max(n - 1, 0), 4))],
            "synthesis": [("synthesis.0.weight", (s, n)), ("synthesis.0.bias", (s,)),
                          ("synthesis.1.weight", (3, s)), ("synthesis.1.bias", (3,)),
                          ("synthesis.2.weight", (3, 3, 3, 3)), ("synthesis.2.bias", (3,)),
                          ("synthesis.3.weight", (3, 3, 3, 3)), ("synthesis.3.bias", (3,))],
        }


def _mlp(name: str, sizes: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    out = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        out += [(f"{name}.{i}.weight", (fan_out, fan_in)), (f"{name}.{i}.bias", (fan_out,))]
    return out

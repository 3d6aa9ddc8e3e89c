"""Named models: architecture, constructor arguments and shipped weight file.

Importing this module is cheap (no torch): `gencompress models` and `info` list models without
loading a network. build() and load() import the architecture on demand.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
EFFORTS = ("fast", "default", "high")  # overfit/presets.py defines them


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    target: str  # "module:Class" under gencompress.models: the network ("" when the family builds its own)
    config: dict[str, Any] = field(default_factory=dict)
    coder: str = "models.amortized:AmortizedCoder"  # "module:Class" under gencompress: its family (family.py)
    efforts: tuple[str, ...] = ()  # effort presets, for models that optimize while encoding

    @property
    def weights(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.safetensors"

    @property
    def gan_weights(self) -> Path:
        """The GAN decoder ("sharpen") trained for this model's shipped weights, beside them."""
        return WEIGHTS_DIR / f"{self.name}.gan.safetensors"

    @property
    def trainable(self) -> bool:
        """Whether `gencompress train` can train it (an amortized network; overfit trains per image)."""
        return bool(self.target)

    @property
    def shipped(self) -> bool:
        """Whether this version carries trained weights for it (else it can only be trained)."""
        return self.weights.is_file()


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("ae", "autoencoder, factorized prior (Ballé 2017), 8 qualities by gains",
                  "ae:FactorizedPrior", {"n": 128, "m": 192}),
        ModelSpec("vae", "mean-scale hyperprior (Minnen 2018, no context), 8 qualities by gains",
                  "vae:MeanScaleHyperprior", {"n": 128, "m": 192}),
        ModelSpec("vae-ctx", "mean-scale hyperprior + checkerboard context (He 2021, 2 passes), 8 qualities by gains",
                  "vae_ctx:CheckerboardHyperprior", {"n": 128, "m": 192}),
        ModelSpec("overfit", "per-image overfitted codec (Cool-chic family): latent grids and a ~1k-parameter "
                  "decoder fitted to each tile and sent in the file; exact integer decoder",
                  "", coder="overfit.coder:OverfitCoder", efforts=EFFORTS),
    )
}
DEFAULT_MODEL = "vae"  # of the library (Codec, encode, numcodecs, zarr, Pillow): 1.4 s a Kodak image
# Of the `gencompress encode` command: the best rate-distortion within 60 s per Kodak image on 2
# cores (issue 11's rule; overfit at the default effort, recipe 9: -31.0% against JPEG; its 300
# steps took 70-76 s under recipe 7 on a machine where recipe 6's 220 steps took 69-74 s and
# earlier 54-64 s, README "Efforts"; vae
# +66.5% in 1.4 s, 0.9 s before exact decoding; `python benchmarks/kodak_overfit.py`, `python
# benchmarks/kodak_models.py`).
ENCODE_DEFAULT_MODEL = "overfit"


def shipped_names() -> list[str]:
    """Registered models with weights in this installation: what encode, decode and bench can use."""
    return [name for name, s in MODELS.items() if s.shipped]


def spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r} (known: {', '.join(MODELS)})") from None


def build(name: str, **overrides: Any):
    """A freshly initialised (untrained) network of the named architecture."""
    s = spec(name)
    module_name, cls_name = s.target.split(":")
    with warnings.catch_warnings():  # compressai decorates with torch.jit.script, which torch 2.15 deprecates
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
        module = importlib.import_module(f"{__package__}.{module_name}")
    return getattr(module, cls_name)(**(s.config | overrides))

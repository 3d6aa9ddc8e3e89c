"""Shared fixtures: a small natural test image (a crop of Kodak kodim23) and encoded files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def rgb() -> np.ndarray:
    """(80, 96, 3) uint8."""
    return np.asarray(Image.open(DATA / "parrot_96x80.png").convert("RGB")).copy()


@pytest.fixture(scope="session")
def small_gcz(rgb) -> bytes:
    """A small valid .gcz file (vae, quality 1) to corrupt in every way."""
    import gencompress

    return gencompress.encode(rgb[:16, :24], model="vae", quality=1, device="cpu")

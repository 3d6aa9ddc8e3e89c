"""How model state is stored in shipped weight files, and loaded back.

- Tensors of at least HALF_MIN_ELEMENTS floats (the convolutions) are stored as float16; small
  tensors (biases, GDN and entropy-model parameters) keep float32.
- CompressAI's integer CDF tables (`*._quantized_cdf`, int32, 16-bit precision) are stored as
  uint16 symbol frequencies: every symbol has a frequency of at least 1 and a table has at least 2
  symbols, so each fits 16 bits; load rebuilds the CDF by a cumulative sum. This halves the tables.
"""

from __future__ import annotations

import json
import struct

import torch
from safetensors.torch import load

HALF_MIN_ELEMENTS = 4096
CDF_SUFFIX = "._quantized_cdf"


def shipped_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state_dict in shipped form (float16 convolutions, uint16 CDF frequencies)."""
    state = model.state_dict()
    out = {}
    for key, value in state.items():
        if key.endswith(CDF_SUFFIX) and value.ndim == 2:
            length = state[key[: -len(CDF_SUFFIX)] + "._cdf_length"]
            freq = torch.diff(value, dim=1)
            valid = torch.arange(freq.shape[1])[None] < (length[:, None] - 1)
            value = torch.where(valid, freq, 0).to(torch.uint16)
        elif value.is_floating_point() and value.numel() >= HALF_MIN_ELEMENTS:
            value = value.half()
        out[key] = value.contiguous()
    return out


def from_shipped(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of shipped_state: float32 floats and int32 CDF tables (zero-filled past each length)."""
    out = {}
    for key, value in state.items():
        if key.endswith(CDF_SUFFIX) and value.ndim == 2:
            cdf = torch.cumsum(value.to(torch.int32), dim=1, dtype=torch.int32)
            length = state[key[: -len(CDF_SUFFIX)] + "._cdf_length"]
            valid = torch.arange(cdf.shape[1] + 1)[None] < length[:, None]
            value = torch.where(valid, torch.nn.functional.pad(cdf, (1, 0)), 0)
        elif value.is_floating_point():
            value = value.float()
        out[key] = value
    return out


def load_weights(model: torch.nn.Module, data: bytes, partial: bool = False) -> torch.nn.Module:
    """Load a shipped weight file's bytes into model, sizing the coding-table buffers first (they start empty).

    partial=True loads only the tensors whose name and shape the model shares (to start one
    architecture from another's transforms) and requires at least one of them.
    """
    state = from_shipped(load(data))
    if partial:
        own = model.state_dict()
        state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape and own[k].numel()}
        if not state:
            raise ValueError("the weights share no tensor with this model")
    return load_state(model, state, strict=not partial)


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], strict: bool = True) -> torch.nn.Module:
    """load_state_dict, after resizing buffers whose size is data (the coding tables, empty until computed)."""
    for key, value in state.items():
        module_path, _, name = key.rpartition(".")
        module = model.get_submodule(module_path)
        if name in module._buffers and module._buffers[name].shape != value.shape:
            module._buffers[name] = torch.empty_like(value)
    model.load_state_dict(state, strict=strict)
    return model


def weights_metadata(data: bytes) -> dict[str, str]:
    """The string metadata of a safetensors file's bytes (model name, recipe ...), without loading tensors."""
    if len(data) < 8:
        raise ValueError("not a safetensors file (too short)")
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise ValueError("not a safetensors file (header length out of range)")
    return json.loads(data[8:8 + length]).get("__metadata__") or {}

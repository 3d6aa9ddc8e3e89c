"""Shipped weight storage: half-precision convolutions, CDF tables restored exactly."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from gencompress.models import registry
from gencompress.models.storage import HALF_MIN_ELEMENTS, from_shipped, load_weights, shipped_state


def test_tables_round_trip_exactly_and_weights_load(tmp_path):
    model = registry.build("vae", n=16, m=24)
    model.update_tables()
    state = model.state_dict()
    shipped = shipped_state(model)
    assert shipped["gaussian._quantized_cdf"].dtype == torch.uint16
    assert all(v.dtype == torch.float16 for k, v in shipped.items() if v.is_floating_point() and v.numel() >= HALF_MIN_ELEMENTS)
    restored = from_shipped(shipped)
    for key, value in state.items():
        if key.endswith("._quantized_cdf"):
            length = state[key.replace("._quantized_cdf", "._cdf_length")]
            for row, n in enumerate(length.tolist()):
                assert torch.equal(restored[key][row, :n], value[row, :n]), key
    save_file(shipped, tmp_path / "w.safetensors")
    fresh = load_weights(registry.build("vae", n=16, m=24), (tmp_path / "w.safetensors").read_bytes())
    assert torch.equal(fresh.gaussian._quantized_cdf, restored["gaussian._quantized_cdf"])
    for key in ("g_a.0.weight", "g_a.2.weight"):  # 1200 float32 elements; 6400 stored as float16
        assert torch.equal(fresh.state_dict()[key], shipped[key].float()), key
    assert shipped["g_a.2.weight"].dtype == torch.float16


def test_partial_load_takes_the_shared_tensors_only(tmp_path):
    import pytest

    vae = registry.build("vae", n=16, m=24)
    vae.update_tables()
    save_file(shipped_state(vae), tmp_path / "vae.safetensors")
    data = (tmp_path / "vae.safetensors").read_bytes()
    ae = registry.build("ae", n=16, m=24)
    before = {k: v.clone() for k, v in ae.state_dict().items()}
    load_weights(ae, data, partial=True)
    shipped = from_shipped(shipped_state(vae))
    assert torch.equal(ae.g_s[0].weight, shipped["g_s.0.weight"]) and torch.equal(ae.gains.gain, shipped["gains.gain"])
    assert torch.equal(ae.entropy_y.bottlenecks[0].quantiles, before["entropy_y.bottlenecks.0.quantiles"])
    with pytest.raises(ValueError, match="share no tensor"):
        load_weights(registry.build("ae", n=8, m=12), _other(tmp_path), partial=True)


def _other(tmp_path) -> bytes:
    save_file({"unrelated.weight": torch.zeros(3)}, tmp_path / "x.safetensors")
    return (tmp_path / "x.safetensors").read_bytes()

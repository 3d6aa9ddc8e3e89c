"""vae-ctx: the checkerboard context model codes in two passes and its decoder agrees exactly with its encoder."""

from __future__ import annotations

import torch
from PIL import Image

from gencompress import entropy
from gencompress.models import registry
from gencompress.models.storage import load_weights
from gencompress.models.vae_ctx import anchor_mask
from gencompress.train.loop import TrainConfig, Trainer


def tiny_model():
    torch.manual_seed(0)
    model = registry.build("vae-ctx", n=16, m=24).eval()
    model.update_tables()
    return model, {k: entropy.Tables(*t) for k, t in model.tables().items()}


def code(model, tables, x, quality):
    streams, y_in = model.code(model.analyze(x, quality), quality)
    coded = [entropy.encode(sym, idx, tables[name]) for sym, idx, name in streams]
    stored = iter(coded)
    read = model.read_latents((x.shape[2] // 16, x.shape[3] // 16), quality,
                              lambda idx, name: entropy.decode(next(stored), idx, tables[name]), torch.device("cpu"))
    return streams, coded, model.synthesize(y_in), model.synthesize(read)


def test_anchor_mask_is_a_checkerboard():
    m = anchor_mask(3, 4)[0, 0]
    assert m.tolist() == [[True, False, True, False], [False, True, False, True], [True, False, True, False]]


def test_encoder_and_decoder_agree_exactly():
    model, tables = tiny_model()
    for seed, quality in ((1, 0), (2, 5)):
        x = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(seed))
        streams, coded, x_hat, decoded = code(model, tables, x, quality)
        assert torch.equal(x_hat, decoded)
        # z, then the anchors, then the non-anchors: half of the latent positions each
        assert [name for _, _, name in streams] == [f"z{quality}", "gaussian", "gaussian"]
        assert streams[1][0].size == streams[2][0].size == 24 * 8 * 12 // 2


def test_training_pass_matches_coding():
    """The training forward (rounded latents, STE) reconstructs what encode() does, and estimates its rate."""
    model, tables = tiny_model()
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model(x, torch.tensor([4]))
    _, coded, x_hat, _ = code(model, tables, x, 4)
    torch.testing.assert_close(out["x_hat"], x_hat, atol=1e-4, rtol=0)
    assert out["bits"].item() / 8 > 0 and sum(map(len, coded)) > 0


def test_context_changes_the_non_anchor_parameters():
    """A trained-looking context (non-zero weights) must alter the non-anchors' code, not the anchors'."""
    model, tables = tiny_model()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    before, _, _, _ = code(model, tables, x, 2)
    with torch.no_grad():
        model.context.weight.mul_(50)
    model._ctx64 = None  # the float64 copy is made once; drop it after editing weights
    after, _, _, decoded = code(model, tables, x, 2)
    assert (before[1][1] == after[1][1]).all()  # anchors: same tables
    assert (before[2][1] != after[2][1]).any()  # non-anchors: the context moved their scales


def test_vae_weights_warm_start_vae_ctx(tmp_path, rgb):
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(rgb).save(data / "0.png")
    cfg = TrainConfig(model="vae-ctx", data=[str(data)], out=str(tmp_path / "run"), steps=1, batch=1, patch=64,
                      init=str(registry.spec("vae").weights))
    trainer = Trainer(cfg)
    shipped = registry.build("vae")
    load_weights(shipped, registry.spec("vae").weights.read_bytes())
    assert torch.equal(trainer.model.g_s[0].weight, shipped.g_s[0].weight)
    assert trainer.model.entropy_parameters[0].weight.abs().sum() > 0  # new modules keep their initialisation

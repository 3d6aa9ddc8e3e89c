"""The overfitted codec: round trips, exact integer decoding on any machine, parameter coding, hostile files.

Tests optimize for a handful of steps on tiny images (the `fast` preset is shortened here); what
they check does not depend on how good the fit is.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

import gencompress
from gencompress import container, entropy
from gencompress.codec import load_model
from gencompress.models import registry
import time

from gencompress.overfit import bitstream, fit, latent_search, parameter_steps, presets, starting, tables
from gencompress.overfit.architecture import MODULES, Architecture
from gencompress.overfit.network import OverfitNet

FEW_STEPS = presets.Effort(steps=4)


@pytest.fixture(autouse=True)
def few_steps(monkeypatch):
    monkeypatch.setitem(presets.EFFORTS, "fast", FEW_STEPS)


def natural(rgb: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.ascontiguousarray(np.tile(rgb, (-(-h // rgb.shape[0]), -(-w // rgb.shape[1]), 1))[:h, :w])


def overfit(image, quality=4, **kw) -> bytes:
    return gencompress.encode(image, model="overfit", quality=quality, effort="fast", device="cpu", **kw)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 9, 3), (13, 1, 3), (17, 23, 3), (31, 40), (20, 26, 4)])
def test_round_trip_at_many_sizes_and_layouts(rgb, shape):
    image = natural(rgb, *shape[:2])
    if len(shape) == 2:
        image = image[:, :, 1].copy()
    elif shape[2] == 4:
        image = np.dstack([image, np.arange(shape[0] * shape[1], dtype=np.uint8).reshape(shape[:2])])
    data = overfit(image)
    decoded = gencompress.decode(data)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    if len(shape) == 3 and shape[2] == 4:
        np.testing.assert_array_equal(decoded[..., 3], image[..., 3])
    assert container.unpack(data).header.model == "overfit"


def test_tiles_regions_and_batches(rgb):
    image = natural(rgb, 150, 200)
    data = overfit(image, tile_size=128)
    header = container.unpack(data).header
    assert header.grid.count == 4
    full = gencompress.decode(data)
    np.testing.assert_array_equal(gencompress.decode(data, region=(100, 90, 60, 50)), full[90:140, 100:160])
    codec = gencompress.Codec(model="overfit", effort="fast", device="cpu")
    for pixels in codec.decode_many([data, data]):
        np.testing.assert_array_equal(pixels, full)


@pytest.mark.parametrize("ancestors", [0, 3])
def test_decoded_pixels_are_the_encoders_reconstruction_and_parameters_round_trip(rgb, ancestors):
    coding = load_model("overfit", "cpu").tables
    image = natural(rgb, 24, 36)
    lam = presets.LAMBDAS[3]
    effort = presets.Effort(steps=4, arch=Architecture(ancestors=ancestors))
    net = fit.fit(image, lam, effort, torch.device("cpu"), quality=4)  # (shipped starting points, padded)
    coded = bitstream.encode(net, image, lam, coding)
    assert coded.streams[0][0] == 3  # the preamble version the encoder writes
    dec, grids, crc = bitstream.parse(coded.streams, 24, 36, coding)
    assert crc == coded.symbols_crc
    assert dec.steps == coded.decoder.steps and dec.arch == net.arch
    for name, value in coded.decoder.params.items():
        np.testing.assert_array_equal(dec.params[name], value)  # every quantized parameter, exactly
    np.testing.assert_array_equal(dec.synthesize(grids), coded.pixels)
    expected = [np.round(p.detach().numpy() * 16) for p in net.latents]
    for got, want in zip(grids, expected):
        np.testing.assert_array_equal(got, want)


def test_the_decoder_gives_the_same_pixels_in_bands_on_any_number_of_threads(rgb, monkeypatch):
    """Bands of a layer run on several threads (integer._map), BLAS held at one thread meanwhile:
    the same integers however many bands and threads, and BLAS's thread count is given back."""
    from threadpoolctl import threadpool_info

    from gencompress.overfit import integer

    data = overfit(natural(rgb, 40, 56), quality=6)
    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    monkeypatch.setattr(integer, "threads", lambda: 1)
    once = gencompress.decode(data)
    monkeypatch.setattr(integer, "ROW_BLOCK", 16)  # dozens of bands a layer
    for n in (1, 2, 3):
        monkeypatch.setattr(integer, "threads", lambda n=n: n)
        np.testing.assert_array_equal(gencompress.decode(data), once)
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == blas
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:  # decodes in several threads at once, sharing the bands' pool
        for pixels in pool.map(gencompress.decode, [data] * 6):
            np.testing.assert_array_equal(pixels, once)
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == blas

    import multiprocessing

    with multiprocessing.get_context("fork").Pool(1) as pool:  # a child forked after decoding decodes too
        np.testing.assert_array_equal(pool.apply_async(gencompress.decode, (data,)).get(timeout=120), once)

    def fails(item):
        raise ValueError(item)

    with pytest.raises(ValueError):  # a band's error reaches the caller
        integer._map(fails, range(4))


def test_steps_are_chosen_per_tensor_and_leave_the_fitted_net_as_it_was(rgb):
    coding = load_model("overfit", "cpu").tables
    image = natural(rgb, 24, 36)
    lam = presets.LAMBDAS[1]
    net = fit.fit(image, lam, presets.Effort(steps=4), torch.device("cpu"), quality=2)
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    steps = parameter_steps.choose(net, image, lam, coding)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert list(steps) == [n for m in MODULES for n, _ in net.arch.parameters()[m]]
    assert all(k in parameter_steps.CANDIDATES for k in steps.values())
    ints = parameter_steps.quantize_module({"a": np.array([30.0, -0.01]), "b": np.array([0.5])}, {"a": 2, "b": 14})
    np.testing.assert_array_equal(ints["a"], [16, 0])  # 30 at 2^-2 is 120, but scaled to 2^-14: 2^16 / 2^12 at most
    np.testing.assert_array_equal(ints["b"], [8192])


def test_parameter_quantization_reconstructs_within_half_a_step():
    values = np.random.default_rng(0).normal(0, 0.7, 500)
    for k in (4, 8, 12):
        ints = parameter_steps.quantize(values, k)
        assert np.abs(ints * 2.0 ** -k - values).max() <= 2.0 ** -k / 2 + 1e-12
        data = entropy.encode_chunks([(ints.astype(np.int32), np.full(ints.size, 40 * 16 + 8))],
                                     load_model("overfit", "cpu").tables)
        reader = entropy.StreamReader(data, load_model("overfit", "cpu").tables, ints.size)
        np.testing.assert_array_equal(reader.read(np.full(ints.size, 40 * 16 + 8)), ints)
        reader.close()


@pytest.mark.parametrize("bf16", [False, True])
def test_a_few_steps_lower_the_loss_in_either_precision_of_the_synthesis(rgb, monkeypatch, bf16):
    monkeypatch.setattr(fit, "bfloat16_synthesis", lambda device: bf16)
    image = natural(rgb, 32, 32)
    lam = presets.LAMBDAS[3]

    def loss(steps: int) -> float:
        net = fit.fit(image, lam, presets.Effort(steps=steps), torch.device("cpu"))
        target = torch.tensor(image).permute(2, 0, 1).float() / 255
        with torch.no_grad():
            grids = net.quantize("round")
            return float(((net.synthesize(grids) - target) ** 2).mean() + lam * net.rate(grids) / image[..., 0].size)

    assert loss(30) < 0.5 * loss(0)


@pytest.mark.parametrize("ancestors", [0, 2])
def test_position_bits_are_the_passes_bits_where_each_latent_is(ancestors):
    net = OverfitNet(Architecture(levels=4, ancestors=ancestors), 13, 18, seed=1)
    rng = np.random.default_rng(0)
    grids = [torch.tensor(rng.integers(-5, 6, size=p.shape), dtype=torch.float32) for p in net.latents]
    with torch.no_grad():
        for i in range(len(grids)):
            bits = net.position_bits(grids, i)
            total = sum(net.pass_bits(m, v, f) for m, v, f, _ in net.grid_passes(grids, i))
            assert bits.shape == grids[i].shape and torch.allclose(bits.sum(), total, rtol=1e-5)
            one = grids[i].clone()
            one[-1, -1] += 3  # the last latent's bits change there, and its own are read there
            moved = net.position_bits(grids[:i] + [one] + grids[i + 1:], i)
            assert moved[-1, -1] != bits[-1, -1]


def test_the_latent_search_lowers_the_loss_and_leaves_integers(rgb):
    image = natural(rgb, 40, 56)
    lam = presets.LAMBDAS[4]
    net = fit.fit(image, lam, presets.Effort(steps=12), torch.device("cpu"), quality=5)
    target = torch.tensor(image).permute(2, 0, 1).float() / 255

    def loss() -> float:
        with torch.no_grad():
            grids = net.quantize("round")
            return float(((net.synthesize(grids) - target) ** 2).mean() + lam * net.rate(grids) / image[..., 0].size)

    before, coarse = loss(), [p.detach().clone() for p in net.latents[1:]]
    moved = latent_search.search(net, target, lam)
    after = loss()
    assert moved > 0 and after < before
    scaled = net.latents[0].detach() * 16
    assert torch.equal(scaled, torch.round(scaled))  # what the hard phase and the coder will round to
    assert all(torch.equal(p, q) for p, q in zip(net.latents[1:], coarse))  # coarser grids untouched
    assert latent_search.search(net, target, lam) == 0  # nothing left between two roundings
    for searched in (False, True):  # fit() searches where the effort asks it to
        net = fit.fit(image, lam, presets.Effort(steps=4, latent_search=searched), torch.device("cpu"), quality=5)
        scaled = net.latents[0].detach() * 16
        assert torch.equal(scaled, torch.round(scaled)) == searched
    net = fit.fit(image, lam, presets.Effort(steps=4, latent_search=True), torch.device("cpu"), quality=5,
                  budget=fit.Budget(0.3))  # not under a time budget
    scaled = net.latents[0].detach() * 16
    assert not torch.equal(scaled, torch.round(scaled))


def test_the_synthesis_runs_in_bfloat16_only_where_the_cpu_has_it(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert fit.bfloat16_synthesis(cpu)
    assert not fit.bfloat16_synthesis(torch.device("cuda"))
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")  # ATEN_CPU_CAPABILITY=avx2
    assert not fit.bfloat16_synthesis(cpu)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert not fit.bfloat16_synthesis(cpu)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)  # a torch without the probe
    assert not fit.bfloat16_synthesis(cpu)


def test_the_hard_phase_trains_the_networks_on_the_latents_as_they_are(rgb):
    """Rounded latents are constants: straight-through gradients let latents left near +-0.5
    drift across and cost bits (fit.py)."""
    from gencompress.overfit.network import OverfitNet

    image = natural(rgb, 16, 24)
    target = torch.tensor(image).permute(2, 0, 1).float() / 255
    net = OverfitNet(Architecture(levels=3), 16, 24)
    with torch.no_grad():
        for p in net.latents:
            p.normal_(0, 0.2)
    latents = [p.detach().clone() for p in net.latents]
    networks = [p.detach().clone() for p in net.network_parameters()]
    fit.optimize([net], [target], presets.LAMBDAS[3], presets.Effort(steps=3, hard_fraction=1.0))
    assert all(torch.equal(a, b) for a, b in zip(latents, net.latents))
    assert not all(torch.equal(a, b) for a, b in zip(networks, net.network_parameters()))
    fit.optimize([net], [target], presets.LAMBDAS[3], presets.Effort(steps=3, hard_fraction=0.0))
    assert not all(torch.equal(a, b) for a, b in zip(latents, net.latents))


def test_the_upsampling_filters_move_at_their_own_learning_rate(rgb):
    from gencompress.overfit.network import OverfitNet

    image = natural(rgb, 16, 24)
    target = torch.tensor(image).permute(2, 0, 1).float() / 255
    moved = {}
    for scale in (0.0, 0.1, 1.0):
        net = OverfitNet(Architecture(levels=3), 16, 24)
        taps, others = net.weights["upsampling_taps"].detach().clone(), net.weights["synthesis_0_weight"].detach().clone()
        fit.optimize([net], [target], presets.LAMBDAS[3], presets.Effort(steps=5, upsampling_learning_rate_scale=scale))
        moved[scale] = float((net.weights["upsampling_taps"].detach() - taps).abs().max())
        assert not torch.equal(others, net.weights["synthesis_0_weight"])
    assert moved[0.0] == 0 and 0 < moved[0.1] < moved[1.0]
    assert presets.EFFORTS["high"].upsampling_learning_rate_scale == 0.1
    assert presets.EFFORTS["default"].upsampling_learning_rate_scale == 1.0


def test_the_learning_rate_holds_its_peak_then_falls_by_a_cosine(rgb, monkeypatch):
    from gencompress.overfit.network import OverfitNet

    assert fit.rate_factor(0.0, 0.3) == fit.rate_factor(0.3, 0.3) == 1.0
    assert fit.rate_factor(0.65, 0.3) == pytest.approx(0.5) and fit.rate_factor(1.0, 0.3) == pytest.approx(0.0)
    assert fit.rate_factor(0.5, 0.0) == pytest.approx(0.5)  # hold 0: the cosine over the whole fit
    rates = []
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: (rates.append(self.param_groups[0]["lr"]),
                                                                         step(self, *a, **k))[1])
    image = natural(rgb, 16, 24)
    target = torch.tensor(image).permute(2, 0, 1).float() / 255
    effort = presets.Effort(steps=11, learning_rate_hold=0.3)
    fit.optimize([OverfitNet(Architecture(levels=3), 16, 24)], [target], presets.LAMBDAS[3], effort)
    peak = effort.learning_rate
    assert rates[:4] == [peak] * 4 and all(a > b for a, b in zip(rates[3:], rates[4:])) and rates[-1] < 1e-12
    assert presets.EFFORTS["default"].learning_rate_hold == 0.3


def latent_contexts(grids: list, ancestors: int):
    """Every latent's context as architecture.py describes it, gathered one by one: per grid from
    the coarsest, per checkerboard pass (anchors first), in raster order, (grid, anchors, y, x,
    context) with the context a list of values (the other half: 12 neighbours, then for both the 9
    parent values and the ancestors from the nearest; zero outside a grid or above the coarsest)."""
    from gencompress.overfit.architecture import NEIGHBOUR_OFFSETS, PARENT_OFFSETS

    def at(i, y, x):
        inside = i < len(grids) and 0 <= y < grids[i].shape[0] and 0 <= x < grids[i].shape[1]
        return grids[i][y, x] if inside else 0 * grids[0][0, 0]

    for i in reversed(range(len(grids))):
        for anchors in (True, False):
            for y in range(grids[i].shape[0]):
                for x in range(grids[i].shape[1]):
                    if ((y + x) % 2 == 0) != anchors:
                        continue
                    above = [at(i + 1, y // 2 + dy, x // 2 + dx) for dy, dx in PARENT_OFFSETS]
                    above += [at(i + 1 + d, (y // 2) >> d, (x // 2) >> d) for d in range(1, ancestors + 1)]
                    near = [] if anchors else [at(i, y + dy, x + dx) for dy, dx in NEIGHBOUR_OFFSETS]
                    yield i, anchors, y, x, near + above


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (5, 1), (2, 3), (7, 9), (12, 5), (19, 27)])
@pytest.mark.parametrize("ancestors", [0, 2])
def test_the_rate_is_the_entropy_model_latent_by_latent(shape, ancestors):
    """network.rate gathers contexts for whole checkerboard passes at once; it must equal the
    entropy model applied to each latent's context, gathered one by one."""
    from gencompress.overfit.kernels import laplace_bits
    from gencompress.overfit.network import LOG_SCALE_RANGE, PROBABILITY_FLOOR, OverfitNet

    torch.manual_seed(0)
    net = OverfitNet(Architecture(levels=4, ancestors=ancestors), *shape, seed=1)
    with torch.no_grad():  # small enough that no scale is clamped: every context counts
        for p in net.latents:
            p.normal_(0, 0.2)
        for p in net.network_parameters():
            p.normal_(0, 0.1)
    grids = net.quantize("round")

    def mlp(module: str, x: torch.Tensor) -> torch.Tensor:
        w = net.weights
        for i in range(3):
            x = w[f"{module}_{i}_weight"] @ x + w[f"{module}_{i}_bias"]
            x = torch.relu(x) if i < 2 else x
        return x

    expected = torch.zeros(())
    for i, anchors, y, x, context in latent_contexts(grids, ancestors):
        mean, log_b = mlp("arm_anchor" if anchors else "arm_other", torch.stack(context))
        expected = expected + laplace_bits(grids[i][y, x].reshape(1), mean.reshape(1), log_b.reshape(1),
                                           LOG_SCALE_RANGE, PROBABILITY_FLOOR)
    assert torch.allclose(net.rate(grids), expected, rtol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (5, 1), (2, 3), (7, 9), (19, 27)])
@pytest.mark.parametrize("ancestors", [0, 2])
def test_the_integer_decoder_reads_each_latents_context(shape, ancestors, monkeypatch):
    """The integer decoder's contexts (padded strided windows, in bands) are the ones of
    architecture.py, gathered one by one: an entropy model that is a known function of its
    context must give every latent the shift and table that function gives."""
    from gencompress.overfit import integer

    arch = Architecture(levels=4, ancestors=ancestors)
    rng = np.random.default_rng(0)
    grids = [rng.integers(-40, 41, size=s).astype(np.float64) for s in arch.grid_shapes(*shape)]
    probes = {m: rng.integers(-300, 300, size=(n, 2)) for m, n in (("arm_anchor", 9 + ancestors),
                                                                   ("arm_other", 21 + ancestors))}
    monkeypatch.setattr(integer, "ROW_BLOCK", 8)  # several bands per pass
    monkeypatch.setattr(integer.IntegerDecoder, "arm", lambda self, feats, module: tuple(
        (feats.astype(np.int64) @ probes[module]).T))
    expected = {}
    for i, anchors, y, x, context in latent_contexts(grids, ancestors):
        module = "arm_anchor" if anchors else "arm_other"
        shift, index = tables.table_index(*(np.array([context], np.int64) @ probes[module]).T)
        expected.setdefault((i, anchors), []).append((int(shift[0]), int(index[0])))

    def take(i, anchors, shift, index):
        assert list(zip(shift.tolist(), index.tolist())) == expected.pop((i, anchors))
        return grids[i][integer.checkerboard(*grids[i].shape, anchors)] - shift

    decoded = integer.IntegerDecoder(arch, {}, {}).latents(*shape, take)
    assert not expected
    for got, want in zip(decoded, grids):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("ancestors", [0, 2])
def test_the_integer_entropy_model_is_the_float_one_in_fixed_point(ancestors):
    """The decoder's fixed-point ARMs give the means and log-scales of the encoder's float ones to
    within rounding, for the same (quantized) parameters: what the fit optimizes is what the file
    codes with. (The rate tests above check the contexts; this checks the arithmetic on them.)"""
    from gencompress.overfit.integer import ONE, IntegerDecoder
    from gencompress.overfit.network import OverfitNet

    arch = Architecture(levels=5, ancestors=ancestors)
    net = OverfitNet(arch, 16, 16, seed=3)
    with torch.no_grad():
        for p in net.network_parameters():
            p.normal_(0, 0.3)
    named = [item for m in MODULES for item in net.named_for_coding()[m]]
    params = {name: parameter_steps.quantize(t.detach().double().numpy(), 14) for name, t in named}
    dec = IntegerDecoder(arch, params, dict.fromkeys(MODULES, 14))
    with torch.no_grad():
        for name, t in named:
            t.copy_(torch.tensor(params[name] / 2 ** 14))  # the float model of the same parameters
    rng = np.random.default_rng(0)
    for module, near in (("arm_anchor", 0), ("arm_other", 12)):
        feats = rng.integers(-20, 21, size=(200, near + 9 + ancestors)).astype(np.float64)
        mean, log_b = dec.arm(feats, module)
        want = net._arm(torch.tensor(feats.T, dtype=torch.float32), module)
        for got, expected in zip((mean, log_b), want):
            np.testing.assert_allclose(got / ONE, expected.detach().numpy(), atol=0.02)


def test_starting_points_ship_for_every_quality_of_the_default_architecture():
    arch = Architecture()
    layout = {name: shape for m in MODULES for name, shape in arch.parameters()[m]}
    for q in range(1, 9):
        start = starting.load(q, arch)
        assert start is not None and {n: tuple(t.shape) for n, t in start.items()} == layout
        assert all(torch.isfinite(t).all() for t in start.values())
    assert starting.load(4, Architecture(synthesis_width=8)) is None  # none for other decoders
    # an entropy model reading ancestors starts from the same networks, the extra inputs at zero
    padded = starting.load(4, Architecture(ancestors=2))
    plain = starting.load(4, arch)
    for name, extra in (("arm_anchor.0.weight", 2), ("arm_other.0.weight", 2)):
        assert torch.equal(padded[name][:, :-extra], plain[name]) and not padded[name][:, -extra:].any()
    assert all(torch.equal(padded[n], plain[n]) for n in plain if not n.endswith(".0.weight") or "synthesis" in n)
    assert starting.load(4, Architecture(levels=3, ancestors=1)) is None
    with pytest.raises(ValueError, match="ancestors"):
        Architecture(levels=4, ancestors=3)  # grids 0..3: grid 0 reads its parent 1 and at most 2, 3
    # benchmarks key cached rows by an effort's repr: the efforts that read none keep theirs
    assert "ancestors" not in repr(presets.EFFORTS["default"]) and "ancestors=5" in repr(presets.EFFORTS["high"])


@pytest.fixture
def keep_threads():
    """starting.main() sets torch's thread count for its process; later tests (a float decode of an
    old file, golden pixels) must see the count they started with."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_starting_points_train_for_another_architecture(rgb, tmp_path, monkeypatch, keep_threads):
    from PIL import Image

    for i in range(3):
        Image.fromarray(natural(rgb, 24, 32)[:, ::-1] if i else natural(rgb, 24, 32)).save(tmp_path / f"{i}.png")
    out = tmp_path / "start.safetensors"
    common = ["starting", str(tmp_path), "--out", str(out), "--qualities", "3", "--steps", "2", "--crops", "2",
              "--crop", "16x16", "--holdout", "1", "--threads", "1"]
    monkeypatch.setattr("sys.argv", common + ["--architecture", "levels=3 synthesis_width=5"])
    starting.main()
    arch, tensors = starting._read(out.read_bytes())
    assert arch == Architecture(levels=3, synthesis_width=5)
    assert tensors["q3/synthesis.0.weight"].shape == (5, 3)
    for bad in ("synthesis_width", "levels=x", "bogus=3", "synthesis_width=999"):
        monkeypatch.setattr("sys.argv", common + ["--architecture", bad])
        with pytest.raises(SystemExit, match="--architecture"):
            starting.main()


def test_starting_points_lower_the_loss_of_a_short_fit_and_files_carry_what_they_decode_with(rgb, monkeypatch):
    image = natural(rgb, 48, 64)
    lam = presets.LAMBDAS[3]
    target = torch.tensor(image).permute(2, 0, 1).float() / 255

    def loss(quality: int | None) -> float:
        net = fit.fit(image, lam, presets.Effort(steps=10), torch.device("cpu"), quality=quality)
        with torch.no_grad():
            grids = net.quantize("round")
            return float(((net.synthesize(grids) - target) ** 2).mean() + lam * net.rate(grids) / image[..., 0].size)

    assert loss(4) < loss(None)
    started = overfit(image)
    monkeypatch.setattr(starting, "load", lambda quality, arch: None)
    unstarted = overfit(image)
    assert started != unstarted  # other networks in the file, and each file decodes with its own
    for data in (started, unstarted):
        assert gencompress.decode(data).shape == image.shape


def test_an_encode_under_a_time_budget_stops_within_it(rgb):
    gencompress.Codec(model="overfit", effort="fast", device="cpu").encode(natural(rgb, 8, 8))  # loads the model
    for shape, tile_size in (((64, 96), 1024), ((150, 200), 128)):  # one tile, then four
        codec = gencompress.Codec(model="overfit", quality=4, device="cpu", time_budget=1.5, tile_size=tile_size)
        image = natural(rgb, *shape)
        begin = time.perf_counter()
        data = codec.encode(image)
        elapsed = time.perf_counter() - begin
        assert 0.75 < elapsed < 1.5 + 0.25, elapsed  # spends the budget, and no more
        assert gencompress.decode(data).shape == image.shape


@pytest.mark.parametrize("kw", [{"time_budget": 0}, {"time_budget": -3.0}, {"time_budget": True},
                                {"time_budget": "9"}, {"model": "vae", "time_budget": 5.0}])
def test_time_budgets_are_checked_at_construction(kw):
    with pytest.raises(ValueError, match="budget"):
        gencompress.Codec(**({"model": "overfit"} | kw))


def test_same_input_and_settings_give_the_same_bytes(rgb):
    image = natural(rgb, 20, 28)
    assert overfit(image) == overfit(image)


def test_shipped_tables_are_the_ones_build_makes():
    freq, length, offset = tables.build()
    shipped = load_model("overfit", "cpu").tables
    np.testing.assert_array_equal(shipped.length, length)
    np.testing.assert_array_equal(shipped.offset, offset)
    np.testing.assert_array_equal(shipped.cdf, tables.to_cdf(freq, length))
    assert (shipped.cdf[np.arange(len(shipped)), shipped.length - 1] == 1 << tables.PRECISION).all()


def test_table_index_is_integer_and_in_range():
    mean = np.array([-5000, -2048, -2047, 0, 2047, 2048, 10**6], dtype=np.int64)
    log_b = np.array([-10**6, -13184, 0, 5000, 10**6, 0, 0], dtype=np.int64)
    shift, index = tables.table_index(mean, log_b)
    assert shift.tolist() == [-1, 0, 0, 0, 0, 1, 244]
    assert index.min() >= 0 and index.max() < tables.SCALE_BINS * tables.MEAN_BINS


def test_efforts_agree_with_the_registry():
    assert tuple(presets.EFFORTS) == registry.EFFORTS
    with pytest.raises(ValueError, match="effort"):
        gencompress.Codec(model="overfit", effort="ludicrous")
    with pytest.raises(ValueError, match="no effort"):
        gencompress.Codec(model="vae", effort="fast")


def test_overfit_files_cannot_be_sharpened(rgb):
    with pytest.raises(gencompress.SharpenError):
        gencompress.decode(overfit(natural(rgb, 16, 16)), sharpen=1.0)


def test_corrupted_and_hostile_files_raise_format_error(rgb):
    data = overfit(natural(rgb, 24, 32))
    c = container.unpack(data)
    preamble, stream = c.tiles[0].streams
    rng = np.random.default_rng(5)

    def with_streams(*streams: bytes) -> bytes:
        tile = container.TileData(streams, c.tiles[0].symbols_crc, c.tiles[0].pixels_crc)
        return container.pack(container.Container(c.header, (tile,), c.alpha))

    assert preamble[0] == 3 and len(preamble) == 6 + 2 * 21  # an entry per parameter tensor
    cases = [with_streams(preamble), with_streams(preamble, b""), with_streams(preamble[:-1], stream),
             with_streams(bytes([4]) + preamble[1:], stream),  # unknown tile version
             with_streams(bytes([2]) + preamble[1:], stream),  # version 2 has an entry per module
             with_streams(preamble[:1] + bytes([200]) + preamble[2:], stream),  # 200 latent grids
             with_streams(preamble[:6] + bytes([99]) + preamble[7:], stream),  # a step of 2^-99
             with_streams(preamble[:7] + bytes([64]) + preamble[8:], stream),  # no table 64
             with_streams(preamble, stream[:len(stream) // 2])]
    for _ in range(60):  # bit flips and truncations inside the streams, with a valid file CRC
        bad = bytearray(stream[:rng.integers(4, len(stream) + 1)])
        bad[rng.integers(0, len(bad))] ^= 1 << int(rng.integers(0, 8))
        cases.append(with_streams(preamble, bytes(bad)))
    for case in cases:
        with pytest.raises(container.FormatError):
            gencompress.decode(case)
    for n in (5, len(data) // 2, len(data) - 1):
        with pytest.raises(container.FormatError):
            gencompress.decode(data[:n])
    with pytest.raises(container.FormatError, match="ancestors"):  # 6 ancestors of 7 grids
        gencompress.decode(with_streams(preamble[:5] + bytes([6]) + preamble[6:], stream))


def test_a_tensor_whose_integers_overflow_its_modules_finest_step_is_refused():
    """A module is computed at its tensors' finest step: the others' integers, scaled to it, must
    stay within the fixed-point bounds, so a file whose steps would take them out is refused."""
    coding = load_model("overfit", "cpu").tables
    arch = Architecture()
    layout = arch.parameters()
    names = [n for m in MODULES for n, _ in layout[m]]

    def parse(steps: dict[str, int]):
        ints = {n: np.zeros(int(np.prod(shape)), np.int32) for m in MODULES for n, shape in layout[m]}
        ints["synthesis.0.weight"][0] = 300  # at 2^-4: 300 x 2^12 > 2^16 at 2^-16, 300 x 2^7 < 2^16 at 2^-11
        preamble = bytes([3, arch.levels, arch.synthesis_width, arch.arm_anchor_width, arch.arm_other_width, 0])
        preamble += b"".join(bytes([steps.get(n, 4), 40]) for n in names)
        chunks = [(np.concatenate([ints[n] for n, _ in layout[m]]), np.full(sum(ints[n].size for n, _ in layout[m]),
                                                                             tables.parameter_table(40)))
                  for m in MODULES]
        return bitstream.parse((preamble, entropy.encode_chunks(chunks, coding)), 8, 8, coding)[0]

    with pytest.raises(container.FormatError, match="out of range"):
        parse({"synthesis.0.bias": 16})
    dec = parse({"synthesis.0.bias": 11})  # within range (the latents, all zero, cost no bytes)
    assert dec.steps["synthesis"] == 11 and dec.params["synthesis.0.weight"][0, 0] == 300 * 2 ** 7


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_gpu_encoded_file_decodes_on_the_cpu_with_its_checksums(rgb):
    data = gencompress.encode(natural(rgb, 40, 50), model="overfit", effort="fast", device="cuda")
    assert container.unpack(data).header.device == container.Device.CUDA
    pixels = gencompress.decode(data, device="cpu")
    assert zlib.crc32(np.ascontiguousarray(pixels).tobytes()) == container.unpack(data).tiles[0].pixels_crc


def test_a_small_file_claiming_a_huge_tile_is_refused_before_decoding(rgb):
    c = container.unpack(overfit(natural(rgb, 16, 16)))
    huge = container.Header(**{**c.header.__dict__, "width": 20000, "height": 13000, "tile_size": 20000})
    with pytest.raises(container.FormatError, match="exceed the limit of 2048"):
        gencompress.decode(container.pack(container.Container(huge, c.tiles, None)))

"""The engine behind `gencompress bench`: rate-distortion of learned and classical codecs on folders.

Per (codec, setting, image): bytes, bpp (from the coded size), PSNR on 8-bit RGB and MS-SSIM of
the decoded pixels, encode and decode seconds; with realism=True also the Laplacian-patch sliced
Wasserstein distance and the high-frequency power-spectrum error (metrics.py), which tell a
blurred reconstruction from a sharp one where PSNR cannot. "MODEL+sharpen" names a model's files
decoded through its GAN decoder (strength 1). Per (codec, setting): the mean of the per-image
values (per-image PSNR in dB averaged, as CompressAI does). BD-rates (pchip) of every codec against
an anchor codec and against published curves. Rows are cached in OUTDIR/cache.jsonl keyed by
(codec identity, setting, image digest), so an interrupted run resumes where it stopped and a
codec with new weights, settings or library versions is measured again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from PIL import Image

from . import classical, container, metrics
from .models import registry

IMAGE_SUFFIXES = {".png", ".ppm", ".bmp", ".tif", ".tiff"}  # lossless sources only


@dataclass(frozen=True)
class Runner:
    """How the bench drives one codec: settings, encode/decode, and a description with versions."""

    name: str
    settings: tuple[float, ...]
    encode: Callable[[np.ndarray, float], bytes]
    decode: Callable[[bytes], np.ndarray]
    info: dict[str, Any]

    @functools.cached_property
    def identity(self) -> str:
        """What produced a row: settings and library versions, or the weights' hash for our models.

        Part of the cache key, so new weights or a new libavif are measured again, not read back.
        """
        return hashlib.sha256(json.dumps(self.info, sort_keys=True).encode()).hexdigest()[:16]


SHARPEN_SUFFIX = "+sharpen"


def runner(name: str, device: str | None = None) -> Runner:
    """A Runner for a registered model name ("vae"; "vae+sharpen": decoded by its GAN decoder;
    "overfit@high": at an effort preset) or a classical codec name; LookupError if unavailable."""
    if name.endswith(SHARPEN_SUFFIX) and name[:-len(SHARPEN_SUFFIX)] in registry.MODELS:
        base = runner(name[:-len(SHARPEN_SUFFIX)], device)
        from .codec import Codec, SharpenError, load_sharpener

        codec = Codec(model=base.name, device=device)
        try:
            load_sharpener(base.name, codec.device)
        except SharpenError as exc:
            raise LookupError(f"{name}: {exc}") from None
        gan = hashlib.sha256(registry.spec(base.name).gan_weights.read_bytes()).hexdigest()
        return Runner(name, base.settings, base.encode, lambda data: codec.decode(data, sharpen=1.0),
                      base.info | {"settings": base.info["settings"] + ", decoded with --sharpen 1",
                                   "gan_sha256": gan})
    model, _, effort = name.partition("@")  # "overfit@high": a model at an effort preset
    if model in registry.MODELS:
        if not registry.MODELS[model].shipped:
            raise LookupError(f"{name}: this installation has no trained weights for it")
        from . import __version__
        from .codec import Codec, load_model

        try:
            codecs = {q: Codec(model=model, quality=q, device=device, effort=effort or None) for q in range(1, 9)}
        except ValueError as exc:
            raise LookupError(f"{name}: {exc}") from None
        weights = load_model(model, codecs[1].device).sha256.hex()
        preset = {}
        if registry.MODELS[model].efforts:  # what the effort means, so a changed preset is measured again
            from .overfit import starting
            from .overfit.presets import DEFAULT_EFFORT, EFFORTS, RECIPE

            preset = {"effort": effort or DEFAULT_EFFORT, "preset": repr(EFFORTS[effort or DEFAULT_EFFORT]),
                      "recipe": RECIPE, "starting_points_sha256": starting.digest()}
        return Runner(name, tuple(range(1, 9)), lambda rgb, q: codecs[int(q)].encode(rgb),
                      lambda data: codecs[1].decode(data),
                      {"settings": f"gencompress {name}, quality 1..8 on {codecs[1].device}",
                       "weights_sha256": weights, "format_version": container.FORMAT_VERSION,
                       "versions": {"gencompress": __version__}} | preset)
    if name in classical.CODECS:
        c = classical.CODECS[name]
        if not c.available():
            raise LookupError(f"{name}: its library is not installed")
        return Runner(name, c.qualities, c.encode, c.decode,
                      {"settings": c.settings, "quality": c.quality_meaning, "versions": c.versions()})
    raise LookupError(f"{name}: unknown codec (known: {', '.join([*registry.MODELS, *classical.CODECS])})")


def find_images(dirs: Iterable[str | Path]) -> list[Path]:
    paths: list[Path] = []
    for d in map(Path, dirs):
        paths.extend(sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if d.is_dir() else [d])
    if not paths:
        raise ValueError(f"no lossless images (.png, .ppm, ...) in {', '.join(map(str, dirs))}")
    return paths


def measure(r: Runner, setting: float, image: np.ndarray, realism: bool = False) -> dict[str, Any]:
    """One codec, one setting, one image: size, quality and time, from the real file and pixels."""
    start = time.perf_counter()
    data = r.encode(image, setting)
    mid = time.perf_counter()
    decoded = r.decode(data)
    end = time.perf_counter()
    if decoded.shape != image.shape:
        raise RuntimeError(f"{r.name} decoded shape {decoded.shape} for an image of {image.shape}")
    h, w = image.shape[:2]
    ms = metrics.ms_ssim(image, decoded) if min(h, w) > 160 else None
    row = {"bytes": len(data), "bpp": 8 * len(data) / (h * w), "psnr": metrics.psnr(image, decoded),
           "ms_ssim": ms, "ms_ssim_db": None if ms is None else metrics.ms_ssim_db(ms),
           "encode_s": mid - start, "decode_s": end - mid}
    if realism:
        row |= {"swd": metrics.patch_swd(image, decoded), "spectrum_db": metrics.spectrum_error(image, decoded)}
    return row


class Cache:
    """Rows already measured, appended to a JSON-lines file as they come."""

    def __init__(self, path: Path | None):
        self.path = path
        self.rows: dict[tuple, dict] = {}
        if path and path.is_file():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    self.rows[(row["identity"], row["setting"], row["digest"])] = row
                except (json.JSONDecodeError, KeyError):
                    continue  # a line cut short by an interruption

    def get(self, identity: str, setting: float, digest: str) -> dict | None:
        return self.rows.get((identity, setting, digest))

    def put(self, row: dict) -> None:
        self.rows[(row["identity"], row["setting"], row["digest"])] = row
        if self.path:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")


def image_digest(image: np.ndarray) -> str:
    """What identifies an image in the cache: its pixels, not its path."""
    return hashlib.sha256(image.tobytes()).hexdigest()[:16]


def measure_cached(cache: Cache, r: Runner, setting: float, key: str, image: np.ndarray, digest: str,
                   realism: bool = False) -> dict:
    """The cached row of (codec identity, setting, image), measured and stored if missing (or
    measured without the realism metrics when they are asked for)."""
    row = cache.get(r.identity, setting, digest)
    if row is None or (realism and "swd" not in row):
        row = {"codec": r.name, "identity": r.identity, "setting": setting, "image": key, "digest": digest} | \
            measure(r, setting, image, realism)
        cache.put(row)
    return row


def average(rows: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {"images": len(rows)}
    for key in ("bytes", "bpp", "psnr", "ms_ssim", "ms_ssim_db", "encode_s", "decode_s", "swd", "spectrum_db"):
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = statistics.fmean(values) if len(values) == len(rows) else None
    return out


def bd_table(curves: dict[str, list[dict]], anchors: dict[str, list[dict]],
             min_points: int = 4) -> dict[str, dict[str, dict]]:
    """{anchor: {codec: {"psnr": %, "ms_ssim_db": %}}}; None where the curves do not overlap or
    either has fewer than min_points points."""
    table: dict[str, dict[str, dict]] = {}
    for anchor_name, anchor in anchors.items():
        for name, points in curves.items():
            if name == anchor_name:
                continue
            entry = {}
            for metric in ("psnr", "ms_ssim_db"):
                a = [p for p in anchor if p.get(metric) is not None]
                t = [p for p in points if p.get(metric) is not None]
                entry[metric] = _bd(a, t, metric) if len(a) >= min_points and len(t) >= min_points else None
            table.setdefault(anchor_name, {})[name] = entry
    return table


def _bd(anchor: list[dict], test: list[dict], metric: str) -> float | None:
    lo = max(min(p[metric] for p in anchor), min(p[metric] for p in test))
    hi = min(max(p[metric] for p in anchor), max(p[metric] for p in test))
    if hi <= lo:
        return None
    try:
        return metrics.bd_rate([p["bpp"] for p in anchor], [p[metric] for p in anchor],
                               [p["bpp"] for p in test], [p[metric] for p in test])
    except ValueError:
        return None


def load_published(path: Path) -> dict[str, list[dict]]:
    """Curves from a CompressAI-style JSON: {name: [{"bpp", "psnr", "ms-ssim" or "ms_ssim"}, ...]}."""
    curves = {}
    for name, points in json.loads(path.read_text()).items():
        if isinstance(points, list) and points and isinstance(points[0], dict) and "bpp" in points[0]:
            curves[name] = []
            for p in points:
                ms = p.get("ms-ssim", p.get("ms_ssim"))
                curves[name].append({"bpp": p["bpp"], "psnr": p.get("psnr"),
                                     "ms_ssim_db": metrics.ms_ssim_db(ms) if ms else None})
            curves[name].sort(key=lambda p: p["bpp"])
    return curves


@dataclass
class BenchConfig:
    dirs: list[str]
    codecs: list[str]
    qualities: dict[str, list[float]] | None = None  # per codec; default: each codec's sweep
    device: str | None = None
    out: str | None = None
    anchor: str = "jpeg"
    published: str | None = None
    realism: bool = False  # also patch SWD and high-frequency spectrum error


def run(cfg: BenchConfig, progress: bool = True) -> dict[str, Any]:
    """Measure every (codec, setting, image); return settings, per-image rows, averages and BD-rates."""
    from tqdm import tqdm

    out = Path(cfg.out) if cfg.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    cache = Cache(out / "cache.jsonl" if out else None)
    paths = find_images(cfg.dirs)
    images = {str(p): np.asarray(Image.open(p).convert("RGB")) for p in paths}
    digests = {k: image_digest(v) for k, v in images.items()}
    runners, unavailable = {}, {}
    for name in cfg.codecs:
        try:
            runners[name] = runner(name, cfg.device)
        except LookupError as exc:
            unavailable[name] = str(exc)
    jobs = [(name, s, key) for name, r in runners.items()
            for s in (cfg.qualities or {}).get(name, r.settings) for key in images]
    rows = [measure_cached(cache, runners[name], setting, key, images[key], digests[key], cfg.realism)
            for name, setting, key in tqdm(jobs, desc="bench", unit="image", file=sys.stderr, disable=not progress)]
    curves = {name: sorted((average([r for r in rows if r["codec"] == name and r["setting"] == s]) | {"setting": s}
                            for s in dict.fromkeys(r["setting"] for r in rows if r["codec"] == name)),
                           key=lambda p: p["bpp"])
              for name in runners}
    anchors = {cfg.anchor: curves[cfg.anchor]} if cfg.anchor in curves else {}
    published = load_published(Path(cfg.published)) if cfg.published else {}
    result = {
        "config": asdict(cfg), "images": list(images), "averaging": "mean over images of per-image values "
        "(PSNR and MS-SSIM dB averaged per image, as CompressAI does)",
        "codecs": {name: r.info for name, r in runners.items()}, "unavailable": unavailable,
        "points": curves, "rows": rows, "bd_rate": bd_table(curves, anchors | published),
        "published": published,
    }
    if out:
        from .atomic import write_bytes_atomic

        write_bytes_atomic(out / "results.json", json.dumps(result, indent=1).encode(), overwrite=True)
    return result


def format_table(result: dict[str, Any]) -> str:
    """The averaged points and BD-rates as plain text."""
    realism = result["config"].get("realism")
    lines = [f"{'codec':12} {'setting':>8} {'bpp':>8} {'PSNR':>7} {'MS-SSIM dB':>10} {'enc s':>7} {'dec s':>7}"
             + (f" {'SWD':>7} {'HF spec dB':>10}" if realism else "")]
    for name, points in result["points"].items():
        for p in points:
            ms = f"{p['ms_ssim_db']:10.3f}" if p["ms_ssim_db"] is not None else f"{'-':>10}"
            lines.append(f"{name:12} {p['setting']:>8g} {p['bpp']:8.4f} {p['psnr']:7.3f} {ms} "
                         f"{p['encode_s']:7.3f} {p['decode_s']:7.3f}"
                         + (f" {p['swd']:7.2f} {p['spectrum_db']:10.3f}" if realism and p.get("swd") is not None else ""))
    for anchor, entries in result["bd_rate"].items():
        lines.append(f"\nBD-rate against {anchor} (negative = fewer bits at equal quality; "
                     f"n/a = the curves do not overlap, or one has fewer than 4 points)")
        for name, bd in entries.items():
            cells = [f"{m} {bd[m]:+.1f}%" if bd[m] is not None else f"{m} n/a" for m in ("psnr", "ms_ssim_db")]
            lines.append(f"  {name:10} " + ", ".join(cells))
    for name, reason in result["unavailable"].items():
        lines.append(f"unavailable: {reason}")
    return "\n".join(lines)


def plot(result: dict[str, Any], out: Path) -> list[Path]:
    """RD plots (bpp vs PSNR, bpp vs MS-SSIM dB) as PNG, published curves dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for metric, label in (("psnr", "PSNR (dB)"), ("ms_ssim_db", "MS-SSIM (dB)")):
        fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
        for name, points in result["published"].items():
            pts = [p for p in points if p.get(metric) is not None and p["bpp"] <= 2.2]
            if pts:
                ax.plot([p["bpp"] for p in pts], [p[metric] for p in pts], "--", lw=1, alpha=0.7, label=name)
        for name, points in result["points"].items():
            pts = [p for p in points if p.get(metric) is not None]
            ax.plot([p["bpp"] for p in pts], [p[metric] for p in pts], "o-", lw=2, ms=3, label=name)
        ax.set(xlabel="bits per pixel", ylabel=label, xlim=(0, 2.2), title=f"rate-distortion, {label}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        path = out / f"rd_{metric}.png"
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written

"""Build the training set from real photographs shipped in Debian wallpaper packages.

Wallpapers are large JPEGs; downscaling them by at least 2x removes the JPEG block and ringing
artifacts that a codec must not learn to reproduce. Each photo is downscaled so its shorter side
is at most ``short_side`` pixels and written as a lossless PNG, next to ``sources.json`` which
records where every image came from (package, version, path inside it, SHA-256 of the original).

Run it as ``python -m gencompress.train.prepare OUT_DIR`` (needs ``apt-get`` and ``dpkg``). For the
GPU machine, where the data travels with the working tree (64 MiB in all), make a compact copy of a
prepared folder: ``python -m gencompress.train.prepare data/gpu --from OUT_DIR --short-side 640
--format webp`` (lossless WebP; smaller pictures also pack more texture per pixel).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

PACKAGES = ("plasma-workspace-wallpapers", "mate-backgrounds", "ukui-wallpapers", "gnome-backgrounds",
            "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04")
PHOTO_SUFFIXES = {".jpg", ".jpeg"}  # the PNG/WebP files in these packages are mostly artwork
MIN_SIDE = 1024  # smaller sources cannot be downscaled 2x and still give useful crops


def _run(cmd: list[str], cwd: Path) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


def fetch_package(name: str, workdir: Path) -> tuple[str, Path]:
    """Download and unpack one Debian package; return its version and unpacked root."""
    _run(["apt-get", "download", name], workdir)
    deb = next(workdir.glob(f"{name}_*.deb"))
    version = _run(["dpkg-deb", "-f", str(deb), "Version"], workdir).strip()
    root = workdir / name
    _run(["dpkg", "-x", str(deb), str(root)], workdir)
    return version, root


def photo_files(root: Path) -> list[Path]:
    """The JPEG photos under root; of renditions named WIDTHxHEIGHT in one folder, only the largest."""
    photos: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in PHOTO_SUFFIXES or path.is_symlink() or not path.is_file():
            continue
        key = str(path.parent) if _area(path) else str(path)
        if key not in photos or _area(path) > _area(photos[key]):
            photos[key] = path
    return sorted(photos.values())


def _area(path: Path) -> int:
    size = re.fullmatch(r"(\d+)x(\d+)", path.stem)
    return int(size[1]) * int(size[2]) if size else 0


def downscale(img: Image.Image, short_side: int) -> Image.Image:
    """Shrink by at least 2x (and so the shorter side is <= short_side), with a Lanczos filter."""
    scale = min(0.5, short_side / min(img.size))
    size = (round(img.width * scale), round(img.height * scale))
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def save(img: Image.Image, out_dir: Path, stem: str, fmt: str) -> str:
    """Write img losslessly as PNG or WebP; returns the file name."""
    name = f"{stem}.{fmt}"
    if fmt == "webp":
        img.save(out_dir / name, "WEBP", lossless=True, quality=100, method=4)
    else:
        img.save(out_dir / name, "PNG")
    return name


def repack(src_dir: Path, out_dir: Path, short_side: int, fmt: str) -> list[dict]:
    """A smaller copy of a prepared folder: shrink to short_side (never enlarge), write as fmt, keep provenance."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = json.loads((src_dir / "sources.json").read_text())
    for entry in sources:
        with Image.open(src_dir / entry["file"]) as img:
            scale = min(1.0, short_side / min(img.size))
            small = img.convert("RGB").resize((round(img.width * scale), round(img.height * scale)),
                                              Image.Resampling.LANCZOS) if scale < 1 else img.convert("RGB")
        entry["file"] = save(small, out_dir, Path(entry["file"]).stem, fmt)
        entry["size"] = list(small.size)
    (out_dir / "sources.json").write_text(json.dumps(sources, indent=1))
    return sources


def prepare(out_dir: Path, packages: tuple[str, ...] = PACKAGES, short_side: int = 1024,
            fmt: str = "png") -> list[dict]:
    """Fetch the packages, downscale every photo, write lossless images and ``sources.json`` to out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sources: list[dict] = []
    seen: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        for name in packages:
            version, root = fetch_package(name, Path(tmp))
            for path in photo_files(root):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                if digest in seen:
                    continue
                seen.add(digest)
                with Image.open(path) as img:
                    if min(img.size) < MIN_SIDE:
                        continue
                    small = downscale(img.convert("RGB"), short_side)
                out_name = save(small, out_dir, f"{len(sources):04d}", fmt)
                sources.append({"file": out_name, "package": name, "version": version,
                                "path": str(path.relative_to(root)), "sha256": digest,
                                "original_size": list(img.size), "size": list(small.size)})
                print(f"{out_name}  {name}:{path.name}", file=sys.stderr)
    (out_dir / "sources.json").write_text(json.dumps(sources, indent=1))
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--short-side", type=int, default=1024)
    parser.add_argument("--format", choices=["png", "webp"], default="png", help="Lossless format of the output.")
    parser.add_argument("--from", dest="src", type=Path, help="Repack this prepared folder instead of fetching.")
    args = parser.parse_args()
    if args.src:
        sources = repack(args.src, args.out_dir, args.short_side, args.format)
    else:
        sources = prepare(args.out_dir, short_side=args.short_side, fmt=args.format)
    print(f"{len(sources)} photos in {args.out_dir}")


if __name__ == "__main__":
    main()

"""Build the training set from real photographs shipped in Debian wallpaper packages.

Wallpapers are large JPEGs; downscaling them by at least 2x removes the JPEG block and ringing
artifacts that a codec must not learn to reproduce. Each photo is downscaled so its shorter side
is at most ``short_side`` pixels and written as a lossless PNG, next to ``sources.json`` which
records where every image came from (package, version, path inside it, SHA-256 of the original).

Run it as ``python -m gencompress.train.prepare OUT_DIR`` (needs ``apt-get`` and ``dpkg``).
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


def prepare(out_dir: Path, packages: tuple[str, ...] = PACKAGES, short_side: int = 1024) -> list[dict]:
    """Fetch the packages, downscale every photo, write PNGs and ``sources.json`` to out_dir."""
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
                out_name = f"{len(sources):04d}.png"
                small.save(out_dir / out_name)
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
    args = parser.parse_args()
    sources = prepare(args.out_dir, short_side=args.short_side)
    print(f"{len(sources)} photos in {args.out_dir}")


if __name__ == "__main__":
    main()

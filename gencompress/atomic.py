"""Atomic file output: write a temporary file beside the target, then rename it into place.

A crash or error mid-write leaves either the old file or no file, never a half-written one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def write_atomic(path: Path, write: Callable[[Path], None], overwrite: bool = False) -> None:
    """Call write(tmp_path) to produce the content, then move it to path.

    Raises FileExistsError if path exists and overwrite is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (use -f to overwrite)")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if not overwrite and path.exists():
            raise FileExistsError(f"{path} already exists (use -f to overwrite)")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes, overwrite: bool = False) -> None:
    write_atomic(path, lambda tmp: tmp.write_bytes(data), overwrite)

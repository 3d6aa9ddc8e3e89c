"""Atomic file output: write a temporary file beside the target, then rename it into place.

A crash or error mid-write leaves either the old file or no file, never a half-written one. The
output gets the mode any new file gets (0666 less the umask), like a file written by `cp` or
`zstd`; errors name the output path, not the hidden temporary file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable

_TMP_NAME_BYTES = 60  # of the output's name kept in the temporary name: the whole stays under NAME_MAX


def write_atomic(path: Path, write: Callable[[Path], None], overwrite: bool = False) -> None:
    """Call write(tmp_path) to produce the content, then move it to path.

    Raises FileExistsError if path exists and overwrite is False, and OSError naming `path` when
    its folder cannot be written.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (use -f to overwrite)")
    tmp = _create_temporary(path)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if not overwrite and path.exists():
            raise FileExistsError(f"{path} already exists (use -f to overwrite)")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.filename is not None and Path(exc.filename) == tmp:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes, overwrite: bool = False) -> None:
    write_atomic(path, lambda tmp: tmp.write_bytes(data), overwrite)


def _create_temporary(path: Path) -> Path:
    """A new empty file beside path, named `.<start of path's name>.<random>.tmp`, created with
    mode 0666 so that the umask applies as to any new file (mkstemp would give 0600)."""
    stem = os.fsencode(path.name)[:_TMP_NAME_BYTES].decode(errors="ignore")
    for _ in range(100):
        tmp = path.parent / f".{stem}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        os.close(fd)
        return tmp
    raise FileExistsError(f"{path}: could not create a temporary file beside it")

"""Seeded mutation fuzzing of the decoder: whatever the bytes, only FormatError may come out.

Each case mutates one of a few valid seed files. A third of the cases change its structure and
pack it again, so that tile table and CRCs are consistent: header fields at boundary or absurd
values, tiles duplicated, dropped, swapped or taken from another file, streams cut, extended,
emptied or swapped, recorded checksums changed. The others change bytes: truncation, bit flips,
overwritten or inserted or deleted byte runs, random values in the header, or a splice of two
files; half of those then re-seal the file CRC. Either way the mutation reaches the header parser,
the entropy decoder and the checksums behind it instead of stopping at the CRC. Used by tests/test_fuzz.py (a few
thousand cases) and benchmarks/fuzz.py (100k cases).
"""

from __future__ import annotations

import dataclasses
import random
import re
import struct
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from . import container
from .container import FormatError

HEADER_REGION = 96  # bytes at the start where the header fields live, for targeted mutations


def mutate(data: bytes, rng: random.Random, other: bytes) -> bytes:
    """One random mutation of data (other: a second valid file, for splices)."""
    if rng.random() < 1 / 3:
        return _mutate_structure(data, rng, other)
    buf = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:
        buf = buf[:rng.randrange(len(buf))]
    elif kind == 1:
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
    elif kind == 2:
        i = rng.randrange(len(buf))
        buf[i:i + rng.randint(1, 16)] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == 3:
        i = rng.randrange(len(buf))
        if rng.random() < 0.5:
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        else:
            del buf[i:i + rng.randint(1, 32)]
    elif kind == 4:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(min(HEADER_REGION, len(buf)))
            buf[i] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
    else:
        cut = rng.randrange(1, min(len(buf), len(other)))
        buf = buf[:cut] + bytearray(other[cut:])
    if rng.random() < 0.5 and len(buf) >= 4:
        buf[-4:] = zlib.crc32(bytes(buf[:-4])).to_bytes(4, "little")
    return bytes(buf)


def hostile(valid: bytes) -> dict[str, bytes]:
    """Files built from the format's own structure (valid CRCs, self-consistent tile tables) that
    claim absurd things with tiny streams, from one valid single-tile file: what an attacker would
    hand a decoder to exhaust its memory or time. Each must end in FormatError, fast, in bounded
    memory (tests/test_hostile.py, benchmarks/hostile.py)."""
    c = container.unpack(valid)
    tile = c.tiles[0]

    def forge(n_tiles: int | None = None, tiles: tuple | None = None, **fields) -> bytes:
        header = dataclasses.replace(c.header, **fields)
        count = n_tiles if n_tiles is not None else header.grid.count
        return container.pack(dataclasses.replace(c, header=header, tiles=tiles or (tile,) * count))

    side = 1 << 14  # 268 MP, the default pixel limit
    return {
        "huge image, largest tiles": forge(width=side, height=side, tile_size=2048),
        "huge image, one huge tile": forge(width=side, height=side, tile_size=side, overlap=0),
        "4096x4096 in one tile": forge(width=4096, height=4096, tile_size=4096, overlap=0),
        "one row, 2^28 pixels wide": forge(width=1 << 28, height=1, tile_size=1 << 28, overlap=0),
        "wide band of tiles": forge(width=1 << 22, height=64, tile_size=1024),
        "many small tiles": forge(width=side, height=side, tile_size=64, overlap=0),
        "duplicated tile": forge(width=2 * c.header.width, height=c.header.height, tile_size=max(c.header.width, 16),
                                 overlap=0),
        "long model name": forge(model="v" * 255),
        "wrong tile count": forge(n_tiles=3),
    }


_PROBE = """
import json, os, resource, sys, time
import gencompress
def peak_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
cap, files = int(sys.argv[1]), sys.argv[2:]
for valid in files[0::2]:
    gencompress.decode(open(valid, "rb").read())  # models loaded: measure the refusals alone
if cap:  # address space beyond what the process has mapped so far (torch maps gigabytes of libraries)
    mapped = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mapped + cap, mapped + cap))
for valid, forged in zip(files[0::2], files[1::2]):
    valid, forged = open(valid, "rb").read(), open(forged, "rb").read()
    gencompress.decode(valid)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak restarts from the present
    before = peak_mb()
    start = time.perf_counter()
    try:
        gencompress.decode(forged)
        outcome = "decoded"
    except gencompress.FormatError as exc:
        outcome = "FormatError: " + str(exc)
    except BaseException as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - start, "extra_mb": peak_mb() - before}),
          flush=True)
"""


def decode_in_subprocess(pairs: list[tuple[bytes, bytes]], memory_cap: int = 0, timeout: float = 900) -> list[dict]:
    """Decode each (valid, forged) pair's forged file in one fresh Python process, after its valid
    file (which loads the model): per pair the outcome (the FormatError's message, or another
    exception's), seconds, and the peak resident memory (VmHWM, MB) above the resident memory
    before it. memory_cap: bytes of address space the decodes may map beyond what the process has
    mapped once its models are loaded (0: no limit)."""
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, (valid, forged) in enumerate(pairs):
            for kind, data in (("valid", valid), ("forged", forged)):
                paths.append(Path(tmp) / f"{i}.{kind}.gcz")
                paths[-1].write_bytes(data)
        run = subprocess.run([sys.executable, "-c", _PROBE, str(memory_cap), *map(str, paths)],
                             capture_output=True, text=True, timeout=timeout)
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    if run.returncode:
        died = {"outcome": f"process died ({run.returncode}): {run.stderr.strip().splitlines()[-1:]}",
                "seconds": float("nan"), "extra_mb": float("nan")}
        rows += [died] * (len(pairs) - len(rows))
    return rows


_FIELD_VALUES = {  # header fields and values worth trying: limits, off-by-ones, absurd claims
    "width": (1, 2, 63, 64, 65, 2047, 2048, 2049, 1 << 14, 1 << 16, (1 << 32) - 1),
    "height": (1, 2, 63, 64, 65, 2047, 2048, 2049, 1 << 14, 1 << 16, (1 << 32) - 1),
    "tile_size": (0, 15, 16, 64, 128, 129, 2048, 2049, 1 << 20, (1 << 32) - 1),
    "overlap": (0, 1, 8, 32, 63, 64, 1024, (1 << 32) - 1),
    "channels": (0, 1, 2, 3, 4, 5, 255),
    "quality": (0, 1, 8, 9, 255),
    "device": (0, 1, 2, 255),
    "model": ("ae", "vae", "overfit", "vae-ctx", "", "x" * 255),
}


def _mutate_structure(data: bytes, rng: random.Random, other: bytes) -> bytes:
    """A mutation of the file's structure, re-packed (so tile table and CRC are consistent):
    a header field set to a boundary or absurd value, or tiles and streams duplicated, dropped,
    swapped, cut, extended or taken from another file."""
    try:
        c, o = container.unpack(data), container.unpack(other)
    except FormatError:
        return data
    tiles = list(c.tiles)
    kind = rng.randrange(4)
    if kind == 0:
        field = rng.choice(list(_FIELD_VALUES))
        c = dataclasses.replace(c, header=dataclasses.replace(c.header, **{field: rng.choice(_FIELD_VALUES[field])}))
    elif kind == 1:  # the tile list: duplicate, drop, swap, or take another file's
        i, j = rng.randrange(len(tiles)), rng.randrange(len(tiles))
        action = rng.randrange(4)
        if action == 0:
            tiles.insert(i, tiles[j])
        elif action == 1 and len(tiles) > 1:
            del tiles[i]
        elif action == 2:
            tiles[i], tiles[j] = tiles[j], tiles[i]
        else:
            tiles[i] = rng.choice(o.tiles)
    elif kind == 2:  # one stream: cut, extended, emptied, or another stream's
        i = rng.randrange(len(tiles))
        streams = list(tiles[i].streams)
        if streams:
            k = rng.randrange(len(streams))
            action = rng.randrange(4)
            if action == 0:
                streams[k] = streams[k][:rng.randrange(len(streams[k]) + 1)]
            elif action == 1:
                streams[k] += bytes(rng.randrange(256) for _ in range(rng.choice((1, 4, 64))))
            elif action == 2:
                streams[k] = b""
            else:
                streams[k] = rng.choice(rng.choice(o.tiles).streams or (b"",))
            if rng.random() < 0.2:
                streams.append(streams[k])
            tiles[i] = dataclasses.replace(tiles[i], streams=tuple(streams))
    else:  # a checksum recorded in the tile table
        i = rng.randrange(len(tiles))
        field = rng.choice(("symbols_crc", "pixels_crc"))
        tiles[i] = dataclasses.replace(tiles[i], **{field: rng.randrange(1 << 32)})
    try:
        return container.pack(dataclasses.replace(c, tiles=tuple(tiles)))
    except (struct.error, ValueError, UnicodeEncodeError):
        return data


def _kind(message: str) -> str:
    """An error message with its numbers, hashes and names blanked, so like refusals count together."""
    message = re.sub(r"'[^']*'", "'…'", message.split(" (")[0])
    return re.sub(r"\b[0-9a-f]{12,}\b|\d+", "#", message)


@dataclass
class Report:
    cases: int = 0
    crashes: list[tuple[int, str]] = field(default_factory=list)  # (case, exception) of anything not a FormatError
    outcomes: Counter = field(default_factory=Counter)  # error message (or "decoded") -> count
    slowest: tuple[float, int] = (0.0, -1)  # (seconds, case)

    def summary(self) -> str:
        return (f"{self.cases} cases, {len(self.crashes)} crashes, slowest case {self.slowest[1]} "
                f"({self.slowest[0] * 1000:.1f} ms), {self.outcomes['decoded']} decoded")


def run(seeds: list[bytes], cases: int, decode: Callable[[bytes], object], seed: int = 0,
        progress: Callable[[int], None] | None = None) -> Report:
    """Decode `cases` mutants of the seed files; report crashes (non-FormatError exceptions) and timings."""
    rng = random.Random(seed)
    report = Report()
    for case in range(cases):
        data = mutate(rng.choice(seeds), rng, rng.choice(seeds))
        start = time.perf_counter()
        try:
            decode(data)
            outcome = "decoded"
        except FormatError as exc:
            outcome = _kind(str(exc))
        except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer looks for
            outcome = "crash"
            report.crashes.append((case, f"{type(exc).__name__}: {exc}"))
        seconds = time.perf_counter() - start
        report.cases += 1
        report.outcomes[outcome] += 1
        if seconds > report.slowest[0]:
            report.slowest = (seconds, case)
        if progress:
            progress(case)
    return report

"""Seeded mutation fuzzing of the decoder: whatever the bytes, only FormatError may come out.

Each case mutates one of a few valid seed files: truncation, bit flips, overwritten or inserted
or deleted byte runs, random values in the header, or a splice of two files. Half of the cases
then re-seal the file CRC, so that the mutation reaches the header parser, the entropy decoder
and the checksums behind it instead of stopping at the CRC. Used by tests/test_fuzz.py (a few
thousand cases) and benchmarks/fuzz.py (100k cases).
"""

from __future__ import annotations

import random
import re
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from .container import FormatError

HEADER_REGION = 96  # bytes at the start where the header fields live, for targeted mutations


def mutate(data: bytes, rng: random.Random, other: bytes) -> bytes:
    """One random mutation of data (other: a second valid file, for splices)."""
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

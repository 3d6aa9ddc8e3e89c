"""Entropy coding of integer latents with constriction, from integer CDF tables.

Both the factorized models (one table per channel) and the quantized Gaussians (one table per
scale level, chosen per element by the hyper-decoder) reduce to the same job: code symbol i with
table indexes[i]. The tables are CompressAI's 16-bit quantized CDFs, stored in the weight file, so
encoder and decoder build bit-identical models on any machine. The last symbol of every table is
an escape: a value outside the table's range codes the escape and is stored verbatim (int32) in a
side list, so no latent value can make the encoder fail.

Stream layout: u32 escape count, that many int32 values, then constriction's ANS words (u32).
All integers little-endian. A stream holds one or more chunks (encode_chunks / StreamReader);
within a chunk symbols are coded grouped by table (table 0 first), in raster order within a
group; the ANS coder runs in reverse so the decoder reads chunks and groups forward. Escaped
values are listed in that same reading order.

Coder options that encoder and decoder must agree on, set explicitly here: the ANS stack coder
(`constriction.stream.stack.AnsCoder`), `Categorical(..., perfect=False)`, probabilities taken
exactly from the 16-bit CDF tables.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import constriction
import numpy as np

CDF_PRECISION = 16  # CompressAI's quantized CDFs sum to 2**16


class EntropyDecodeError(ValueError):
    """The stream does not decode with these tables (corrupt data or wrong model)."""


@dataclass(eq=False)
class Tables:
    """A set of integer CDF tables: row k codes symbols offset[k] .. offset[k] + length[k] - 3, plus escape."""

    cdf: np.ndarray  # (K, L) int32, row k valid up to length[k]
    length: np.ndarray  # (K,) int32: number of CDF entries = real symbols + escape + 1
    offset: np.ndarray  # (K,) int32: the symbol value of table position 0
    _models: dict[int, object] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.cdf = np.asarray(self.cdf, dtype=np.int64)
        self.length = np.asarray(self.length, dtype=np.int64)
        self.offset = np.asarray(self.offset, dtype=np.int64)
        if self.cdf.ndim != 2 or not self.length.shape == self.offset.shape == (self.cdf.shape[0],):
            raise ValueError("inconsistent table shapes")
        # Per table, the fewest bits any of its symbols can cost: -log2 of its largest probability.
        valid = np.arange(self.cdf.shape[1] - 1)[None] < (self.length[:, None] - 1)
        top = np.where(valid, np.diff(self.cdf, axis=1), 0).max(axis=1)
        self.min_bits = -np.log2(np.maximum(top, 1) / 2**CDF_PRECISION)

    def __len__(self) -> int:
        return self.cdf.shape[0]

    def model(self, k: int):
        """The constriction categorical model of table k, built once."""
        with self._lock:
            if k not in self._models:
                pmf = np.diff(self.cdf[k, : self.length[k]]).astype(np.float64) / 2**CDF_PRECISION
                self._models[k] = constriction.stream.model.Categorical(pmf, perfect=False)
            return self._models[k]

    def escape(self, indexes: np.ndarray) -> np.ndarray:
        """Table position of the escape symbol for each index."""
        return self.length[indexes] - 2


def _grouped(indexes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order that groups symbols by table (stable), the tables present, and their group sizes.

    Indexes are non-negative table numbers; below 2^15 they are sorted as int16, which numpy's
    stable sort does by radix (the same order, several times faster)."""
    flat = indexes.ravel()
    if flat.size and flat.max() < 1 << 15:
        flat = flat.astype(np.int16)
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat)
    tables = np.flatnonzero(counts)
    return order, tables, counts[tables]


def _positions(symbols: np.ndarray, indexes: np.ndarray, tables: Tables):
    """One chunk in coding order: table positions (escapes replaced by the escape symbol), the
    tables present with their group sizes, and the escaped values in that order."""
    if symbols.shape != indexes.shape:
        raise ValueError("symbols and indexes differ in shape")
    order, present, counts = _grouped(indexes)
    sym = symbols.ravel()[order].astype(np.int64)
    idx = indexes.ravel()[order].astype(np.int64)
    pos = sym - tables.offset[idx]
    escape = tables.escape(idx)
    escaped = (pos < 0) | (pos >= escape)
    return np.where(escaped, escape, pos).astype(np.int32), present, counts, sym[escaped]


def encode_chunks(chunks: Sequence[tuple[np.ndarray, np.ndarray]], tables: Tables) -> bytes:
    """Code several (symbols, indexes) chunks into one stream that StreamReader reads chunk by chunk.

    A decoder may compute a chunk's table indexes from the symbols of earlier chunks (an
    autoregressive entropy model decoding pass by pass); one stream costs one ANS flush and one
    escape list however many chunks it holds.
    """
    prepared = [_positions(sym, idx, tables) for sym, idx in chunks]
    coder = constriction.stream.stack.AnsCoder()
    for pos, present, counts, _ in reversed(prepared):
        ends = np.cumsum(counts)
        for k, end, count in reversed(list(zip(present, ends, counts))):
            coder.encode_reverse(pos[end - count:end], tables.model(int(k)))
    escapes = np.concatenate([p[3] for p in prepared] or [np.zeros(0, np.int64)]).astype("<i4")
    words = coder.get_compressed().astype("<u4")
    return np.uint32(escapes.size).astype("<u4").tobytes() + escapes.tobytes() + words.tobytes()


def encode(symbols: np.ndarray, indexes: np.ndarray, tables: Tables) -> bytes:
    """Code integer symbols, each with the table named by the same position in indexes."""
    return encode_chunks([(symbols, indexes)], tables)


class StreamReader:
    """Reads the chunks of a stream made by encode_chunks, in order; every error is EntropyDecodeError.

    max_symbols bounds the escape list a stream may claim (the symbols it can hold at most).
    """

    def __init__(self, data: bytes, tables: Tables, max_symbols: int):
        if len(data) < 4 or len(data) % 4:
            raise EntropyDecodeError("entropy stream length is not a positive multiple of 4")
        words = np.frombuffer(data, dtype="<u4")
        n_escapes = int(words[0])
        if n_escapes > max_symbols or 1 + n_escapes > words.size:
            raise EntropyDecodeError("entropy stream escape count is out of range")
        self._escapes = words[1:1 + n_escapes].view("<i4").astype(np.int64)
        self._used = 0
        compressed = words[1 + n_escapes:].astype(np.uint32)
        if compressed.size and compressed[-1] == 0:
            raise EntropyDecodeError("entropy stream ends in a zero word")
        self._tables = tables
        try:
            self._coder = constriction.stream.stack.AnsCoder(compressed)
        except Exception as exc:  # noqa: BLE001 - constriction raises plain errors on garbage input
            raise EntropyDecodeError(f"entropy decoding failed: {exc}") from None

    def read(self, indexes: np.ndarray) -> np.ndarray:
        """The next chunk's symbols, each decoded with the table named by indexes (any shape)."""
        tables = self._tables
        if indexes.size and (indexes.min() < 0 or indexes.max() >= len(tables)):
            raise EntropyDecodeError("table index out of range")
        order, present, counts = _grouped(indexes)
        pos = np.empty(indexes.size, dtype=np.int64)
        try:
            start = 0
            for k, count in zip(present, counts):
                pos[start:start + count] = self._coder.decode(tables.model(int(k)), int(count))
                start += count
        except BaseException as exc:  # constriction raises plain errors on garbage input
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise EntropyDecodeError(f"entropy decoding failed: {exc}") from None
        idx = indexes.ravel()[order].astype(np.int64)
        escaped = pos == tables.escape(idx)
        n = int(escaped.sum())
        if self._used + n > self._escapes.size:
            raise EntropyDecodeError("entropy stream escape count does not match its symbols")
        sym = np.where(escaped, 0, pos + tables.offset[idx])
        sym[escaped] = self._escapes[self._used:self._used + n]
        self._used += n
        out = np.empty(indexes.size, dtype=np.int32)
        out[order] = sym
        return out.reshape(indexes.shape)

    def close(self) -> None:
        """Check that the stream held exactly the chunks read (no trailing data, every escape used)."""
        if not self._coder.is_empty():
            raise EntropyDecodeError("entropy stream has trailing data")
        if self._used != self._escapes.size:
            raise EntropyDecodeError("entropy stream escape count does not match its symbols")


def decode(data: bytes, indexes: np.ndarray, tables: Tables) -> np.ndarray:
    """Inverse of encode(); raises EntropyDecodeError on any inconsistency."""
    reader = StreamReader(data, tables, indexes.size)
    symbols = reader.read(indexes)
    reader.close()
    return symbols

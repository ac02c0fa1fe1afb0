"""A parallel corpus encoded into subword ids, held once, as compact integer arrays."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from nmt.data.batching import Batch
from nmt.data.parallel import ReadStats, read_parallel
from nmt.data.tokenizer import Tokenizer

log = logging.getLogger(__name__)

# Lines encoded per SentencePiece call: large enough to amortise the call, small enough that
# the text of a big corpus never sits in memory at once.
ENCODE_CHUNK = 8192


@dataclass
class EncodedPairs:
    """Subword ids of each pair (no BOS/EOS: the Batch adds them)."""

    src: list[np.ndarray] = field(default_factory=list)
    tgt: list[np.ndarray] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.src)

    @property
    def src_lengths(self) -> np.ndarray:
        return np.fromiter((len(s) for s in self.src), dtype=np.int64, count=len(self.src))

    @property
    def tgt_lengths(self) -> np.ndarray:
        return np.fromiter((len(t) for t in self.tgt), dtype=np.int64, count=len(self.tgt))

    def batch(self, indices: Sequence[int]) -> Batch:
        return Batch.from_pairs(
            [self.src[i] for i in indices], [self.tgt[i] for i in indices], indices
        )


def _chunks(
    pairs: Iterator[tuple[int, str, str]], size: int
) -> Iterator[list[tuple[int, str, str]]]:
    while chunk := list(islice(pairs, size)):
        yield chunk


def encode_parallel(
    tokenizer: Tokenizer,
    src_path: Path,
    tgt_path: Path,
    *,
    max_len: int | None,
    stats: ReadStats | None = None,
) -> EncodedPairs:
    """Read, encode and length-filter a file pair; ``stats`` counts what was dropped and why.

    ``max_len`` limits subword tokens per side, before the BOS/EOS that batching adds.
    """
    stats = stats if stats is not None else ReadStats()
    encoded = EncodedPairs()
    dtype = np.int16 if tokenizer.vocab_size <= np.iinfo(np.int16).max else np.int32
    for chunk in _chunks(read_parallel(src_path, tgt_path, stats=stats), ENCODE_CHUNK):
        src_ids = tokenizer.encode_batch([src for _, src, _ in chunk])
        tgt_ids = tokenizer.encode_batch([tgt for _, _, tgt in chunk])
        for (number, _, _), s, t in zip(chunk, src_ids, tgt_ids, strict=True):
            if max_len is not None and max(len(s), len(t)) > max_len:
                stats.kept -= 1
                stats.dropped_long += 1
                continue
            encoded.src.append(np.asarray(s, dtype=dtype))
            encoded.tgt.append(np.asarray(t, dtype=dtype))
            encoded.line_numbers.append(number)
    log.info("%s / %s: %s", src_path, tgt_path, stats.summary())
    return encoded

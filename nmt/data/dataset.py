"""A parallel corpus encoded into subword ids, held as flat integer arrays.

Pair i's source ids are ``src_ids[src_offsets[i]:src_offsets[i + 1]]`` (and likewise for the
target): one token array and one offset array per side, whatever the corpus size, instead of one
small array per sentence. The arrays are ordinary numpy arrays or read-only memory maps of the
on-disk cache (nmt.data.cache); nothing here can tell the difference.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path

import numpy as np

from nmt.data.batching import Batch
from nmt.data.parallel import ReadStats, read_parallel
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer

log = logging.getLogger(__name__)

# Lines encoded per SentencePiece call (its batch encoder uses every core): large enough to
# amortise the call, small enough that the text of a big corpus never sits in memory at once.
ENCODE_CHUNK = 16384


@dataclass(frozen=True)
class EncodedPairs:
    """Subword ids of each pair (no BOS/EOS: the Batch adds them), flat, with offsets."""

    src_ids: np.ndarray  # (source tokens,) uint16 or int32
    src_offsets: np.ndarray  # (N + 1,) int64: pair i is src_ids[src_offsets[i]:src_offsets[i+1]]
    tgt_ids: np.ndarray  # (target tokens,)
    tgt_offsets: np.ndarray  # (N + 1,) int64
    line_numbers: np.ndarray  # (N,) int64: each pair's line in its files, from 1

    def __len__(self) -> int:
        return len(self.line_numbers)

    @property
    def src_lengths(self) -> np.ndarray:
        return np.diff(self.src_offsets)

    @property
    def tgt_lengths(self) -> np.ndarray:
        return np.diff(self.tgt_offsets)

    def src(self, i: int) -> np.ndarray:
        return self.src_ids[self.src_offsets[i] : self.src_offsets[i + 1]]

    def tgt(self, i: int) -> np.ndarray:
        return self.tgt_ids[self.tgt_offsets[i] : self.tgt_offsets[i + 1]]

    def batch(
        self,
        indices: Sequence[int] | np.ndarray,
        *,
        pad_id: int = PAD_ID,
        bos_id: int = BOS_ID,
        eos_id: int = EOS_ID,
    ) -> Batch:
        """The pairs ``indices`` padded into a Batch, with the model's special ids."""
        src = [self.src(int(i)) for i in indices]
        tgt = [self.tgt(int(i)) for i in indices]
        return Batch.from_pairs(src, tgt, indices, pad_id=pad_id, bos_id=bos_id, eos_id=eos_id)


@dataclass(frozen=True)
class EncodedChunk:
    """A few thousand encoded pairs, flat, as the encoder streams them out."""

    src_ids: np.ndarray
    src_lengths: np.ndarray
    tgt_ids: np.ndarray
    tgt_lengths: np.ndarray
    line_numbers: np.ndarray


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned type that holds every id (uint16 up to 65,536 pieces)."""
    return np.dtype(np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.int32)


def _flatten(ids: list[list[int]], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(chain.from_iterable(ids), dtype=dtype, count=int(lengths.sum()))
    return flat, lengths


def _keep(flat: np.ndarray, lengths: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return flat[np.repeat(keep, lengths)]


def encode_chunks(
    tokenizer: Tokenizer,
    src_path: Path,
    tgt_path: Path,
    *,
    max_len: int | None,
    stats: ReadStats,
) -> Iterator[EncodedChunk]:
    """Read, encode and length-filter a file pair chunk by chunk; ``stats`` counts the drops.

    ``max_len`` limits subword tokens per side, before the BOS/EOS that batching adds.
    """
    dtype = token_dtype(tokenizer.vocab_size)
    pairs = read_parallel(src_path, tgt_path, stats=stats)
    while chunk := list(islice(pairs, ENCODE_CHUNK)):
        src_ids, src_lengths = _flatten(tokenizer.encode_batch([s for _, s, _ in chunk]), dtype)
        tgt_ids, tgt_lengths = _flatten(
            tokenizer.encode_target_batch([t for _, _, t in chunk]), dtype
        )
        lines = np.fromiter((n for n, _, _ in chunk), dtype=np.int64, count=len(chunk))
        keep = np.ones(len(chunk), dtype=bool)
        if max_len is not None:
            keep = np.maximum(src_lengths, tgt_lengths) <= max_len
            dropped = int((~keep).sum())
            stats.kept -= dropped
            stats.dropped_long += dropped
        yield EncodedChunk(
            src_ids=_keep(src_ids, src_lengths, keep),
            src_lengths=src_lengths[keep],
            tgt_ids=_keep(tgt_ids, tgt_lengths, keep),
            tgt_lengths=tgt_lengths[keep],
            line_numbers=lines[keep],
        )


def offsets(lengths: Sequence[np.ndarray]) -> np.ndarray:
    """(N + 1,) start of each pair's ids, and the total at the end, from per-chunk lengths."""
    out = np.zeros(sum(len(x) for x in lengths) + 1, dtype=np.int64)
    if len(out) > 1:
        np.cumsum(np.concatenate(lengths), out=out[1:])
    return out


def encode_parallel(
    tokenizer: Tokenizer,
    src_path: Path,
    tgt_path: Path,
    *,
    max_len: int | None,
    stats: ReadStats | None = None,
) -> EncodedPairs:
    """Encode a file pair in memory (dev and test sets; nmt.data.cache for training data)."""
    stats = stats if stats is not None else ReadStats()
    chunks = list(encode_chunks(tokenizer, src_path, tgt_path, max_len=max_len, stats=stats))
    dtype = token_dtype(tokenizer.vocab_size)
    log.info("%s / %s: %s", src_path, tgt_path, stats.summary())
    return EncodedPairs(
        src_ids=np.concatenate([c.src_ids for c in chunks] or [np.zeros(0, dtype)]),
        src_offsets=offsets([c.src_lengths for c in chunks]),
        tgt_ids=np.concatenate([c.tgt_ids for c in chunks] or [np.zeros(0, dtype)]),
        tgt_offsets=offsets([c.tgt_lengths for c in chunks]),
        line_numbers=np.concatenate([c.line_numbers for c in chunks] or [np.zeros(0, np.int64)]),
    )

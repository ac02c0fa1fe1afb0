"""A vocabulary shortlist: the target pieces likely for a batch's sources, from training data.

At batch 1 on an OPUS-MT-sized model the output projection over 58k pieces is more than half of
a decoding step (docs/engines.md). CTranslate2's ``vmap`` and Marian's lexical shortlist restrict
that projection, per batch, to the pieces the batch's sources make likely. This module builds
such a list from co-occurrence in the training pairs, Marian's way without an aligner: for each
source piece ``s``, the ``per_source`` target pieces ``t`` with the highest
p(t | s) = count(s and t in the same pair) / count(s), plus the ``frequent`` most frequent target
pieces, which every batch gets.

The list is exact-fallback safe by construction of its user: ``Shortlist.covers`` says whether
tokens that must be scored (a forced prefix, a reference) are all inside; where they are not,
the caller uses the full vocabulary. Integration into the search (a hook on the model's output
projection) is not done yet: see docs/engines.md.

Stored as safetensors (no pickled code): ``per_source`` (V, K) target ids, -1 where a source
piece had fewer than K partners, and ``frequent`` (F,).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from nmt.durable import write_file_atomically


class Shortlist:
    """Per source piece its likely target pieces, and the pieces every batch gets."""

    def __init__(self, per_source: Tensor, frequent: Tensor) -> None:
        self.per_source = per_source  # (V, K) target ids, -1 padding
        self.frequent = frequent  # (F,)

    @property
    def vocab_size(self) -> int:
        return self.per_source.size(0)

    @classmethod
    def build(
        cls,
        pairs: Iterable[tuple[Sequence[int], Sequence[int]]],
        vocab_size: int,
        *,
        per_source: int = 50,
        frequent: int = 500,
        always: Sequence[int] = (),
    ) -> Shortlist:
        """From (source ids, target ids) pairs: co-occurrence counts, each distinct pair of a
        source and a target piece counted once per sentence pair. ``always``: ids every batch
        gets whatever the counts (EOS, UNK)."""
        keys: list[np.ndarray] = []
        src_counts = np.zeros(vocab_size, dtype=np.int64)
        tgt_counts = np.zeros(vocab_size, dtype=np.int64)
        for src, tgt in pairs:
            s = np.unique(np.asarray(src, dtype=np.int64))
            t = np.unique(np.asarray(tgt, dtype=np.int64))
            src_counts[s] += 1
            tgt_counts[t] += 1
            keys.append((s[:, None] * vocab_size + t[None, :]).ravel())
        pair_keys, counts = np.unique(np.concatenate(keys) if keys else np.zeros(0, np.int64),
                                      return_counts=True)  # fmt: skip
        sources, targets = np.divmod(pair_keys, vocab_size)
        p_target = counts / src_counts[sources]  # p(t | s)
        # Per source piece, targets by descending p(t | s): sort by (source, -p).
        order = np.lexsort((-p_target, sources))
        sources, targets = sources[order], targets[order]
        first = np.searchsorted(sources, np.arange(vocab_size))
        rank = np.arange(len(sources)) - first[sources]
        keep = rank < per_source
        table = np.full((vocab_size, per_source), -1, dtype=np.int64)
        table[sources[keep], rank[keep]] = targets[keep]
        most_frequent = np.argsort(-tgt_counts, kind="stable")[:frequent]
        common = np.union1d(most_frequent, np.asarray(always, dtype=np.int64))
        return cls(torch.from_numpy(table), torch.from_numpy(common))

    def candidates(self, src: Tensor, pad_id: int | None = None) -> Tensor:
        """The sorted target ids for a batch of sources ``src`` (B, S): the union of each source
        piece's list and the frequent pieces."""
        pieces = src.flatten()
        if pad_id is not None:
            pieces = pieces[pieces != pad_id]
        listed = self.per_source[pieces.unique()].flatten()
        return torch.cat([listed[listed >= 0], self.frequent]).unique()  # sorted

    @staticmethod
    def covers(candidates: Tensor, tokens: Tensor) -> bool:
        """Whether every id in ``tokens`` is among the sorted ``candidates``: else the caller
        scores the full vocabulary (the exact fallback)."""
        if tokens.numel() == 0:
            return True
        where = torch.searchsorted(candidates, tokens.flatten()).clamp(max=candidates.numel() - 1)
        return bool((candidates[where] == tokens.flatten()).all())

    def save(self, path: Path) -> None:
        tensors = {"per_source": self.per_source.contiguous(), "frequent": self.frequent}
        write_file_atomically(path, lambda tmp: save_file(tensors, str(tmp)))

    @classmethod
    def load(cls, path: Path) -> Shortlist:
        tensors = load_file(str(path))
        return cls(tensors["per_source"], tensors["frequent"])

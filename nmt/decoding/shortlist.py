"""A vocabulary shortlist: the target pieces likely for a batch's sources, from training data.

At batch 1 on an OPUS-MT-sized model the output projection over 58k pieces is more than half of
a decoding step (docs/engines.md). CTranslate2's ``vmap`` and Marian's lexical shortlist restrict
that projection, per batch, to the pieces the batch's sources make likely. This module builds
such a list from co-occurrence in the training pairs, Marian's way without an aligner: for each
source piece ``s``, the ``per_source`` target pieces ``t`` with the highest
p(t | s) = count(s and t in the same pair) / count(s), plus the ``frequent`` most frequent target
pieces, which every batch gets.

The list is exact-fallback safe by construction of its user: ``Shortlist.covers`` says whether
tokens that must be scored (a forced prefix, a glossary's terms) are all inside; where they are
not, the Translator searches that batch over the full vocabulary. The search hands the list to
the model (EncodeOptions.vocabulary), whose output layer then scores those pieces only: every
other piece gets log P -inf, the listed ones are renormalised among themselves.

Built by ``nmt shortlist MODEL_DIR`` (``shortlist.safetensors`` beside the model), used with
``--shortlist``; off by default: its speed-up and BLEU cost are in docs/engines.md.

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
from nmt.errors import NmtError

SHORTLIST_FILE = "shortlist.safetensors"


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
        src_counts = np.zeros(vocab_size, dtype=np.int64)
        tgt_counts = np.zeros(vocab_size, dtype=np.int64)
        # Distinct (source, target) keys with their counts, merged chunk by chunk so that a
        # corpus's hundred million co-occurrences never sit in memory at once.
        pair_keys, counts = np.zeros(0, np.int64), np.zeros(0, np.int64)
        chunk: list[np.ndarray] = []
        chunk_size = 0

        def merge() -> None:
            nonlocal pair_keys, counts, chunk, chunk_size
            keys = np.concatenate([pair_keys, *chunk])
            weights = np.concatenate([counts, np.ones(chunk_size, np.int64)])
            pair_keys, inverse = np.unique(keys, return_inverse=True)
            counts = np.bincount(inverse, weights=weights).astype(np.int64)
            chunk, chunk_size = [], 0

        for src, tgt in pairs:
            s = np.unique(np.asarray(src, dtype=np.int64))
            t = np.unique(np.asarray(tgt, dtype=np.int64))
            src_counts[s] += 1
            tgt_counts[t] += 1
            chunk.append((s[:, None] * vocab_size + t[None, :]).ravel())
            chunk_size += len(chunk[-1])
            if chunk_size > 5_000_000:
                merge()
        merge()
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


def build_for_model(
    model_dir: Path,
    corpus_dir: Path | None = None,
    *,
    per_source: int = 50,
    frequent: int = 500,
    max_pairs: int | None = None,
) -> Path:
    """Build a model's shortlist from its training corpus (``corpus_dir``, default: the
    config's ``data.dir``): ``train.{src_lang}`` and ``train.{tgt_lang}`` through the model's
    own tokenizer, its first ``max_pairs`` lines if given. Written beside the model."""
    from nmt.config import load_config
    from nmt.data.tokenizer import load_tokenizer
    from nmt.models.store import CONFIG_FILE, resolve_model_dir

    model_dir = resolve_model_dir(model_dir)
    data = load_config(model_dir / CONFIG_FILE).data
    corpus_dir = Path(corpus_dir if corpus_dir is not None else data.dir)
    sides = [corpus_dir / f"train.{lang}" for lang in (data.src_lang, data.tgt_lang)]
    for side in sides:
        if not side.is_file():
            raise NmtError(f"{side}: no such file (the shortlist is built from training pairs)")
    tokenizer = load_tokenizer(model_dir)
    with sides[0].open(encoding="utf-8") as src, sides[1].open(encoding="utf-8") as tgt:
        sources, targets = src.read().splitlines(), tgt.read().splitlines()
    if len(sources) != len(targets):
        raise NmtError(f"{sides[0]} has {len(sources)} lines, {sides[1]} {len(targets)}")
    sources, targets = sources[:max_pairs], targets[:max_pairs]
    shortlist = Shortlist.build(
        zip(tokenizer.encode_batch(sources), tokenizer.encode_target_batch(targets), strict=True),
        tokenizer.vocab_size,
        per_source=per_source,
        frequent=frequent,
        always=[tokenizer.eos_id, tokenizer.unk_id],
    )
    shortlist.save(model_dir / SHORTLIST_FILE)
    return model_dir / SHORTLIST_FILE


def load_for_model(model_dir: Path) -> Shortlist:
    """The shortlist built beside a (resolved) model directory."""
    path = model_dir / SHORTLIST_FILE
    if not path.is_file():
        raise NmtError(f"{path}: no shortlist; build it with: nmt shortlist {model_dir}")
    return Shortlist.load(path)

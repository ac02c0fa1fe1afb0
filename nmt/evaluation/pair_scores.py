"""How likely a model finds given translations: log P(target | source) per pair, teacher-forced,
streamed pair by pair (``nmt score``), to filter a corpus or rank candidate translations.

A pair's score is its mean log-probability per target token (the EOS included), the usual
length-normalised measure for filtering (Junczys-Dowmunt, 2018, uses its cross-entropy form);
its total log P and token count come with it. A pair longer than the model's positions gets no
score (nan) and a warning with its line, rather than a score of a truncated pair.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nmt.data.batching import Batch
from nmt.data.tokenizer import Tokenizer

log = logging.getLogger(__name__)


@dataclass
class PairScore:
    log_prob: float
    """log P(target + EOS | source), natural log; nan when the pair could not be scored."""
    num_tokens: int
    """Target tokens scored, the EOS included."""

    @property
    def mean(self) -> float:
        return self.log_prob / self.num_tokens if self.num_tokens else math.nan

    def line(self) -> str:
        return f"{self.mean:.4f}\t{self.log_prob:.4f}\t{self.num_tokens}"


@torch.no_grad()
def score_pairs(
    model: nn.Module,
    tokenizer: Tokenizer,
    pairs: Iterable[tuple[str, str]],
    *,
    max_positions: int | None,
    device: torch.device,
    batch_size: int = 32,
    first_line: int = 1,
) -> Iterator[PairScore]:
    """The score of each (source, target) pair, in order, a batch of ``batch_size`` at a time."""
    model.eval()
    ids = {name: int(getattr(model, name)) for name in ("pad_id", "bos_id", "eos_id")}
    iterator = iter(pairs)
    line = first_line
    while chunk := list(itertools.islice(iterator, batch_size)):
        src = tokenizer.encode_batch([s for s, _ in chunk])
        tgt = tokenizer.encode_target_batch([t for _, t in chunk])
        fits = [
            max_positions is None or (len(s) + 1 <= max_positions and len(t) + 1 <= max_positions)
            for s, t in zip(src, tgt, strict=True)
        ]
        for i, ok in enumerate(fits):
            if not ok:
                log.warning(
                    "line %d: longer than the model's %s positions: no score",
                    line + i,
                    max_positions,
                )
        kept = [i for i, ok in enumerate(fits) if ok]
        scores: dict[int, PairScore] = {}
        if kept:
            batch = Batch.from_pairs(
                [src[i] for i in kept], [tgt[i] for i in kept], kept, **ids
            ).to(device)
            logits = model(batch.src, batch.src_mask, batch.tgt_in)  # (B, T, V)
            token_log_probs = (
                F.log_softmax(logits.float(), dim=-1)
                .gather(-1, batch.tgt_out.unsqueeze(-1))
                .squeeze(-1)
                * batch.tgt_mask
            )  # (B, T)
            for row, i in enumerate(kept):
                scores[i] = PairScore(float(token_log_probs[row].sum()), len(tgt[i]) + 1)
        for i in range(len(chunk)):
            yield scores.get(i, PairScore(math.nan, 0))
        line += len(chunk)

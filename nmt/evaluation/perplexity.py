"""How well a model predicts reference translations, token by token (teacher forcing).

Perplexity moves smoothly as a model improves, while BLEU of a weak model swings from one
checkpoint to the next; it is the score to compare checkpoints, or an average against its parts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from nmt.data.batching import TokenBudgetSampler
from nmt.data.dataset import EncodedPairs
from nmt.training.loss import label_smoothed_loss


@dataclass
class ReferenceLoss:
    nll: float  # cross-entropy per target token (EOS included), in nats
    target_tokens: int
    sentences: int

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.nll, 50.0))

    def report(self) -> str:
        return (
            f"perplexity of the references {self.perplexity:.2f}  "
            f"(cross-entropy {self.nll:.4f} nats per token; {self.target_tokens} target tokens "
            f"of {self.sentences} sentences, teacher-forced)"
        )


@torch.no_grad()
def reference_loss(
    model: nn.Module, pairs: EncodedPairs, *, max_tokens: int, device: torch.device
) -> ReferenceLoss:
    """Plain cross-entropy of ``pairs``' targets given their sources, in token-budget batches."""
    model.eval()
    sampler = TokenBudgetSampler(
        pairs.src_lengths, pairs.tgt_lengths, max_tokens=max_tokens, seed=0, shuffle=False
    )
    # The model's own special ids (an imported Marian model's are not nmt's defaults).
    ids = {name: int(getattr(model, name)) for name in ("pad_id", "bos_id", "eos_id")}
    nll, tokens = 0.0, 0
    for indices in sampler.epoch_batches(0):
        batch = pairs.batch(indices, **ids).to(device)
        sums = label_smoothed_loss(
            model(batch.src, batch.src_mask, batch.tgt_in),
            batch.tgt_out,
            epsilon=0.0,
            pad_id=batch.pad_id,
        )
        nll += float(sums.nll)
        tokens += sums.num_tokens
    return ReferenceLoss(nll / max(tokens, 1), tokens, len(pairs))

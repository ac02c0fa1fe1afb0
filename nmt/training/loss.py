"""Label-smoothed cross-entropy (the paper, section 5.4), with the plain cross-entropy beside it.

Smoothing follows Szegedy et al. (2016), as ``torch.nn.functional.cross_entropy`` does: the
target distribution puts 1 - ε on the reference token and ε / V on every token. Padding
positions count for nothing. Sums are returned, so that gradient accumulation and several
processes can divide by the token count of a whole update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from nmt.data.tokenizer import PAD_ID


@dataclass
class LossSums:
    smoothed: Tensor  # Σ label-smoothed cross-entropy over real target tokens (what is trained)
    nll: Tensor  # Σ plain cross-entropy −log p(y): perplexity = exp(nll / tokens)
    num_tokens: int


def label_smoothed_loss(
    logits: Tensor, target: Tensor, *, epsilon: float, pad_id: int = PAD_ID
) -> LossSums:
    """logits (B, T, V), target (B, T) with ``pad_id`` (the model's) where there is no token."""
    log_probs = logits.float().log_softmax(dim=-1).flatten(0, 1)  # (B·T, V)
    target = target.flatten()
    real = target != pad_id
    nll = F.nll_loss(log_probs, target, ignore_index=pad_id, reduction="sum")
    uniform = -(log_probs.sum(dim=-1) * real).sum() / log_probs.size(-1)
    smoothed = (1.0 - epsilon) * nll + epsilon * uniform
    return LossSums(smoothed=smoothed, nll=nll.detach(), num_tokens=int(real.sum()))

"""How well a model predicts reference translations, token by token (teacher forcing).

Perplexity moves smoothly as a model improves, while BLEU of a weak model swings from one
checkpoint to the next; it is the score to compare checkpoints, or an average against its parts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.data.batching import TokenBudgetSampler
from nmt.data.dataset import EncodedPairs


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


CHUNK_ELEMENTS = 2**21  # logits at a time: 8 MiB in float32


def chunked_cross_entropy(
    hidden: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, pad_id: int
) -> float:
    """Σ cross-entropy of the logits ``hidden @ weightᵀ + bias`` (hidden (B, T, D), weight (V,
    D)) against ``target`` (B, T), pads left out, a few thousand logits rows at a time."""
    hidden, target = hidden.flatten(0, 1), target.flatten()
    rows = max(1, CHUNK_ELEMENTS // weight.size(0))
    total = 0.0
    for start in range(0, hidden.size(0), rows):
        logits = F.linear(hidden[start : start + rows], weight, bias).float()
        chunk_target = target[start : start + rows]
        total += float(F.cross_entropy(logits, chunk_target, ignore_index=pad_id, reduction="sum"))
    return total


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
    # A model that can hand over its last hidden states (the Transformer's) has its output layer
    # applied chunk by chunk, as in training: the whole (B, T, V) logits and their log-softmax
    # were ~100 MB at the quickstart's budget, the peak of `nmt train`'s resident memory.
    output_layer = getattr(model, "output_layer", None)
    nll, tokens = 0.0, 0
    for indices in sampler.epoch_batches(0):
        batch = pairs.batch(indices, **ids).to(device)
        if output_layer is not None:
            hidden = model(batch.src, batch.src_mask, batch.tgt_in, features=True)
            weight, bias = output_layer()
            nll += chunked_cross_entropy(hidden, weight, bias, batch.tgt_out, batch.pad_id)
        else:
            logits = model(batch.src, batch.src_mask, batch.tgt_in)  # (B, T, V)
            nll += float(
                F.cross_entropy(
                    logits.float().flatten(0, 1),
                    batch.tgt_out.flatten(),
                    ignore_index=batch.pad_id,
                    reduction="sum",
                )
            )
        tokens += int((batch.tgt_out != batch.pad_id).sum())
    return ReferenceLoss(nll / max(tokens, 1), tokens, len(pairs))

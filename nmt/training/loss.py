"""Label-smoothed cross-entropy (the paper, section 5.4), with the plain cross-entropy beside it.

Smoothing follows Szegedy et al. (2016), as ``torch.nn.functional.cross_entropy`` does: the
target distribution puts 1 - ε on the reference token and ε / V on every token. Padding
positions count for nothing. Sums are returned, so that gradient accumulation and several
processes can divide by the token count of a whole update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
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


# -- the output layer and the loss in one pass, chunk by chunk ---------------------------------

CHUNK_ELEMENTS = 2**21
"""Logits per chunk (rows × vocabulary) on the CPU: 8 MiB in float32, small enough that glibc
serves every chunk's buffers from its heap again instead of mapping fresh pages from the
kernel."""
CUDA_CHUNK_ELEMENTS = 2**26
"""On a GPU, where memory is the caching allocator's and small matmuls waste the device: 256 MiB
of float32 logits a chunk (a few chunks for the paper's 25,000-token batches)."""


class _OutputLayerLoss(torch.autograd.Function):
    """Σ label-smoothed and plain cross-entropy of ``hidden @ weightᵀ + bias``, computed chunk by
    chunk of positions, with the gradients worked out on the way (softmax − q, where q is the
    smoothed target distribution): the (positions × vocabulary) logits, their log-softmax and
    their gradients never exist whole. The matmuls run in ``dtype`` (bfloat16 under autocast,
    as autocast would run them), softmax and sums in float32."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        target: Tensor,
        epsilon: float,
        pad_id: int,
        dtype: torch.dtype,
    ) -> tuple[Tensor, Tensor]:
        vocab_size = weight.size(0)
        budget = CUDA_CHUNK_ELEMENTS if hidden.device.type == "cuda" else CHUNK_ELEMENTS
        rows = max(1, budget // vocab_size)
        low_weight = weight.detach().to(dtype)
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros_like(weight, dtype=torch.float32)
        grad_bias = None if bias is None else torch.zeros_like(bias, dtype=torch.float32)
        smoothed = hidden.new_zeros((), dtype=torch.float64)
        nll = hidden.new_zeros((), dtype=torch.float64)
        for start in range(0, hidden.size(0), rows):
            h = hidden[start : start + rows].detach().to(dtype)
            t = target[start : start + rows]
            real = (t != pad_id).float()
            logits = (h @ low_weight.T).float()
            if bias is not None:
                logits += bias.detach().float()
            log_probs = logits.log_softmax(dim=-1)
            token_nll = -log_probs.gather(1, t[:, None]).squeeze(1) * real
            uniform = -log_probs.sum(dim=-1) * real / vocab_size
            smoothed += ((1.0 - epsilon) * token_nll + epsilon * uniform).sum().double()
            nll += token_nll.sum().double()
            # d loss / d logits = softmax − q, q = (1 − ε)·onehot(target) + ε / V; 0 at padding.
            grad_logits = log_probs.exp_().sub_(epsilon / vocab_size)
            grad_logits[torch.arange(t.numel(), device=t.device), t] -= 1.0 - epsilon
            grad_logits *= real[:, None]
            if grad_bias is not None:
                grad_bias += grad_logits.sum(dim=0)
            low_grad = grad_logits.to(dtype)
            grad_hidden[start : start + rows] = low_grad @ low_weight
            grad_weight += low_grad.T @ h
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.weight_dtype = weight.dtype
        return smoothed.float(), nll.float()

    @staticmethod
    def backward(ctx: Any, grad_smoothed: Tensor, grad_nll: Tensor) -> tuple[Tensor | None, ...]:
        # Only the smoothed loss is trained; the plain one is reported (detached by its users).
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        scale = grad_smoothed.to(grad_hidden.dtype)
        return (
            grad_hidden * scale,
            (grad_weight * scale).to(ctx.weight_dtype),
            None if grad_bias is None else grad_bias * scale,
            None,
            None,
            None,
            None,
        )


def output_layer_loss(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    target: Tensor,
    *,
    epsilon: float,
    pad_id: int = PAD_ID,
    dtype: torch.dtype = torch.float32,
) -> LossSums:
    """``label_smoothed_loss`` of the logits ``hidden @ weightᵀ + bias`` (hidden (B, T, D),
    weight (V, D), target (B, T)) without the logits: the same sums and gradients, computed chunk
    by chunk (_OutputLayerLoss). Training's loss for the Transformer: at the quickstart's batch
    size the whole logits, their log-softmax and gradients were hundreds of megabytes a step."""
    flat_target = target.flatten()
    smoothed, nll = _OutputLayerLoss.apply(
        hidden.flatten(0, 1), weight, bias, flat_target, epsilon, pad_id, dtype
    )
    return LossSums(
        smoothed=smoothed, nll=nll.detach(), num_tokens=int((flat_target != pad_id).sum())
    )

"""The one contract between models and search.

Search (greedy, beam, sampling) drives every model through this surface and never asks which
model it is. Shapes: B batch (sentences × beams), S source length, T target length, V vocabulary.

Masks follow one convention everywhere: bool, True = a real token that may be attended to.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Protocol, Self, runtime_checkable

from torch import Tensor, nn


@runtime_checkable
class DecoderState(Protocol):
    """Everything a model needs to take the next decoding step for each row of a batch.

    The Transformer's holds per-layer self-attention key/value caches and the cross-attention
    keys/values computed once from the encoder output; a recurrent model's holds the hidden (and
    cell) states, the input-feeding vector and the encoder outputs.
    """

    def select(self, indices: Tensor) -> Self:
        """The state of rows ``indices`` (B',) in that order: how beams are kept and reordered."""
        ...


@runtime_checkable
class Seq2SeqModel(Protocol):
    """What every translation model offers to training and to search."""

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced logits (B, T, V) for ``tgt_in`` (B, T), given ``src`` (B, S)."""
        ...

    def encode(self, src: Tensor, src_mask: Tensor) -> DecoderState:
        """Run the encoder once; the returned state starts decoding (no target token seen yet)."""
        ...

    def decode_step(self, prev_tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """Feed one token per row (B,); return log-probabilities (B, V) of the next one."""
        ...

    def cross_attention(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor | None:
        """Encoder–decoder attention weights (B, L, H, T, S) per layer L and head H of a
        teacher-forced pass, or None for a model without attention."""
        ...


class TranslationModel(nn.Module):
    """Base class of nmt's models: a torch module that honours ``Seq2SeqModel``.

    ``src_embed`` and ``tgt_embed`` (one object when shared) are where pretrained word vectors
    are loaded.
    """

    src_embed: nn.Embedding
    tgt_embed: nn.Embedding

    @abstractmethod
    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor: ...

    @abstractmethod
    def encode(self, src: Tensor, src_mask: Tensor) -> DecoderState: ...

    @abstractmethod
    def decode_step(
        self, prev_tokens: Tensor, state: DecoderState
    ) -> tuple[Tensor, DecoderState]: ...

    @abstractmethod
    def cross_attention(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor | None: ...

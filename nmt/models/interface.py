"""The one contract between models and search.

Search (greedy, beam, sampling) drives every model through this surface and never asks which
model it is. Shapes: B batch (sentences), N rows (sentences × beams), S source length, T target
length, t target positions fed so far, L layers, H heads, V vocabulary.

Masks follow one convention everywhere: bool, True = a real token that may be attended to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Self, TypedDict, runtime_checkable

from torch import Tensor, nn

from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID


@dataclass(frozen=True)
class EncodeOptions:
    """What search tells a model before decoding starts.

    ``max_steps``: how many ``decode_step`` calls may follow (lets a model preallocate its
    caches; None: up to its maximum length). ``record_attention``: keep the cross-attention
    weights of every step in ``state.attention``. ``logits``: ``decode_step`` returns the
    output layer's raw logits instead of their log_softmax, for a guard that reads logits
    (CTranslate2's repetition penalty); a model without logits of its own (an ensemble) returns
    its log-probabilities, which are logits of the same distribution (softmax gives it back).
    ``vocabulary``: sorted target ids (a vocabulary shortlist, nmt.decoding.shortlist) the
    output layer may score: the distribution is over them alone, every other id gets -inf; a
    model that cannot restrict its output layer scores the full vocabulary (exact).
    """

    max_steps: int | None = None
    record_attention: bool = False
    logits: bool = False
    vocabulary: Tensor | None = None


DEFAULT_ENCODE_OPTIONS = EncodeOptions()  # one shared default: a frozen value, never mutated


@runtime_checkable
class DecoderState(Protocol):
    """Everything a model needs to take the next decoding step for each row of a batch.

    The Transformer's holds per-layer self-attention key/value caches and the cross-attention
    keys/values computed once from the encoder output; a recurrent model's holds the hidden (and
    cell) states, the input-feeding vector and the encoder outputs.

    A state may be updated in place (the Transformer writes its caches where they lie): after
    ``decode_step`` or ``select``, use only the state they returned.
    """

    def select(self, indices: Tensor) -> Self:
        """The state of rows ``indices`` (N',) in that order: how beams are kept and reordered."""
        ...

    @property
    def attention(self) -> Tensor | None:
        """Cross-attention weights (N, t, L, H, S) of every step fed so far, computed by the
        model while decoding (rows reordered by ``select``); None unless ``encode`` was asked to
        record them, or for a model without attention. Recurrent models: L = H = 1."""
        ...


@runtime_checkable
class Seq2SeqModel(Protocol):
    """What every translation model offers to training and to search.

    A model may also say how long a sequence it takes, as ``max_positions`` or
    ``config.max_positions``: a Translator built on it truncates longer sources to that.
    """

    pad_id: int
    bos_id: int  # the decoder's start token
    eos_id: int

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced logits (B, T, V) for ``tgt_in`` (B, T), given ``src`` (B, S)."""
        ...

    def encode(
        self, src: Tensor, src_mask: Tensor, options: EncodeOptions = DEFAULT_ENCODE_OPTIONS
    ) -> DecoderState:
        """Run the encoder once; the returned state starts decoding (no target token seen yet),
        as ``options`` ask."""
        ...

    def decode_step(self, prev_tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """Feed one token per row (N,); return log-probabilities (N, V) of the next one (logits
        if ``encode`` was asked for them), in a tensor of their own (not kept, not a view of
        one kept): search takes it over and changes it in place."""
        ...

    def cross_attention(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor | None:
        """Encoder–decoder attention weights (B, L, H, T, S) per layer L and head H of a
        teacher-forced pass, or None for a model without attention."""
        ...


class SpecialIds(TypedDict, total=False):
    """A model's special token ids, as its constructor takes them (each defaults to the
    tokenizer's)."""

    pad_id: int
    bos_id: int
    eos_id: int


class TranslationModel(nn.Module, Seq2SeqModel):
    """Base class of nmt's models: a torch module that implements ``Seq2SeqModel``.

    ``src_embed`` and ``tgt_embed`` (one object when shared) are where pretrained word vectors
    are loaded; the special ids are the model's own (a model imported from elsewhere has its
    tokenizer's ids).
    """

    src_embed: nn.Embedding
    tgt_embed: nn.Embedding

    def __init__(self, *, pad_id: int = PAD_ID, bos_id: int = BOS_ID, eos_id: int = EOS_ID) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.bos_id = bos_id
        self.eos_id = eos_id

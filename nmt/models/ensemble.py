"""Ensembles: several trained models that translate as one.

At every step each member predicts the next token on its own (from its own encoder, decoder
state and weights) and the ensemble's distribution is the mean of theirs:

    p(y_t | y_<t, x) = (1/n) · Σ_i p_i(y_t | y_<t, x)

In log space, as search wants it: log p = logsumexp_i(log p_i) − log n. This is the average of
probabilities, not of log-probabilities (a geometric mean, which would renormalise differently
and let one confident member veto a token the others like).

The ensemble honours the model contract (nmt.models.interface), so greedy, beam search and
sampling drive it unchanged. Its members must read and write the same vocabulary: one
tokenizer (the same files, byte for byte) and the same special ids; ``load_models`` refuses
anything else with an NmtError.

Shapes: B batch, N rows (sentences × beams), T target length, V vocabulary, n members.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import torch
from torch import Tensor, nn

from nmt.errors import NmtError
from nmt.models.interface import (
    DEFAULT_ENCODE_OPTIONS,
    DecoderState,
    EncodeOptions,
    TranslationModel,
)
from nmt.models.store import LoadedModel, load_model_dir, resolve_model_dir


def mean_of_probabilities(member_log_probs: Sequence[Tensor]) -> Tensor:
    """log((1/n) Σ_i p_i) from the members' log-probabilities (..., V) each: at least float32,
    so that the sum of small probabilities is not rounded away."""
    stacked = torch.stack(list(member_log_probs))  # (n, ..., V)
    stacked = stacked.to(torch.promote_types(stacked.dtype, torch.float32))
    return stacked.logsumexp(dim=0) - math.log(len(member_log_probs))


@dataclass
class EnsembleState:
    """One decoder state per member, kept row for row in step."""

    members: list[DecoderState]

    def select(self, indices: Tensor) -> EnsembleState:
        return EnsembleState([state.select(indices) for state in self.members])

    @property
    def attention(self) -> Tensor | None:
        """The first member's recorded cross-attention (None if it records none): the members'
        layers and heads differ, and no mean of them would be any model's attention."""
        return self.members[0].attention


class Ensemble(TranslationModel):
    """Members that decode together by averaging their next-token probabilities.

    ``forward`` returns log of the mean probabilities (B, T, V) of a teacher-forced pass: logits
    whose softmax is the ensemble's distribution, so losses and perplexity read it as they read
    any model's logits. ``cross_attention`` and the decoding state's ``attention`` are the first
    member's. An ensemble is for inference: it has no embeddings of its own to train or load.
    """

    def __init__(self, members: Sequence[TranslationModel]) -> None:
        if not members:
            raise NmtError("an ensemble needs at least one model")
        ids = {(m.pad_id, m.bos_id, m.eos_id) for m in members}
        if len(ids) > 1:
            raise NmtError(
                f"the ensemble's models use different special ids (pad, bos, eos): {sorted(ids)}"
            )
        pad_id, bos_id, eos_id = ids.pop()
        super().__init__(pad_id=pad_id, bos_id=bos_id, eos_id=eos_id)
        self.members = nn.ModuleList(members)

    def _models(self) -> list[TranslationModel]:
        return cast(list[TranslationModel], list(self.members))

    @property
    def max_positions(self) -> int | None:
        """The longest sequence all members take: the least of their configs' limits (None
        if no member says), so that a Translator built on the ensemble truncates to it."""
        limits = [getattr(getattr(m, "config", None), "max_positions", None) for m in self.members]
        known = [n for n in limits if isinstance(n, int)]
        return min(known) if known else None

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        logits = [m(src, src_mask, tgt_in).log_softmax(dim=-1) for m in self._models()]
        return mean_of_probabilities(logits)

    def encode(
        self, src: Tensor, src_mask: Tensor, options: EncodeOptions = DEFAULT_ENCODE_OPTIONS
    ) -> EnsembleState:
        # The mean is taken of the members' log-probabilities, never of their logits: asked for
        # logits, the ensemble gives its log-probabilities (logits of its distribution).
        members = replace(options, logits=False)
        return EnsembleState([m.encode(src, src_mask, members) for m in self._models()])

    def decode_step(self, prev_tokens: Tensor, state: DecoderState) -> tuple[Tensor, EnsembleState]:
        assert isinstance(state, EnsembleState)
        steps = [
            m.decode_step(prev_tokens, s)
            for m, s in zip(self._models(), state.members, strict=True)
        ]
        log_probs = mean_of_probabilities([log_p for log_p, _ in steps])  # (N, V)
        return log_probs, EnsembleState([s for _, s in steps])

    def cross_attention(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor | None:
        """The first member's teacher-forced cross-attention (B, L, H, T, S), or None."""
        return self._models()[0].cross_attention(src, src_mask, tgt_in)


def check_same_tokenizer(model_dirs: Sequence[Path]) -> None:
    """Refuse model directories whose tokenizer files are not identical to the first one's."""
    from nmt.data.tokenizer import TOKENIZER_FILE, PairTokenizer, Tokenizer

    def files(folder: Path) -> dict[str, bytes]:
        kind = Tokenizer if (folder / TOKENIZER_FILE).is_file() else PairTokenizer
        return {name: (folder / name).read_bytes() for name in kind.files}

    first = files(model_dirs[0])
    for other in model_dirs[1:]:
        if files(other) != first:
            raise NmtError(
                f"{other}: its tokenizer differs from that of {model_dirs[0]}; "
                "an ensemble's models must share one tokenizer"
            )


def load_models(model_dirs: Path | Sequence[Path], *, device: str = "cpu") -> LoadedModel:
    """One model directory's model (as nmt.models.store.load_model_dir loads it), or several as
    an Ensemble. An ensemble's config is its first model's (its ``decoding`` section serves as
    the default search), with ``max_positions`` lowered to the smallest of its models'."""
    paths = [Path(model_dirs)] if isinstance(model_dirs, str | Path) else list(model_dirs)
    if not paths:
        raise NmtError("no model directory given")
    if len(paths) == 1:
        return load_model_dir(paths[0], device=device)
    resolved = [resolve_model_dir(Path(p)) for p in paths]
    check_same_tokenizer(resolved)
    loaded = [load_model_dir(p, device=device) for p in resolved]
    max_positions = min(one.config.model.max_positions for one in loaded)
    first = loaded[0].config
    config = first.model_copy(
        update={"model": first.model.model_copy(update={"max_positions": max_positions})}
    )
    ensemble = Ensemble([one.model for one in loaded]).eval()
    return LoadedModel(model=ensemble, config=config, tokenizer=loaded[0].tokenizer)

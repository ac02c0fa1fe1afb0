"""Text in, text out: tokenization, token-budget batches and search behind one object.

Search (nmt.decoding.search) knows only ids; this module turns sentences into padded id batches
(shortest first, at most ``max_tokens`` source tokens each, padding and EOS included), runs the
search and puts the detokenized outputs back in input order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import Tensor

from nmt.data.batching import group_by_length, pad_sequences
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer
from nmt.decoding.search import Hypothesis, beam_search, generate, greedy_hypotheses, sampler
from nmt.errors import NmtError
from nmt.models.interface import Seq2SeqModel

log = logging.getLogger(__name__)

Search = Callable[[Tensor, Tensor], list[list[Hypothesis]]]  # (src, src_mask) → per sentence


@dataclass
class Translation:
    """One output: detokenized text, its ids (no BOS/EOS), and its search score."""

    text: str
    tokens: list[int]
    score: float
    attention: Tensor | None = None  # (L, H, T, S) cross-attention, T = len(tokens) + 1


class Translator:
    """Translate sentences with a model in eval mode on ``device`` (see :meth:`load`).

    ``max_positions`` is the longest sequence the model accepts: longer sources are truncated
    to it (EOS included), with a warning, and outputs are capped to fit it too.
    """

    def __init__(
        self,
        model: Seq2SeqModel,
        tokenizer: Tokenizer,
        *,
        device: str | torch.device = "cpu",
        max_positions: int | None = None,
    ) -> None:
        if max_positions is not None and max_positions < 2:
            raise ValueError(f"max_positions must be >= 2 (a token and EOS), not {max_positions}")
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.max_positions = max_positions

    @classmethod
    def load(cls, model_dir: Path, *, device: str = "cpu") -> Translator:
        """A Translator for a model directory (or a run directory's best model)."""
        from nmt.models.store import load_model_dir

        loaded = load_model_dir(model_dir, device=device)
        return cls(
            cast(Seq2SeqModel, loaded.model),  # build_model's models all honour the contract
            loaded.tokenizer,
            device=device,
            max_positions=loaded.config.model.max_positions,
        )

    @property
    def _max_len_cap(self) -> int | None:
        # The decoder reads BOS + max_len tokens; one more position is fed to score the EOS.
        return None if self.max_positions is None else self.max_positions - 1

    # -- the public verbs -------------------------------------------------------------------

    def translate(
        self,
        sentences: Sequence[str],
        *,
        beam_size: int = 4,
        length_penalty: float = 0.6,
        max_len_a: float = 1.0,
        max_len_b: int = 50,
        max_tokens: int = 4000,
        first_line: int = 1,
    ) -> list[str]:
        """The best translation of each sentence, in input order (beam_size 1: greedy search).

        ``first_line`` is the line number of ``sentences[0]`` in warnings.
        """
        nbest = self.translate_nbest(
            sentences,
            nbest=1,
            beam_size=beam_size,
            length_penalty=length_penalty,
            max_len_a=max_len_a,
            max_len_b=max_len_b,
            max_tokens=max_tokens,
            first_line=first_line,
        )
        return [translations[0].text for translations in nbest]

    def translate_nbest(
        self,
        sentences: Sequence[str],
        *,
        nbest: int,
        beam_size: int = 4,
        length_penalty: float = 0.6,
        max_len_a: float = 1.0,
        max_len_b: int = 50,
        max_tokens: int = 4000,
        return_attention: bool = False,
        first_line: int = 1,
    ) -> list[list[Translation]]:
        """Up to ``nbest`` translations per sentence, best first.

        An empty sentence gets one empty translation scored 0. With ``return_attention`` each
        translation carries the model's cross-attention for it (None for a model without one).
        """
        if beam_size < 1:
            raise NmtError(f"beam size must be at least 1, not {beam_size}")
        if not 1 <= nbest <= beam_size:
            raise NmtError(
                f"n-best size must be between 1 and the beam size ({beam_size}), not {nbest}"
            )
        cap = self._max_len_cap

        def search(src: Tensor, src_mask: Tensor) -> list[list[Hypothesis]]:
            if beam_size > 1:
                return beam_search(
                    self.model,
                    src,
                    src_mask,
                    beam_size=beam_size,
                    length_penalty=length_penalty,
                    max_len_a=max_len_a,
                    max_len_b=max_len_b,
                    max_len_cap=cap,
                    nbest=nbest,
                )
            return [
                [hyp]
                for hyp in greedy_hypotheses(
                    self.model,
                    src,
                    src_mask,
                    length_penalty=length_penalty,
                    max_len_a=max_len_a,
                    max_len_b=max_len_b,
                    max_len_cap=cap,
                )
            ]

        return self._run(sentences, search, max_tokens, first_line, return_attention)

    def translate_sampled(
        self,
        sentences: Sequence[str],
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        max_len_a: float = 1.0,
        max_len_b: int = 50,
        max_tokens: int = 4000,
        first_line: int = 1,
    ) -> list[str]:
        """One sampled translation per sentence (back-translation); a seed makes it repeatable."""
        generator = torch.Generator(device=self.device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        try:
            pick = sampler(temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        except ValueError as exc:
            raise NmtError(str(exc)) from None
        cap = self._max_len_cap

        def search(src: Tensor, src_mask: Tensor) -> list[list[Hypothesis]]:
            with torch.inference_mode():
                outputs, log_probs = generate(
                    self.model,
                    src,
                    src_mask,
                    pick,
                    max_len_a=max_len_a,
                    max_len_b=max_len_b,
                    max_len_cap=cap,
                )
            return [[Hypothesis(ids, lp, lp)] for ids, lp in zip(outputs, log_probs, strict=True)]

        results = self._run(sentences, search, max_tokens, first_line, return_attention=False)
        return [translations[0].text for translations in results]

    # -- behind the scenes ------------------------------------------------------------------

    def _encode(self, sentences: Sequence[str], first_line: int) -> list[list[int]]:
        """Ids per sentence ([] for a blank one), truncated to the model's limit with a warning."""
        ids = self._tokenize(sentences)
        if self.max_positions is not None:
            limit = self.max_positions - 1  # room for the EOS every source gets
            for i, row in enumerate(ids):
                if len(row) > limit:
                    log.warning(
                        "line %d: %d tokens, more than the model's limit of %d; "
                        "translating the first %d only",
                        first_line + i,
                        len(row),
                        limit,
                        limit,
                    )
                    ids[i] = row[:limit]
        return ids

    def _tokenize(self, sentences: Sequence[str]) -> list[list[int]]:
        """Ids per sentence; a blank sentence gets [] without reaching the tokenizer."""
        nonblank = [s for s in sentences if s.strip()]
        encoded = iter(self.tokenizer.encode_batch(nonblank) if nonblank else [])
        return [next(encoded) if s.strip() else [] for s in sentences]

    def _batches(self, ids: list[list[int]], max_tokens: int) -> list[list[int]]:
        """Indices of the non-empty sentences, shortest first, cut within the token budget."""
        if max_tokens < 1:
            raise NmtError(f"max tokens must be at least 1, not {max_tokens}")
        lengths = np.array([len(row) + 1 for row in ids], dtype=np.int64)  # + EOS
        order = np.array([i for i in np.argsort(lengths, kind="stable") if ids[i]], dtype=np.int64)
        # group_by_length budgets source and target; translation has no target yet.
        return group_by_length(order, lengths, np.zeros_like(lengths), max_tokens)

    def _run(
        self,
        sentences: Sequence[str],
        search: Search,
        max_tokens: int,
        first_line: int,
        return_attention: bool,
    ) -> list[list[Translation]]:
        ids = self._encode(sentences, first_line)
        hypotheses: list[list[Hypothesis]] = [[] for _ in ids]
        for batch in self._batches(ids, max_tokens):
            src = pad_sequences([ids[i] for i in batch], suffix=EOS_ID).to(self.device)
            for i, hyps in zip(batch, search(src, src != PAD_ID), strict=True):
                hypotheses[i] = hyps
        results = []
        for row, hyps in zip(ids, hypotheses, strict=True):
            if not hyps:  # a blank line (or a model that never ends a sentence)
                results.append([Translation("", [], 0.0)])
                continue
            results.append(
                [
                    Translation(
                        text=self.tokenizer.decode(h.tokens),
                        tokens=h.tokens,
                        score=h.score,
                        attention=self._attention(row, h.tokens) if return_attention else None,
                    )
                    for h in hyps
                ]
            )
        return results

    @torch.inference_mode()
    def _attention(self, src_ids: list[int], tgt_ids: list[int]) -> Tensor | None:
        """Cross-attention (L, H, T, S) of a teacher-forced pass over BOS + tgt_ids."""
        src = torch.tensor([[*src_ids, EOS_ID]], device=self.device)
        tgt_in = torch.tensor([[BOS_ID, *tgt_ids]], device=self.device)
        weights = self.model.cross_attention(src, src != PAD_ID, tgt_in)
        return None if weights is None else weights[0].float().cpu()

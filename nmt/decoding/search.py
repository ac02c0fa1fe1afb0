"""Search over the model contract: greedy, beam (the paper, section 4) and sampling.

Every function here drives a model only through ``encode``, ``decode_step`` and
``DecoderState.select`` (nmt.models.interface) and knows only token ids; text lives in the
Translator. Conventions shared by all three searches:

- ``src`` (B, S) is a batch as nmt.data.batching builds it: ids, then the EOS appended, then PAD.
  |X|, the source length, counts tokens *without* that EOS: ``src_mask.sum(1) - 1``.
- An output holds at most ``max_len = floor(a·|X| + b)`` tokens (EOS not counted), lowered to
  ``max_len_cap`` if given. A hypothesis that reaches ``max_len`` tokens must end there: every
  token but EOS is masked, so every finished hypothesis's log P includes exactly one EOS.
- |Y| in the length penalty counts that EOS: ``len(tokens) + 1`` (as tensor2tensor, the code
  behind the paper's numbers).
- PAD and BOS are never produced.

Shapes: B sentences, k beams, A sentences still searching, N rows (A·k in beam search),
V vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from nmt.models.interface import Seq2SeqModel


@dataclass
class Hypothesis:
    """A finished output: ids without BOS/EOS, score = log_prob / length_penalty."""

    tokens: list[int]
    score: float
    log_prob: float  # log P(tokens + EOS | source)


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^α (Wu et al., 2016); |Y| counts the final EOS."""
    return ((5 + length) / 6) ** alpha


# beam_search's argument ``length_penalty`` (α, the CLI's name) shadows the function inside it.
_gnmt_penalty = length_penalty


def max_lengths(
    src_mask: Tensor, max_len_a: float, max_len_b: int, max_len_cap: int | None = None
) -> Tensor:
    """Per-sentence output limit (B,) in tokens without EOS: floor(a·|X| + b), at most the cap."""
    if max_len_a < 0 or max_len_b < 0:
        raise ValueError(f"max_len_a ({max_len_a}) and max_len_b ({max_len_b}) must be >= 0")
    src_len = (src_mask.sum(dim=1) - 1).clamp(min=0)  # without the appended EOS
    limits = (max_len_a * src_len.double() + max_len_b).floor().long()
    if max_len_cap is not None:
        limits = limits.clamp(max=max_len_cap)
    return limits.clamp(min=0)


def _restrict(log_probs: Tensor, step: int, limits: Tensor) -> Tensor:
    """Never PAD or BOS; only EOS for rows whose outputs already hold ``limits`` (N,) tokens."""
    # Half-precision scores would round away the differences between long hypotheses.
    log_probs = log_probs.to(torch.promote_types(log_probs.dtype, torch.float32))
    vocab = torch.arange(log_probs.size(-1), device=log_probs.device)
    banned = (vocab == PAD_ID) | (vocab == BOS_ID)  # (V,)
    banned = banned | ((step >= limits)[:, None] & (vocab != EOS_ID))  # (N, V)
    return log_probs.masked_fill(banned, -math.inf)


# -- greedy and sampling: one token per sentence per step -------------------------------------

Picker = Callable[[Tensor], Tensor]  # log-probabilities (A, V) → chosen tokens (A,)


def generate(
    model: Seq2SeqModel,
    src: Tensor,
    src_mask: Tensor,
    pick: Picker,
    *,
    max_len_a: float = 1.0,
    max_len_b: int = 50,
    max_len_cap: int | None = None,
) -> tuple[list[list[int]], list[float]]:
    """Decode one token at a time with ``pick``: tokens and log P (EOS included) per sentence.

    A sentence leaves the batch (its state rows are dropped) as soon as it emits EOS.
    """
    num_sentences = src.size(0)
    outputs: list[list[int]] = [[] for _ in range(num_sentences)]
    log_probs_out = [0.0] * num_sentences
    if num_sentences == 0:
        return outputs, log_probs_out
    limits = max_lengths(src_mask, max_len_a, max_len_b, max_len_cap)
    state = model.encode(src, src_mask)
    active = torch.arange(num_sentences, device=src.device)  # (A,) sentence of each row
    tokens = torch.full((num_sentences, 1), BOS_ID, dtype=torch.long, device=src.device)  # (A, 1+t)
    total = torch.zeros(num_sentences, dtype=torch.float64, device=src.device)  # (A,) log P so far
    for step in range(int(limits.max()) + 1):
        log_probs, state = model.decode_step(tokens[:, -1], state)
        log_probs = _restrict(log_probs, step, limits[active])
        chosen = pick(log_probs)  # (A,)
        total = total + log_probs.gather(1, chosen[:, None]).squeeze(1)
        tokens = torch.cat([tokens, chosen[:, None]], dim=1)
        ended = chosen == EOS_ID
        if ended.any():
            rows = ended.nonzero().squeeze(1)
            for sentence, ids, log_prob in zip(
                active[rows].tolist(),
                tokens[rows, 1:-1].tolist(),
                total[rows].tolist(),
                strict=True,
            ):
                outputs[sentence], log_probs_out[sentence] = ids, log_prob
            keep = (~ended).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            state = state.select(keep)
            active, tokens, total = active[keep], tokens[keep], total[keep]
    return outputs, log_probs_out


def _greedy_pick(log_probs: Tensor) -> Tensor:
    return log_probs.argmax(dim=-1)


@torch.inference_mode()
def greedy_search(
    model: Seq2SeqModel,
    src: Tensor,
    src_mask: Tensor,
    *,
    max_len_a: float = 1.0,
    max_len_b: int = 50,
    max_len_cap: int | None = None,
) -> list[list[int]]:
    """The most probable next token at every step; token ids without BOS/EOS per sentence."""
    tokens, _ = generate(
        model,
        src,
        src_mask,
        _greedy_pick,
        max_len_a=max_len_a,
        max_len_b=max_len_b,
        max_len_cap=max_len_cap,
    )
    return tokens


@torch.inference_mode()
def greedy_hypotheses(
    model: Seq2SeqModel,
    src: Tensor,
    src_mask: Tensor,
    *,
    length_penalty: float = 0.6,
    max_len_a: float = 1.0,
    max_len_b: int = 50,
    max_len_cap: int | None = None,
) -> list[Hypothesis]:
    """Greedy search's outputs scored as beam search scores its hypotheses."""
    outputs, log_probs = generate(
        model,
        src,
        src_mask,
        _greedy_pick,
        max_len_a=max_len_a,
        max_len_b=max_len_b,
        max_len_cap=max_len_cap,
    )
    return [
        Hypothesis(ids, log_prob / _gnmt_penalty(len(ids) + 1, length_penalty), log_prob)
        for ids, log_prob in zip(outputs, log_probs, strict=True)
    ]


def sampler(
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Picker:
    """Draw from softmax(log p / temperature), restricted to the top k tokens and/or the nucleus
    (the fewest most probable tokens whose mass reaches top_p)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, not {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, not {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], not {top_p}")

    def pick(log_probs: Tensor) -> Tensor:
        logits = log_probs / temperature  # (A, V)
        if top_k is not None:
            kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, -math.inf)
        if top_p is not None:
            sorted_logits, order = logits.sort(dim=-1, descending=True)
            probs = sorted_logits.softmax(dim=-1)
            # Drop a token once the more probable ones before it already hold top_p of the mass.
            drop = (probs.cumsum(dim=-1) - probs) >= top_p
            drop[:, 0] = False
            logits = logits.masked_fill(drop.scatter(1, order, drop), -math.inf)
        probs = logits.softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    return pick


@torch.inference_mode()
def sample(
    model: Seq2SeqModel,
    src: Tensor,
    src_mask: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    max_len_a: float = 1.0,
    max_len_b: int = 50,
    max_len_cap: int | None = None,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Ancestral sampling (for back-translation); token ids without BOS/EOS per sentence."""
    pick = sampler(temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
    tokens, _ = generate(
        model,
        src,
        src_mask,
        pick,
        max_len_a=max_len_a,
        max_len_b=max_len_b,
        max_len_cap=max_len_cap,
    )
    return tokens


# -- beam search -------------------------------------------------------------------------------


@torch.inference_mode()
def beam_search(
    model: Seq2SeqModel,
    src: Tensor,
    src_mask: Tensor,
    *,
    beam_size: int = 4,
    length_penalty: float = 0.6,
    max_len_a: float = 1.0,
    max_len_b: int = 50,
    max_len_cap: int | None = None,
    nbest: int = 1,
) -> list[list[Hypothesis]]:
    """The ``nbest`` best hypotheses per sentence, best first, by log P / lp(|Y|).

    Each step extends the k open beams of every searching sentence by one token (one
    ``decode_step`` for all rows) and keeps the 2k best candidates. An EOS candidate among the
    top k becomes a finished hypothesis (fairseq's rule: so a beam of one is greedy search when
    α = 0); the k best non-EOS candidates stay open.

    Stopping (tensor2tensor's bound): an open beam's log P can only fall, and the penalty can at
    most grow to lp(max_len + 1), so no open beam can ever score above
    ``best open log P / lp(max_len + 1)``. A sentence stops once its ``nbest``-th best finished
    score reaches that bound, once nothing is open, or at ``max_len``. Its rows then leave the
    batch. With α > 0 a beam of one can therefore search on past greedy's EOS.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, not {beam_size}")
    if not 1 <= nbest <= beam_size:
        raise ValueError(f"nbest must be between 1 and beam_size ({beam_size}), not {nbest}")
    num_sentences, k, alpha = src.size(0), beam_size, length_penalty
    finished: list[list[Hypothesis]] = [[] for _ in range(num_sentences)]
    if num_sentences == 0:
        return finished
    device = src.device
    limits = max_lengths(src_mask, max_len_a, max_len_b, max_len_cap)  # (B,)
    best_possible_lp = torch.tensor(
        [_gnmt_penalty(n + 1, alpha) for n in limits.tolist()], dtype=torch.float64, device=device
    )  # (B,) lp(max_len + 1)
    # Score of each sentence's nbest-th finished hypothesis; -inf while it has fewer.
    nth_best = torch.full((num_sentences,), -math.inf, dtype=torch.float64, device=device)

    state = model.encode(src, src_mask)
    state = state.select(torch.arange(num_sentences, device=device).repeat_interleave(k))
    active = torch.arange(num_sentences, device=device)  # (A,) sentence ids still searching
    # All k beams start identical: only the first may expand, or the beam would fill with copies.
    # (A, k) log P of each open beam; it takes the dtype of the model's log-probabilities (or
    # float32, the least _restrict allows): the (A, k, V) candidates are the search's big tensor.
    scores = torch.full((num_sentences, k), -math.inf, device=device)
    scores[:, 0] = 0.0
    tokens = torch.full(
        (num_sentences * k, 1), BOS_ID, dtype=torch.long, device=device
    )  # (A·k, 1+t)

    for step in range(int(limits.max()) + 1):
        num_active = active.numel()
        log_probs, state = model.decode_step(tokens[:, -1], state)
        log_probs = _restrict(log_probs, step, limits[active].repeat_interleave(k))  # (A·k, V)
        vocab_size = log_probs.size(-1)
        candidates = scores[:, :, None] + log_probs.view(num_active, k, vocab_size)
        top_scores, top_index = candidates.view(num_active, -1).topk(2 * k, dim=1)  # (A, 2k)
        top_beam, top_token = top_index // vocab_size, top_index % vocab_size
        is_eos = top_token == EOS_ID

        ends = is_eos[:, :k] & top_scores[:, :k].isfinite()
        if ends.any():
            lp = _gnmt_penalty(step + 1, alpha)  # every hypothesis ending now has |Y| = step + 1
            where, rank = ends.nonzero().unbind(1)
            rows = where * k + top_beam[where, rank]
            touched = set()
            for row_sentence, ids, log_prob in zip(
                active[where].tolist(),
                tokens[rows, 1:].tolist(),
                top_scores[where, rank].tolist(),
                strict=True,
            ):
                finished[row_sentence].append(Hypothesis(ids, log_prob / lp, log_prob))
                touched.add(row_sentence)
            for sentence in touched:
                kept = sorted(finished[sentence], key=lambda h: h.score, reverse=True)[:nbest]
                finished[sentence] = kept
                if len(kept) == nbest:
                    nth_best[sentence] = kept[-1].score

        # The k best candidates that do not end; 2k always holds at least k of them.
        open_scores, pick = top_scores.masked_fill(is_eos, -math.inf).topk(k, dim=1)  # (A, k)
        beam, token = top_beam.gather(1, pick), top_token.gather(1, pick)
        bound = open_scores[:, 0] / best_possible_lp[active]
        done = (nth_best[active] >= bound) | open_scores[:, 0].isneginf() | (step >= limits[active])
        keep = (~done).nonzero().squeeze(1)  # (A',)
        if keep.numel() == 0:
            break
        rows = (keep[:, None] * k + beam[keep]).view(-1)  # (A'·k,) rows of the current layout
        state = state.select(rows)
        tokens = torch.cat([tokens[rows], token[keep].view(-1, 1)], dim=1)
        scores, active = open_scores[keep], active[keep]
    return finished

"""Search over the model contract: greedy, beam (the paper, section 4) and sampling.

Every function here drives a model only through ``encode``, ``decode_step`` and the state's
``select`` and ``attention`` (nmt.models.interface), knows only token ids (text lives in the
Translator) and takes its settings from one options object, nmt.config.DecodingConfig.
Conventions shared by all three searches:

- ``src`` (B, S) is a batch as nmt.data.batching builds it: ids, then the EOS appended, then PAD.
  |X|, the source length, counts tokens *without* that EOS: ``src_mask.sum(1) - 1``.
- An output holds at most ``max_len = floor(a·|X| + b)`` tokens (EOS not counted), lowered to
  ``max_len_cap`` if given. A hypothesis that reaches ``max_len`` tokens must end there: every
  token but EOS is masked, so every finished hypothesis's log P includes exactly one EOS.
- |Y| in the length penalty counts that EOS: ``len(tokens) + 1`` (as tensor2tensor, the code
  behind the paper's numbers).
- PAD and BOS are never produced. Unless ``allow_empty``, neither is EOS as the first token:
  an empty line is never a translation of a sentence, yet it is what a weak or unsure model
  finds most probable (CTranslate2 forbids it by default for the same reason). A length limit
  of 0 still gives the empty output it demands.
- The special ids are the model's own (``model.pad_id``, ``bos_id``, ``eos_id``).
- With ``record_attention`` each hypothesis carries the cross-attention weights the model
  computed while decoding it, read from the decoder state of the step that ended it.
- ``on_finished(sentence, hypotheses)``, if given, is called once per sentence as soon as its
  search has ended, with what the search will return for it: a server can answer a request
  while the batch's longer sentences are still being searched.

Shapes: B sentences, k beams, A sentences still searching, N rows (A·k in beam search),
V vocabulary, T output tokens + EOS, L layers, H heads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from nmt.config import DecodingConfig
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from nmt.models.interface import DecoderState, Seq2SeqModel


@dataclass(frozen=True)
class SpecialIds:
    pad: int
    bos: int
    eos: int


def special_ids(model: object) -> SpecialIds:
    """The ids ``model`` was trained with (the joint tokenizer's for a model that names none)."""
    return SpecialIds(
        pad=getattr(model, "pad_id", PAD_ID),
        bos=getattr(model, "bos_id", BOS_ID),
        eos=getattr(model, "eos_id", EOS_ID),
    )


@dataclass
class Hypothesis:
    """A finished output: ids without BOS/EOS, score = log_prob / length_penalty."""

    tokens: list[int]
    score: float
    log_prob: float  # log P(tokens + EOS | source)
    attention: Tensor | None = None  # (L, H, T, S) float32 on the CPU; S: the source's columns


Finished = Callable[[int, list[Hypothesis]], None]  # (sentence in the batch, its hypotheses)


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^α (Wu et al., 2016); |Y| counts the final EOS."""
    return ((5 + length) / 6) ** alpha


def max_lengths(
    src_mask: Tensor, max_len_a: float, max_len_b: int, max_len_cap: int | None = None
) -> Tensor:
    """Per-sentence output limit (B,) in tokens without EOS: floor(a·|X| + b), at most the cap."""
    src_len = (src_mask.sum(dim=1) - 1).clamp(min=0)  # without the appended EOS
    limits = (max_len_a * src_len.double() + max_len_b).floor().long()
    if max_len_cap is not None:
        limits = limits.clamp(max=max_len_cap)
    return limits.clamp(min=0)


def _restrict(
    log_probs: Tensor, step: int, limits: Tensor, ids: SpecialIds, allow_empty: bool
) -> Tensor:
    """Never PAD or BOS; only EOS for rows whose outputs already hold ``limits`` (N,) tokens;
    no EOS at the first step unless empty outputs are allowed. Works in place on ``log_probs``
    (a step's own output, see Seq2SeqModel.decode_step) and touches only the columns and rows
    concerned: building (N, V) masks every step made a 25-sentence batch on one CPU thread
    1.02x slower."""
    # Half-precision scores would round away the differences between long hypotheses.
    log_probs = log_probs.to(torch.promote_types(log_probs.dtype, torch.float32))
    log_probs[:, ids.pad] = -math.inf
    log_probs[:, ids.bos] = -math.inf
    at_limit = step >= limits  # (N,)
    # One more host sync a step on a GPU, where the search already makes several.
    if at_limit.any():
        eos = log_probs[at_limit, ids.eos]
        log_probs[at_limit] = -math.inf
        log_probs[at_limit, ids.eos] = eos
    if step == 0 and not allow_empty:
        log_probs[~at_limit, ids.eos] = -math.inf
    return log_probs


def _start(
    model: Seq2SeqModel, src: Tensor, src_mask: Tensor, limits: Tensor, record_attention: bool
) -> DecoderState:
    # The longest output takes limits.max() steps, and one more feeds its last token to score EOS.
    return model.encode(
        src, src_mask, max_steps=int(limits.max()) + 1, record_attention=record_attention
    )


def _attention(
    state: DecoderState, rows: Tensor, num_steps: int, src_mask: Tensor
) -> list[Tensor | None]:
    """Per row in ``rows``: the cross-attention (L, H, T, S_i) of its ``num_steps`` steps so
    far, on the real source columns ``src_mask`` (n, S) of its sentence only."""
    weights = getattr(state, "attention", None)  # (N, t, L, H, S) or None
    if weights is None:
        return [None] * rows.numel()
    picked = weights[rows, :num_steps].float().cpu()  # (n, T, L, H, S)
    return [
        w.permute(1, 2, 0, 3)[..., keep]
        for w, keep in zip(picked, src_mask.cpu(), strict=True)  # (L, H, T, S_i)
    ]


# -- greedy search and sampling: one token per sentence per step ------------------------------

Picker = Callable[[Tensor], Tensor]  # log-probabilities (A, V) → chosen tokens (A,)


@torch.inference_mode()
def generate(
    model: Seq2SeqModel,
    src: Tensor,
    src_mask: Tensor,
    pick: Picker,
    options: DecodingConfig,
    *,
    max_len_cap: int | None = None,
    record_attention: bool = False,
    on_finished: Finished | None = None,
) -> list[Hypothesis]:
    """Decode one token at a time with ``pick``: one hypothesis per sentence, scored as beam
    search scores its hypotheses. A sentence leaves the batch (its state rows are dropped) as
    soon as it emits EOS."""
    num_sentences = src.size(0)
    outputs: list[Hypothesis] = [Hypothesis([], 0.0, 0.0) for _ in range(num_sentences)]
    if num_sentences == 0:
        return outputs
    ids = special_ids(model)
    limits = max_lengths(src_mask, options.max_len_a, options.max_len_b, max_len_cap)
    state = _start(model, src, src_mask, limits, record_attention)
    active = torch.arange(num_sentences, device=src.device)  # (A,) sentence of each row
    tokens = torch.full((num_sentences, 1), ids.bos, dtype=torch.long, device=src.device)
    total = torch.zeros(num_sentences, dtype=torch.float64, device=src.device)  # (A,) log P
    for step in range(int(limits.max()) + 1):
        log_probs, state = model.decode_step(tokens[:, -1], state)
        log_probs = _restrict(log_probs, step, limits[active], ids, options.allow_empty)
        chosen = pick(log_probs)  # (A,)
        total = total + log_probs.gather(1, chosen[:, None]).squeeze(1)
        tokens = torch.cat([tokens, chosen[:, None]], dim=1)  # (A, 1 + step + 1)
        ended = chosen == ids.eos
        if ended.any():
            rows = ended.nonzero().squeeze(1)
            sentences = active[rows]
            attention = (
                _attention(state, rows, step + 1, src_mask[sentences])
                if record_attention
                else [None] * rows.numel()
            )
            lp = length_penalty(step + 1, options.length_penalty)
            for sentence, row_tokens, log_prob, weights in zip(
                sentences.tolist(),
                tokens[rows, 1:-1].tolist(),
                total[rows].tolist(),
                attention,
                strict=True,
            ):
                outputs[sentence] = Hypothesis(row_tokens, log_prob / lp, log_prob, weights)
                if on_finished is not None:
                    on_finished(sentence, [outputs[sentence]])
            keep = (~ended).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            state = state.select(keep)
            active, tokens, total = active[keep], tokens[keep], total[keep]
    return outputs


def _greedy_pick(log_probs: Tensor) -> Tensor:
    return log_probs.argmax(dim=-1)


def sampler(options: DecodingConfig, generator: torch.Generator | None = None) -> Picker:
    """Draw from softmax(log p / temperature), restricted to the top k tokens and/or the nucleus
    (the fewest most probable tokens whose mass reaches top_p)."""
    temperature, top_k, top_p = options.temperature, options.top_k, options.top_p

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


# -- beam search -------------------------------------------------------------------------------


@torch.inference_mode()
def beam_search(
    model: Seq2SeqModel,
    src: Tensor,
    src_mask: Tensor,
    options: DecodingConfig | None = None,
    *,
    max_len_cap: int | None = None,
    record_attention: bool = False,
    on_finished: Finished | None = None,
) -> list[list[Hypothesis]]:
    """The ``nbest`` best hypotheses per sentence, best first, by log P / lp(|Y|).

    Each step extends the k open beams of every searching sentence by one token (one
    ``decode_step`` for all rows) and keeps the 2k best candidates by log P. An EOS candidate
    among the top k becomes a finished hypothesis (fairseq's rule: so a beam of one is greedy
    search when α = 0); the k best non-EOS candidates stay open.

    A sentence stops once nothing is open, at ``max_len``, or by ``options.stopping``:

    - ``exact`` (tensor2tensor's bound, the paper's code): an open beam's log P can only fall,
      and the penalty can at most grow to lp(max_len + 1), so no open beam can ever score above
      ``best open log P / lp(max_len + 1)``. The sentence stops once its ``nbest``-th best
      finished score reaches that bound. It gives the best hypothesis a beam of k can find,
      but with α > 0 the bound is loose: a sentence whose best output is short and unsure can
      search on to |X| + 50 tokens (even a beam of one can search past greedy's EOS).
    - ``early`` (the engines' rule): with ``patience`` None, the sentence stops once its most
      probable candidate of some step has ended (and ``nbest`` have ended): no open beam then
      holds a higher log P than a finished hypothesis, though with α > 0 a longer one could
      still have overtaken it after the penalty (OpenNMT; CTranslate2 at α = 0). Its cost
      follows the length of the output, not of the limit. With a patience factor p it stops
      once ⌈p·k⌉ hypotheses (and ``nbest``) have ended (fairseq at p = 1, CTranslate2 at
      α > 0; Kasai et al., 2022): p > 1 searches longer, and even p = 1 may wait for endings
      that an unsure model never ranks among its k best, up to the limit.
    """
    options = options or DecodingConfig()
    num_sentences, k, alpha = src.size(0), options.beam_size, options.length_penalty
    nbest = options.nbest
    finished: list[list[Hypothesis]] = [[] for _ in range(num_sentences)]
    if num_sentences == 0:
        return finished
    device, ids = src.device, special_ids(model)
    limits = max_lengths(src_mask, options.max_len_a, options.max_len_b, max_len_cap)  # (B,)
    best_possible_lp = torch.tensor(
        [length_penalty(n + 1, alpha) for n in limits.tolist()], dtype=torch.float64, device=device
    )  # (B,) lp(max_len + 1)
    # Score of each sentence's nbest-th finished hypothesis; -inf while it has fewer.
    nth_best = torch.full((num_sentences,), -math.inf, dtype=torch.float64, device=device)
    num_finished = torch.zeros(num_sentences, dtype=torch.long, device=device)  # (B,) ever ended
    top_has_ended = torch.zeros(num_sentences, dtype=torch.bool, device=device)  # (B,)
    enough = nbest if options.patience is None else max(nbest, math.ceil(options.patience * k))

    state = _start(model, src, src_mask, limits, record_attention)
    state = state.select(torch.arange(num_sentences, device=device).repeat_interleave(k))
    active = torch.arange(num_sentences, device=device)  # (A,) sentence ids still searching
    # All k beams start identical: only the first may expand, or the beam would fill with copies.
    # (A, k) log P of each open beam; it takes the dtype of the model's log-probabilities (or
    # float32, the least _restrict allows): the (A, k, V) candidates are the search's big tensor.
    scores = torch.full((num_sentences, k), -math.inf, device=device)
    scores[:, 0] = 0.0
    tokens = torch.full(
        (num_sentences * k, 1), ids.bos, dtype=torch.long, device=device
    )  # (A·k, 1+t)

    for step in range(int(limits.max()) + 1):
        num_active = active.numel()
        log_probs, state = model.decode_step(tokens[:, -1], state)
        row_limits = limits[active].repeat_interleave(k)
        log_probs = _restrict(log_probs, step, row_limits, ids, options.allow_empty)  # (A·k, V)
        vocab_size = log_probs.size(-1)
        candidates = scores[:, :, None] + log_probs.view(num_active, k, vocab_size)
        top_scores, top_index = candidates.view(num_active, -1).topk(2 * k, dim=1)  # (A, 2k)
        top_beam, top_token = top_index // vocab_size, top_index % vocab_size
        is_eos = top_token == ids.eos

        ends = is_eos[:, :k] & top_scores[:, :k].isfinite()
        if ends.any():
            lp = length_penalty(step + 1, alpha)  # every hypothesis ending now has |Y| = step + 1
            where, rank = ends.nonzero().unbind(1)
            rows = where * k + top_beam[where, rank]  # the rows that produced them, this step
            attention = (
                _attention(state, rows, step + 1, src_mask[active[where]])
                if record_attention
                else [None] * rows.numel()
            )
            touched = set()
            for sentence, row_tokens, log_prob, weights in zip(
                active[where].tolist(),
                tokens[rows, 1:].tolist(),
                top_scores[where, rank].tolist(),
                attention,
                strict=True,
            ):
                finished[sentence].append(Hypothesis(row_tokens, log_prob / lp, log_prob, weights))
                touched.add(sentence)
            for sentence in touched:
                kept = sorted(finished[sentence], key=lambda h: h.score, reverse=True)[:nbest]
                finished[sentence] = kept
                if len(kept) == nbest:
                    nth_best[sentence] = kept[-1].score
            num_finished[active] += ends.sum(dim=1)
            top_has_ended[active] |= ends[:, 0]

        # The k best candidates that do not end; 2k always holds at least k of them.
        open_scores, pick = top_scores.masked_fill(is_eos, -math.inf).topk(k, dim=1)  # (A, k)
        beam, token = top_beam.gather(1, pick), top_token.gather(1, pick)
        if options.stopping == "exact":
            done = nth_best[active] >= open_scores[:, 0] / best_possible_lp[active]
        elif options.patience is None:
            done = top_has_ended[active] & (num_finished[active] >= nbest)
        else:
            done = num_finished[active] >= enough
        done = done | open_scores[:, 0].isneginf() | (step >= limits[active])
        if on_finished is not None and done.any():
            for sentence in active[done].tolist():
                on_finished(sentence, finished[sentence])
        keep = (~done).nonzero().squeeze(1)  # (A',)
        if keep.numel() == 0:
            break
        rows = (keep[:, None] * k + beam[keep]).view(-1)  # (A'·k,) rows of the current layout
        state = state.select(rows)
        tokens = torch.cat([tokens[rows], token[keep].view(-1, 1)], dim=1)
        scores, active = open_scores[keep], active[keep]
    return finished


def decode(
    model: Seq2SeqModel,
    src: Tensor,
    src_mask: Tensor,
    options: DecodingConfig,
    *,
    generator: torch.Generator | None = None,
    max_len_cap: int | None = None,
    record_attention: bool = False,
    on_finished: Finished | None = None,
) -> list[list[Hypothesis]]:
    """The search ``options`` ask for, per sentence: sampling (with ``generator``), greedy
    (beam size 1) or beam search."""
    if options.sampling or options.beam_size == 1:
        pick = sampler(options, generator) if options.sampling else _greedy_pick
        hyps = generate(
            model,
            src,
            src_mask,
            pick,
            options,
            max_len_cap=max_len_cap,
            record_attention=record_attention,
            on_finished=on_finished,
        )
        return [[h] for h in hyps]
    return beam_search(
        model,
        src,
        src_mask,
        options,
        max_len_cap=max_len_cap,
        record_attention=record_attention,
        on_finished=on_finished,
    )

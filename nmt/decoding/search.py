"""Search over the model contract: one beam search loop, of which greedy search is the beam of
one and sampling a beam of one whose token is drawn (the paper, section 4).

Every function here drives a model only through ``encode``, ``decode_step`` and the state's
``select`` and ``attention`` (nmt.models.interface), knows only token ids (text lives in the
Translator) and takes its settings from one options object, nmt.config.DecodingConfig.
Conventions:

- ``src`` (B, S) is a batch as nmt.data.batching builds it: ids, then the EOS appended, then PAD.
  |X|, the source length, counts tokens *without* that EOS: ``src_mask.sum(1) - 1``.
- An output holds at most ``max_len = floor(a·|X| + b)`` tokens, lowered to ``max_len_cap`` if
  given. A hypothesis that reaches ``max_len`` tokens ends there *without* an EOS: its log P is
  that of its tokens, and |Y| = max_len. This is CTranslate2's ``max_decoding_length`` and, at
  α = 0, transformers' forced EOS (which costs nothing); so all engines agree at the limit.
- |Y| in the length penalty counts the EOS of an output that has one: it is the number of steps
  taken (as tensor2tensor, the code behind the paper's numbers).
- What the model's distribution goes through at each step, in CTranslate2's order: the
  repetition penalty (on the model's logits, as CTranslate2's: when it is set, search asks
  ``encode`` for them with EncodeOptions.logits; an ensemble has none and gives its
  log-probabilities, on which it acts instead), the n-gram ban and the minimum length (EOS
  forbidden below it) change it and it is renormalised (log_softmax), as CTranslate2's logits
  processors do (except for the
  minimum length's ban at the first step, which would shift all of a sentence's candidates
  alike, so that by default scores are the model's own log-probabilities); then PAD and BOS
  are banned without renormalising (CTranslate2 never bans them; a trained model gives them only
  label smoothing's floor of probability, so they matter only where guards ban the rest);
  then a target prefix forces its tokens (at the first step after it, only a sentence's best
  candidate may end, as in CTranslate2: ``_empty_slots``). Scores are
  log-probabilities of that distribution. Unless ``allow_empty``, the minimum length is at
  least 1: an empty line is never a translation of a sentence, yet it is what a weak or unsure
  model finds most probable.
  A length limit of 0 still gives the empty output it demands.
- The special ids are the model's own (``model.pad_id``, ``bos_id``, ``eos_id``).
- With ``record_attention`` each hypothesis carries the cross-attention weights the model
  computed while decoding it, read from the decoder state of the step that ended it.
- ``on_done(sentence, hypotheses)``, if given, is called once per sentence as soon as its
  search has ended, with what the search will return for it: a server can answer a request
  while the batch's longer sentences are still being searched.
- ``observer(step)``, if given, receives a BeamStep per searching sentence per step: the
  candidates kept, ended and pruned with their parent beams (nmt.decoding.trace records them
  for drawing the search as a tree). Unused, it costs nothing.

Hooks for steering the search (lexically constrained decoding, Post & Vilar 2018, plugs in
here without copying the loop): a ``Selector`` chooses the candidates of each step. Its
``choose(step, active, scores, log_probs, k)`` gets the (A, w) log P of the open beams and the
step's (A, w, V) log-probabilities (w, the beams each sentence has in the step's layout, is 1 at
the first step and k after it) and returns the (A, m ≥ k) best candidates, best first, as their
log P and their index into w·V (beam · V + token); the loop turns the EOS among the first k
into finished hypotheses and keeps the k best others open. A selector may set
log-probabilities to -inf first (no EOS before a hypothesis has met its constraints) or pick
other than the top m (dynamic beam allocation: banks of candidates by constraints met). Its
``reorder(rows, tokens)`` is called after each step with the rows (of the step's layout) the
new open beams come from and the token each appended: per-hypothesis side state (constraints
met so far) follows the beams there, as the decoder state follows them through ``select``.

Shapes: B sentences, k beams, A sentences still searching, w beams a sentence in the step's
layout (1, then k), N rows (A·w), V vocabulary, m candidates a step (2k), L layers, H heads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from nmt.config import DecodingConfig
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from nmt.models.interface import DecoderState, EncodeOptions, Seq2SeqModel


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
    log_prob: float  # log P(tokens, and the EOS if it has one | source)
    attention: Tensor | None = None  # (L, H, T, S) float32 on the CPU; S: the source's columns
    token_log_probs: list[float] = field(default_factory=list)
    """The model's log P of each token, then of the EOS if it has one (len(tokens) + ended
    values), as the model gave it: before the guards renormalised (without guards they sum to
    ``log_prob``)."""
    ended: bool = True
    """It ended with EOS; False: it stopped at the length limit."""
    alignment: list[tuple[int, int]] | None = None
    """(source piece, target piece) pairs, from an engine that aligns by itself (CTranslate2)."""


# Called with a sentence's index in the batch and its hypotheses, as soon as they are final.
SentenceDone = Callable[[int, list[Hypothesis]], None]


@dataclass
class BeamStep:
    """One step of one sentence's search, for drawing it (nmt.decoding.trace).

    Each candidate is ``(parent, token, log_prob)``: the index of the open beam it extends (in
    the previous step's ``kept`` order; 0 at step 0), the token it appends, and its log P.
    ``kept`` are the new open beams in their order, ``ended`` the hypotheses finished this step
    (by EOS, or at the length limit), ``pruned`` the other candidates of the m best.
    """

    step: int
    sentence: int
    kept: list[tuple[int, int, float]]
    ended: list[tuple[int, int, float]]
    pruned: list[tuple[int, int, float]]
    # With a glossary: per kind ("kept", "ended", "pruned"), each candidate's glossary tokens
    # produced so far, its own included (nmt.decoding.constraints: its bank).
    terms: dict[str, list[int]] | None = None


Observer = Callable[[BeamStep], None]


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^α (Wu et al., 2016); |Y| counts the final EOS."""
    return ((5 + length) / 6) ** alpha


def _source_lengths(src_mask: Tensor) -> Tensor:
    return (src_mask.sum(dim=1) - 1).clamp(min=0)  # without the appended EOS


def max_lengths(
    src_mask: Tensor, max_len_a: float, max_len_b: int, max_len_cap: int | None = None
) -> Tensor:
    """Per-sentence output limit (B,) in tokens without EOS: floor(a·|X| + b), at most the cap."""
    limits = (max_len_a * _source_lengths(src_mask).double() + max_len_b).floor().long()
    if max_len_cap is not None:
        limits = limits.clamp(max=max_len_cap)
    return limits.clamp(min=0)


def min_lengths(src_mask: Tensor, options: DecodingConfig, limits: Tensor) -> Tensor:
    """Per-sentence minimum output length (B,): floor(min_len_a·|X| + min_len_b), at least 1
    unless empty outputs are allowed, at most the limit."""
    floor = 0 if options.allow_empty else 1
    wanted = (options.min_len_a * _source_lengths(src_mask).double() + options.min_len_b).floor()
    return wanted.long().clamp(min=floor).minimum(limits)


# -- choosing each step's candidates -----------------------------------------------------------


CHUNK = 64  # columns per chunk of top_per_row's first pass


def top_per_row(values: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """``values.topk(m, dim=1)`` for (N, V) values, best first, found in two passes when V is
    large: each row's m best lie in its m chunks (of CHUNK columns) with the highest maxima (a
    chunk holding one of them has a maximum at least the m-th best, and at most m chunks do),
    so a top-k over the chunk maxima and one over those m chunks' columns replace a top-k over
    all V. aten's CPU top-k copies every row into (value, index) pairs to partially sort them;
    a chunk maximum is one vectorised pass. At 58k pieces and 128 rows: 1.2 against 4.5 ms."""
    rows, width = values.shape
    whole = width // CHUNK * CHUNK  # the columns of whole chunks; the rest always competes
    if whole // CHUNK <= 4 * m:
        return values.topk(m, dim=1)
    chunks = values[:, :whole].reshape(rows, -1, CHUNK).amax(dim=2).topk(m, dim=1).indices
    offsets = torch.arange(CHUNK, device=values.device)
    columns = (chunks[:, :, None] * CHUNK + offsets).view(rows, m * CHUNK)
    if whole < width:
        rest = torch.arange(whole, width, device=values.device).expand(rows, -1)
        columns = torch.cat([columns, rest], dim=1)
    best, pick = values.gather(1, columns).topk(m, dim=1)
    return best, columns.gather(1, pick)


class Selector:
    """Beam search's choice: the 2k candidates of highest log P (see the module docstring)."""

    def choose(
        self, step: int, active: Tensor, scores: Tensor, log_probs: Tensor, k: int
    ) -> tuple[Tensor, Tensor]:
        num_active, width, vocab_size = log_probs.shape
        m = min(2 * k, vocab_size)
        # The 2k best of a sentence are among each beam's 2k best tokens: take those first, so
        # that the beam's score is added to (A, w, 2k) candidates, not to all (A, w, V). At the
        # OPUS-MT shape (58k pieces) that made translation 8 % faster at batch 1, 3 % at 32.
        row_scores, row_tokens = top_per_row(log_probs.reshape(num_active * width, vocab_size), m)
        candidates = (scores[:, :, None] + row_scores.view(num_active, width, m)).view(
            -1, width * m
        )
        if width * m < 2 * k:  # the first step's one beam, over fewer than 2k pieces
            missing = 2 * k - width * m  # impossible candidates, as a beam's copies would give
            candidates = torch.cat(
                [candidates, candidates.new_full((num_active, missing), -math.inf)], 1
            )
            row_tokens = torch.cat(
                [row_tokens.view(num_active, -1), row_tokens.new_zeros((num_active, missing))], 1
            )
        top_scores, top = candidates.topk(2 * k, dim=1)  # (A, 2k), index into w·m
        tokens = row_tokens.view(num_active, -1).gather(1, top)
        return top_scores, (top // m).clamp(max=width - 1) * vocab_size + tokens

    def reorder(self, rows: Tensor, tokens: Tensor) -> None:
        """Per-hypothesis side state follows the new open beams (none here)."""

    def describe(self, sentence_row: int, beams: list[int], tokens: list[int]) -> list[int] | None:
        """For a trace: a number per candidate of the ``sentence_row``-th searching sentence
        (each extending ``beams[i]`` with ``tokens[i]``) that says how the selector steered it,
        or None where it does not steer (here)."""
        return None


class Sampler(Selector):
    """A beam of one whose token is drawn from softmax(log p / temperature), restricted to the
    top k tokens and/or the nucleus (the fewest most probable tokens whose mass reaches
    top_p)."""

    def __init__(self, options: DecodingConfig, generator: torch.Generator | None) -> None:
        self.temperature, self.top_k, self.top_p = options.temperature, options.top_k, options.top_p
        self.generator = generator

    def choose(
        self, step: int, active: Tensor, scores: Tensor, log_probs: Tensor, k: int
    ) -> tuple[Tensor, Tensor]:
        token = self.draw(log_probs[:, 0])[:, None]  # (A, 1)
        return scores + log_probs[:, 0].gather(1, token), token

    def draw(self, log_probs: Tensor) -> Tensor:
        logits = log_probs / self.temperature  # (A, V)
        if self.top_k is not None:
            kth = logits.topk(min(self.top_k, logits.size(-1)), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, -math.inf)
        if self.top_p is not None:
            sorted_logits, order = logits.sort(dim=-1, descending=True)
            probs = sorted_logits.softmax(dim=-1)
            # Drop a token once the more probable ones before it already hold top_p of the mass.
            drop = (probs.cumsum(dim=-1) - probs) >= self.top_p
            drop[:, 0] = False
            logits = logits.masked_fill(drop.scatter(1, order, drop), -math.inf)
        probs = logits.softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(1)


Picker = Callable[[Tensor], Tensor]  # log-probabilities (A, V) → chosen tokens (A,)


class _Picked(Selector):
    """A beam of one whose token a Picker chooses."""

    def __init__(self, pick: Picker) -> None:
        self.pick = pick

    def choose(
        self, step: int, active: Tensor, scores: Tensor, log_probs: Tensor, k: int
    ) -> tuple[Tensor, Tensor]:
        token = self.pick(log_probs[:, 0])[:, None]
        return scores + log_probs[:, 0].gather(1, token), token


# -- what the model's distribution goes through ----------------------------------------------


@dataclass
class _Rules:
    """The per-row settings of one step's adjustments (N rows)."""

    ids: SpecialIds
    options: DecodingConfig
    min_lens: Tensor | None  # (N,); None once every row is past its minimum
    prefix: Tensor | None  # (N, P) forced tokens, padded with -1; None past every prefix
    prefix_lens: Tensor | None  # (N,)
    logits: bool = False  # decode_step gave logits (EncodeOptions.logits), not log-probabilities


def _adjust(log_probs: Tensor, step: int, tokens: Tensor, rules: _Rules) -> tuple[Tensor, Tensor]:
    """The step's log-probabilities (N, V) after the guards, the bans and the prefix (the
    module docstring's order), and the model's own (the same tensor unless a guard changed
    them). ``tokens`` (N, 1 + step) are each row's tokens so far, BOS first. Works in place
    where it can: ``log_probs`` is the step's own (Seq2SeqModel.decode_step), or its logits
    where ``rules.logits`` says so."""
    # Half-precision scores would round away the differences between long hypotheses.
    log_probs = log_probs.to(torch.promote_types(log_probs.dtype, torch.float32))
    options, ids = rules.options, rules.ids
    penalise = options.repetition_penalty != 1.0 and step > 0
    may_renormalise = (
        penalise
        or 0 < options.no_repeat_ngram_size <= step
        or (step > 0 and rules.min_lens is not None)
    )
    if rules.logits:
        model_log_probs = log_probs.log_softmax(dim=-1)
        if not penalise:  # the penalty alone reads logits: go on from the log-probabilities
            log_probs = model_log_probs.clone() if may_renormalise else model_log_probs
    else:  # the model's own values, kept apart only when a guard may change them
        model_log_probs = log_probs.clone() if may_renormalise else log_probs
    changed = False
    previous = tokens[:, 1:]  # (N, step)
    if penalise:
        # CTRL's penalty (Keskar et al., 2019) on the scores of tokens already written: / p if
        # positive, · p if negative. Scores are the model's logits, as in CTranslate2, where
        # it gives them; an ensemble's are log-probabilities (always negative: · p).
        seen = log_probs.gather(1, previous)
        penalty = options.repetition_penalty
        log_probs.scatter_(1, previous, torch.where(seen < 0, seen * penalty, seen / penalty))
        changed = True
    n = options.no_repeat_ngram_size
    if n > 0 and step >= n:
        # Every n-gram written whose first n - 1 tokens are the last n - 1 written: its last
        # token would repeat it.
        grams = previous.unfold(1, n, 1)  # (N, W, n)
        tail = previous[:, step - (n - 1) :]  # (N, n - 1)
        repeats = (grams[:, :, : n - 1] == tail[:, None, :]).all(dim=2)  # (N, W)
        rows, where = repeats.nonzero(as_tuple=True)
        if rows.numel():
            log_probs[rows, grams[rows, where, n - 1]] = -math.inf
            changed = True
    if rules.min_lens is not None:
        log_probs[step < rules.min_lens, ids.eos] = -math.inf
        # At the first step every candidate of a sentence extends the same beam, so
        # renormalising would shift them all alike: it is skipped, and scores stay the model's.
        changed = changed or step > 0
    if changed:
        log_probs = log_probs.log_softmax(dim=-1)
    log_probs[:, ids.pad] = -math.inf
    log_probs[:, ids.bos] = -math.inf
    if rules.prefix is not None and rules.prefix_lens is not None:
        forced = (step < rules.prefix_lens).nonzero().squeeze(1)  # rows still in their prefix
        if forced.numel():
            token = rules.prefix[forced, step]
            kept = log_probs[forced, token]
            log_probs[forced] = -math.inf
            log_probs[forced, token] = kept
    return log_probs, model_log_probs


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


def _empty_slots(is_eos: Tensor, step: int, prefix_lens: Tensor | None) -> Tensor | None:
    """(A, m) the candidates that become empty beam slots at this step, or None (most steps).

    CTranslate2's rule for the first step after a target prefix (its issue #277): only the
    sentence's best candidate may end there. Every step of the prefix extended one beam, so
    all candidates now extend that beam, and an EOS among them would end an output that is
    the prefix alone, which without a length penalty can outscore every continuation. An EOS
    candidate below the first is therefore not an ending but an empty slot: a dead beam that
    keeps its place, so that the search goes on with fewer beams for the rest of the
    sentence, as CTranslate2's does (where the slot holds a token scored -1e10)."""
    if prefix_lens is None:
        return None
    free_now = (prefix_lens == step) & (prefix_lens > 0)  # (A,) the prefix ended last step
    if not free_now.any():
        return None
    empty = is_eos & free_now[:, None]
    empty[:, 0] = False
    return empty


def _prefix_tensor(
    prefixes: Sequence[Sequence[int]] | None, device: torch.device
) -> tuple[Tensor, Tensor] | None:
    """(B, P) forced tokens (padded with -1, never read) and their lengths (B,)."""
    if prefixes is None or not any(prefixes):
        return None
    width = max(len(p) for p in prefixes)
    table = torch.full((len(prefixes), width), -1, dtype=torch.long)
    for i, prefix in enumerate(prefixes):
        table[i, : len(prefix)] = torch.tensor(list(prefix), dtype=torch.long)
    lengths = torch.tensor([len(p) for p in prefixes], dtype=torch.long)
    return table.to(device), lengths.to(device)


# -- the search ------------------------------------------------------------------------------


@torch.inference_mode()
def beam_search(
    model: Seq2SeqModel,
    src: Tensor,
    src_mask: Tensor,
    options: DecodingConfig | None = None,
    *,
    prefixes: Sequence[Sequence[int]] | None = None,
    generator: torch.Generator | None = None,
    max_len_cap: int | None = None,
    record_attention: bool = False,
    on_done: SentenceDone | None = None,
    observer: Observer | None = None,
    selector: Selector | None = None,
    vocabulary: Tensor | None = None,
) -> list[list[Hypothesis]]:
    """The ``nbest`` best hypotheses per sentence, best first, by log P / lp(|Y|); with
    ``options.sampling`` one drawn hypothesis each (with ``generator``).

    ``prefixes``: per sentence, token ids its output must start with (they count toward its
    length limit; the caller checks that they fit). ``vocabulary``: the sorted target ids the
    model's output layer is restricted to (a shortlist; EncodeOptions.vocabulary): the caller
    checks that it holds the EOS and every token a prefix or selector must write.

    Each step extends the k open beams of every searching sentence by one token (one
    ``decode_step`` for all rows) and keeps the 2k best candidates by log P. An EOS candidate
    among the top k becomes a finished hypothesis (fairseq's rule: so a beam of one is greedy
    search when α = 0); the k best non-EOS candidates stay open. At the length limit, the top
    k candidates all finish (CTranslate2's rule).

    A sentence stops once nothing is open, at ``max_len``, or by ``options.stopping``:

    - ``exact`` (tensor2tensor's bound, the paper's code): an open beam's log P can only fall,
      and the penalty can at most grow to lp(max_len), so no open beam can ever score above
      ``best open log P / lp(max_len)``. The sentence stops once its ``nbest``-th best
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

    Greedy search is this loop with k = 1: at the paper's base size it runs as fast as the
    separate greedy loop it replaced; on a tiny model its bookkeeping shows (docs/decoding.md,
    "One search loop").
    """
    options = options or DecodingConfig()
    if selector is None:
        selector = Sampler(options, generator) if options.sampling else Selector()
    num_sentences, alpha, nbest = src.size(0), options.length_penalty, options.nbest
    k = 1 if options.sampling else options.beam_size
    finished: list[list[Hypothesis]] = [[] for _ in range(num_sentences)]
    if num_sentences == 0:
        return finished
    device, ids = src.device, special_ids(model)
    limits = max_lengths(src_mask, options.max_len_a, options.max_len_b, max_len_cap)  # (B,)
    min_lens = min_lengths(src_mask, options, limits)  # (B,)
    prefix = _prefix_tensor(prefixes, device)
    min_steps = int(min_lens.max())  # steps at which some row may not end yet
    prefix_steps = 0 if prefix is None else prefix[0].size(1)  # steps some row is forced at
    for sentence in (limits == 0).nonzero().squeeze(1).tolist():
        finished[sentence] = [Hypothesis([], 0.0, 0.0)]  # the empty output a limit of 0 demands
        if on_done is not None:
            on_done(sentence, finished[sentence])
    best_possible_lp = torch.tensor(
        [length_penalty(n, alpha) for n in limits.tolist()], dtype=torch.float64, device=device
    )  # (B,) lp(max_len)
    # Score of each sentence's nbest-th finished hypothesis; -inf while it has fewer.
    nth_best = torch.full((num_sentences,), -math.inf, dtype=torch.float64, device=device)
    num_finished = torch.zeros(num_sentences, dtype=torch.long, device=device)  # (B,) ever ended
    top_has_ended = torch.zeros(num_sentences, dtype=torch.bool, device=device)  # (B,)
    enough = nbest if options.patience is None else max(nbest, math.ceil(options.patience * k))

    active = (limits > 0).nonzero().squeeze(1)  # (A,) sentence ids still searching
    if active.numel() == 0:
        return finished
    # The longest output takes limits.max() steps: the decoder reads BOS and all but its last.
    encoding = EncodeOptions(
        max_steps=int(limits.max()),
        record_attention=record_attention,
        logits=options.repetition_penalty != 1.0,  # CTranslate2 applies it to logits
        vocabulary=vocabulary,
    )
    state = model.encode(src[active], src_mask[active], encoding)
    # All k beams of a sentence would start identical, so the first step decodes one row a
    # sentence, and its 2k best candidates give the k beams (CTranslate2 does the same): at
    # beam 4 the first step costs a quarter of the rows. ``width``: beams a sentence in the
    # step's layout. (A, w) log P of each open beam; it takes the dtype of the model's
    # log-probabilities (or float32, the least _adjust allows): the (A, w, V) candidates are the
    # search's big tensor.
    width = 1
    scores = torch.zeros((active.numel(), 1), device=device)
    tokens = torch.full((active.numel(), 1), ids.bos, dtype=torch.long, device=device)
    token_log_probs = torch.zeros((active.numel(), 0), device=device)  # (A·w, t)

    for step in range(int(limits.max())):
        num_active = active.numel()
        log_probs, state = model.decode_step(tokens[:, -1], state)
        # Per-row settings only for the steps that need them (they cost at every step).
        rows_of = (
            active.repeat_interleave(width) if step < min_steps or step < prefix_steps else None
        )
        rules = _Rules(
            ids,
            options,
            min_lens[rows_of] if rows_of is not None and step < min_steps else None,
            prefix[0][rows_of] if prefix is not None and rows_of is not None else None,
            prefix[1][rows_of] if prefix is not None and rows_of is not None else None,
            encoding.logits,
        )
        log_probs, model_log_probs = _adjust(log_probs, step, tokens, rules)  # (A·w, V) each
        vocab_size = log_probs.size(-1)
        log_probs = log_probs.view(num_active, width, vocab_size)
        scores = scores.to(log_probs.dtype)
        top_scores, top_index = selector.choose(step, active, scores, log_probs, k)  # (A, m)
        top_beam, top_token = top_index // vocab_size, top_index % vocab_size
        # The model's log P of each candidate's token, before any guard changed it.
        top_token_lp = model_log_probs.view(num_active, -1).gather(1, top_index)  # (A, m)
        is_eos = top_token == ids.eos
        at_limit = step + 1 >= limits[active]  # (A,) the tokens chosen now are the last allowed
        lens = prefix[1][active] if prefix is not None and step <= prefix_steps else None
        empty = _empty_slots(is_eos, step, lens)
        if empty is not None:
            is_eos = is_eos & ~empty

        ends = (is_eos[:, :k] | at_limit[:, None]) & top_scores[:, :k].isfinite()
        if empty is not None:
            ends &= ~empty[:, :k]
        if ends.any():
            where, rank = ends.nonzero().unbind(1)
            rows = where * width + top_beam[where, rank]  # the rows that produced them, this step
            attention = (
                _attention(state, rows, step + 1, src_mask[active[where]])
                if record_attention
                else [None] * rows.numel()
            )
            lp = length_penalty(step + 1, alpha)  # |Y|: the steps taken, EOS included if any
            touched = set()
            for sentence, row_tokens, row_lps, token, token_lp, log_prob, weights in zip(
                active[where].tolist(),
                tokens[rows, 1:].tolist(),
                token_log_probs[rows].tolist(),
                top_token[where, rank].tolist(),
                top_token_lp[where, rank].tolist(),
                top_scores[where, rank].tolist(),
                attention,
                strict=True,
            ):
                ended = token == ids.eos
                finished[sentence].append(
                    Hypothesis(
                        row_tokens if ended else [*row_tokens, token],
                        log_prob / lp,
                        log_prob,
                        weights,
                        [*row_lps, token_lp],
                        ended,
                    )
                )
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
        if empty is not None:  # an empty slot keeps its place among the k, as a dead beam
            open_scores = open_scores.masked_fill(empty.gather(1, pick), -math.inf)
        beam, token = top_beam.gather(1, pick), top_token.gather(1, pick)
        if options.stopping == "exact":
            done = nth_best[active] >= open_scores[:, 0] / best_possible_lp[active]
        elif options.patience is None:
            done = top_has_ended[active] & (num_finished[active] >= nbest)
        else:
            done = num_finished[active] >= enough
        done = done | open_scores[:, 0].isneginf() | at_limit
        if observer is not None:
            _observe(
                observer, selector, step, active, top_scores, top_beam, top_token, ends, pick, done
            )
        if on_done is not None and done.any():
            for sentence in active[done].tolist():
                on_done(sentence, finished[sentence])
        keep = (~done).nonzero().squeeze(1)  # (A',)
        if keep.numel() == 0:
            break
        chosen_lp = top_token_lp.gather(1, pick)
        if k == 1 and keep.numel() == num_active:
            # A beam of one that keeps every row (most greedy steps): the layout stays, and
            # selecting every row would copy the decoder's caches for nothing.
            rows, new_tokens = keep, token.view(-1)
        else:
            rows = (keep[:, None] * width + beam[keep]).view(-1)  # (A'·k,) rows of this layout
            state = state.select(rows)
            new_tokens = token[keep].view(-1)
            tokens, token_log_probs = tokens[rows], token_log_probs[rows]
            chosen_lp, open_scores, active = chosen_lp[keep], open_scores[keep], active[keep]
        selector.reorder(rows, new_tokens)
        tokens = torch.cat([tokens, new_tokens[:, None]], dim=1)
        token_log_probs = torch.cat([token_log_probs, chosen_lp.view(-1, 1)], dim=1)
        scores, width = open_scores, k
    return finished


def _observe(
    observer: Observer,
    selector: Selector,
    step: int,
    active: Tensor,
    top_scores: Tensor,
    top_beam: Tensor,
    top_token: Tensor,
    ends: Tensor,
    pick: Tensor,
    done: Tensor,
) -> None:
    """One BeamStep per searching sentence: its m candidates sorted into kept, ended, pruned."""
    for a, sentence in enumerate(active.tolist()):
        candidates = list(
            zip(top_beam[a].tolist(), top_token[a].tolist(), top_scores[a].tolist(), strict=True)
        )
        ended = sorted(set(ends[a].nonzero().squeeze(1).tolist()))
        kept = [] if done[a] else [j for j in pick[a].tolist() if math.isfinite(candidates[j][2])]
        taken = set(kept) | set(ended)
        pruned = [j for j, c in enumerate(candidates) if j not in taken and math.isfinite(c[2])]
        steered = selector.describe(a, [c[0] for c in candidates], [c[1] for c in candidates])
        observer(
            BeamStep(
                step=step,
                sentence=sentence,
                kept=[candidates[j] for j in kept],
                ended=[candidates[j] for j in ended],
                pruned=[candidates[j] for j in pruned],
                terms=None
                if steered is None
                else {
                    kind: [steered[j] for j in chosen]
                    for kind, chosen in (("kept", kept), ("ended", ended), ("pruned", pruned))
                },
            )
        )


def generate(
    model: Seq2SeqModel,
    src: Tensor,
    src_mask: Tensor,
    pick: Picker,
    options: DecodingConfig,
    **search: object,
) -> list[Hypothesis]:
    """One hypothesis per sentence, each token chosen by ``pick``: the beam of one with a
    picker as its selector (``search``: beam_search's keyword arguments)."""
    options = options.updated(beam_size=1, nbest=1, sampling=False)
    found = beam_search(model, src, src_mask, options, selector=_Picked(pick), **search)  # type: ignore[arg-type]
    return [hyps[0] for hyps in found]

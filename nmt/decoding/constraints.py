"""Lexically constrained beam search: dynamic beam allocation (Post & Vilar, 2018).

A sentence's constraints are token sequences (phrases) its translation must contain, in any
order (nmt.decoding.glossary makes them from a glossary). Each open hypothesis carries a
:class:`ConstraintState`: which phrases it has produced, and how far it is into the one it is
producing now. Beam search asks :func:`select` for each step's candidates in place of a plain
top-k; :func:`select` works in four steps for every sentence:

1. EOS is forbidden to a hypothesis that has not produced all its phrases, so every
   hypothesis that ends with EOS meets its constraints (for the length limit, see below).
2. Candidates: the usual 2k best extensions over all beams, plus every beam's best token, plus
   every beam's tokens that would advance a constraint (the next token of the phrase it is in,
   else the first token of each phrase it lacks), however improbable.
3. Each candidate's state after its token gives its *bank*: the number of constraint tokens it
   has produced (a partly produced phrase counts its tokens so far).
4. Dynamic beam allocation: the beam is shared out among the banks. Within each bank the
   candidates are ranked by score; the order returned takes the best of the highest bank, then
   the best of the next bank down, … the best of bank 0, then every bank's second best, and so
   on (fairseq's "stripes", the form of DBA that needs no beam-size arithmetic: a bank with
   fewer candidates than its share leaves its places to the others). The search keeps the first
   k that do not end, so hypotheses that have met more constraints are never crowded out by
   more probable ones that met fewer, nor the reverse.

A phrase in progress is abandoned when the hypothesis produces another token (its tokens so far
stop counting); a token that begins several missing phrases starts the first of them.

A term comes out as a whole word: right after a hypothesis completes a phrase, the tokens that
would continue its last word (pieces without the word-start mark '▁' that begin with a letter
or digit) are forbidden to it. Without this rule a weak model met its terms by writing "Hund"
and going on with "heit" ("Hundheit"): on the 1,000 test sentences, 88 of 885 terms were met
as tokens but not as words.

At the length limit beam search ends the k first candidates without an EOS, constraints met or
not. Where one of them meets every constraint, only those that do end: a hypothesis that never
met them cannot win on its score alone. A sentence none of whose hypotheses could meet them all
within ``max_len`` tokens still ends, with the best hypotheses it has, which lack a term (the
Translator warns about it). Terms longer than the limit are refused before search starts
(nmt.decoding.glossary).

:class:`ConstrainedSelector` is how beam search uses all this: its ``choose`` and ``reorder``
(nmt.decoding.search's selection hook) keep one state per open hypothesis, in the beams' order.

Shapes: A sentences still searching, k beams, V vocabulary, n candidates returned (2k).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from nmt.decoding.search import Selector

Phrase = tuple[int, ...]


@dataclass(frozen=True)
class ConstraintState:
    """What one hypothesis has produced of its sentence's phrases."""

    phrases: tuple[Phrase, ...]
    met: tuple[bool, ...]
    current: int | None = None  # the phrase being produced, if any
    progress: int = 0  # its tokens produced so far
    just_met: bool = False  # the last token completed a phrase: its word must end there

    @classmethod
    def start(cls, phrases: Sequence[Sequence[int]]) -> ConstraintState:
        """The state before any token, for ``phrases`` (each non-empty; duplicates count once)."""
        unique = tuple(dict.fromkeys(tuple(p) for p in phrases))
        assert all(unique), "an empty constraint"
        return cls(unique, (False,) * len(unique))

    @property
    def bank(self) -> int:
        """Constraint tokens produced: whole phrases met plus the phrase in progress so far."""
        done = sum(len(p) for p, m in zip(self.phrases, self.met, strict=True) if m)
        return done + self.progress

    @property
    def num_tokens(self) -> int:
        return sum(len(p) for p in self.phrases)

    @property
    def all_met(self) -> bool:
        return all(self.met)

    def next_tokens(self) -> set[int]:
        """The tokens that would advance a constraint now."""
        if self.current is not None:
            return {self.phrases[self.current][self.progress]}
        return {p[0] for p, m in zip(self.phrases, self.met, strict=True) if not m}

    def advance(self, token: int) -> ConstraintState:
        """The state after producing ``token``."""
        if self.current is not None and self.phrases[self.current][self.progress] == token:
            return self._produced(self.current, self.progress + 1)
        for index, (phrase, met) in enumerate(zip(self.phrases, self.met, strict=True)):
            if not met and phrase[0] == token:
                return self._produced(index, 1)
        if self.current is None and not self.just_met:
            return self
        return ConstraintState(self.phrases, self.met)  # any phrase in progress is abandoned

    def _produced(self, index: int, progress: int) -> ConstraintState:
        if progress < len(self.phrases[index]):
            return ConstraintState(self.phrases, self.met, index, progress)
        met = tuple(m or i == index for i, m in enumerate(self.met))
        return ConstraintState(self.phrases, met, just_met=True)


@dataclass
class Selection:
    """A step's candidates in the order beam search should take them: (A, n) each, and the
    state each candidate's hypothesis would have (A lists of n)."""

    scores: Tensor
    beams: Tensor
    tokens: Tensor
    states: list[list[ConstraintState]]


def forbid_early_ends(log_probs: Tensor, states: Sequence[ConstraintState], eos: int) -> None:
    """Forbid EOS (in place in ``log_probs`` (N, V)) to every hypothesis (``states``, one per
    row) with a constraint unmet."""
    rows = [row for row, state in enumerate(states) if not state.all_met]
    if rows:
        log_probs[torch.tensor(rows, device=log_probs.device), eos] = -math.inf


def forbid_word_continuations(
    log_probs: Tensor, states: Sequence[ConstraintState], continuations: Tensor
) -> None:
    """Forbid the ``continuations`` (token ids that go on with the word before them) to every
    hypothesis whose last token completed a phrase (in place in ``log_probs`` (N, V))."""
    rows = [row for row, state in enumerate(states) if state.just_met]
    if rows and continuations.numel():
        where = torch.tensor(rows, device=log_probs.device)
        log_probs[where[:, None], continuations[None, :]] = -math.inf


def select(
    candidates: Tensor,
    states: Sequence[Sequence[ConstraintState]],
    num_picks: int,
    last_step: Sequence[bool] | None = None,
) -> Selection:
    """The ``num_picks`` candidates per sentence in dynamic beam allocation's order.

    ``candidates`` (A, k, V) holds the score of every extension (the beam's log P plus the
    token's, with forbidden tokens at -inf: see :func:`forbid_early_ends`); ``states`` the
    constraint state of each of the A·k hypotheses. Impossible (-inf) candidates come last.
    Where ``last_step[a]`` (the candidates end at the length limit), sentence a's candidates
    that meet all its constraints are its only ones, if it has any.
    """
    num_sentences, k, vocab_size = candidates.shape
    flat = candidates.view(num_sentences, -1)
    top_scores, top_index = flat.topk(min(num_picks, flat.size(1)), dim=1)  # (A, n)
    best_scores, best_tokens = candidates.max(dim=-1)  # (A, k)
    # The tokens that advance a constraint, for every hypothesis at once.
    wanted = [
        (sentence, beam, token)
        for sentence, beams in enumerate(states)
        for beam, state in enumerate(beams)
        for token in sorted(state.next_tokens())
    ]
    wanted_scores: list[float] = []
    if wanted:
        index = torch.tensor(wanted, device=candidates.device).T
        wanted_scores = candidates[index[0], index[1], index[2]].tolist()

    picked_scores, picked_beams, picked_tokens, picked_states = [], [], [], []
    top_scores_list, top_index_list = top_scores.tolist(), top_index.tolist()
    best_scores_list, best_tokens_list = best_scores.tolist(), best_tokens.tolist()
    wanted_at = 0
    for sentence in range(num_sentences):
        pool: dict[tuple[int, int], float] = {}  # (beam, token) → score
        for score, flat_index in zip(
            top_scores_list[sentence], top_index_list[sentence], strict=True
        ):
            pool[divmod(flat_index, vocab_size)] = score
        for beam in range(k):
            pool[beam, best_tokens_list[sentence][beam]] = best_scores_list[sentence][beam]
        while wanted_at < len(wanted) and wanted[wanted_at][0] == sentence:
            _, beam, token = wanted[wanted_at]
            pool[beam, token] = wanted_scores[wanted_at]
            wanted_at += 1
        finishing = last_step is not None and last_step[sentence]
        ranked = _allocate(pool, states[sentence], finishing)
        ranked = ranked[:num_picks]
        missing = num_picks - len(ranked)
        picked_scores.append([c[0] for c in ranked] + [-math.inf] * missing)
        picked_beams.append([c[1] for c in ranked] + [0] * missing)
        picked_tokens.append(
            [c[2] for c in ranked] + [top_index_list[sentence][0] % vocab_size] * missing
        )
        picked_states.append([c[3] for c in ranked] + [states[sentence][0]] * missing)

    def tensor(rows: list[list[float]] | list[list[int]], dtype: torch.dtype) -> Tensor:
        return torch.tensor(rows, dtype=dtype, device=candidates.device)

    return Selection(
        scores=tensor(picked_scores, candidates.dtype),
        beams=tensor(picked_beams, torch.long),
        tokens=tensor(picked_tokens, torch.long),
        states=picked_states,
    )


Candidate = tuple[float, int, int, ConstraintState]  # score, beam, token, state after it


def _allocate(
    pool: dict[tuple[int, int], float], states: Sequence[ConstraintState], finishing: bool
) -> list[Candidate]:
    """The finite candidates of one sentence, striped across banks: the best of each bank from
    the highest down, then the second best of each, and so on. ``finishing``: only those that
    meet every constraint, where there are any."""
    banks: dict[int, list[Candidate]] = {}
    for (beam, token), score in pool.items():
        if math.isinf(score):
            continue
        state = states[beam].advance(token)
        banks.setdefault(state.bank, []).append((score, beam, token, state))
    if finishing and states[0].num_tokens in banks:
        banks = {states[0].num_tokens: banks[states[0].num_tokens]}
    ordered: list[tuple[int, int, Candidate]] = []
    for bank in sorted(banks, reverse=True):
        members = sorted(banks[bank], key=lambda c: (-c[0], c[1], c[2]))
        ordered.extend((rank, -bank, c) for rank, c in enumerate(members))
    ordered.sort(key=lambda item: (item[0], item[1]))
    return [c for _, _, c in ordered]


class ConstrainedSelector(Selector):
    """Beam search's selection hook for lexically constrained decoding (the module docstring).

    ``phrases`` holds each sentence's constraints (the sentences of the batch beam search is
    given, in its order; [] for a sentence without any), ``limits`` their length limits: at a
    sentence's last step its hypotheses that meet every constraint are the only ones to end,
    if it has any, so that one that never met them cannot win on its score alone.
    ``continuations``: the ids of the pieces that continue a word (:func:`word_continuations`).
    """

    def __init__(
        self,
        phrases: Sequence[Sequence[Sequence[int]]],
        limits: Sequence[int],
        eos: int,
        continuations: Tensor,
    ) -> None:
        self.starts = [ConstraintState.start(p) for p in phrases]
        self.limits = list(limits)
        self.eos = eos
        self.continuations = continuations
        self.states: list[ConstraintState] | None = None  # (N,) one per open hypothesis
        self.width = 1  # beams a sentence in the last step's layout (1 at the first step, then k)

    def choose(
        self, step: int, active: Tensor, scores: Tensor, log_probs: Tensor, k: int
    ) -> tuple[Tensor, Tensor]:
        num_active, width, vocab_size = log_probs.shape
        self.width = width
        if self.states is None:  # the first step: one beam a searching sentence, at its start
            self.states = [self.starts[s] for s in active.tolist() for _ in range(width)]
        flat = log_probs.view(num_active * width, vocab_size)
        forbid_early_ends(flat, self.states, self.eos)
        forbid_word_continuations(flat, self.states, self.continuations.to(flat.device))
        candidates = scores[:, :, None] + log_probs  # (A, w, V)
        rows = [self.states[a * width : (a + 1) * width] for a in range(num_active)]
        last_step = [step + 1 >= self.limits[s] for s in active.tolist()]
        picked = select(candidates, rows, 2 * k, last_step)
        # The loop ends the EOS among the first k and keeps the k best others: hand it the first
        # k in allocation order and after them only the open ones that complete k open, so that
        # its k best others are exactly allocation's (the rest at -inf).
        is_eos = picked.tokens == self.eos  # (A, 2k)
        position = torch.arange(2 * k, device=is_eos.device)
        opens_before = (~is_eos).long().cumsum(dim=1) - (~is_eos).long()  # (A, 2k)
        wanted = (position < k) | (~is_eos & (opens_before < k))
        top_scores = picked.scores.masked_fill(~wanted, -math.inf)
        return top_scores, picked.beams * vocab_size + picked.tokens

    def describe(self, sentence_row: int, beams: list[int], tokens: list[int]) -> list[int]:
        """Each candidate's bank: the glossary tokens its hypothesis holds with its token."""
        assert self.states is not None
        first = sentence_row * self.width  # the sentence's first open hypothesis
        return [self.states[first + b].advance(t).bank for b, t in zip(beams, tokens, strict=True)]

    def reorder(self, rows: Tensor, tokens: Tensor) -> None:
        assert self.states is not None
        self.states = [
            self.states[row].advance(token)
            for row, token in zip(rows.tolist(), tokens.tolist(), strict=True)
        ]


def word_continuations(pieces: Sequence[str]) -> Tensor:
    """The ids of the SentencePiece ``pieces`` (by id) that go on with the word before them:
    no word-start mark '▁', and a letter or digit first (punctuation and special tokens end a
    word, as the glossary's whole-word promise reads them)."""
    ids = [i for i, piece in enumerate(pieces) if piece[:1].isalnum() or piece[:1] == "_"]
    return torch.tensor(ids, dtype=torch.long)

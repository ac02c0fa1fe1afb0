"""Search against models whose answers are known: hand-made tables and small deterministic fakes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from torch import Tensor

from nmt.config import DecodingConfig, RNNConfig, TransformerConfig
from nmt.data.batching import pad_sequences
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from nmt.decoding.search import (
    Hypothesis,
    Selector,
    beam_search,
    length_penalty,
    max_lengths,
    top_per_row,
)
from nmt.models.interface import DEFAULT_ENCODE_OPTIONS, EncodeOptions

DATA = Path(__file__).parent / "data"


def opts(**changes: Any) -> DecodingConfig:
    """Decoding options: the defaults with ``changes``."""
    return DecodingConfig(**changes)


# The brute-force checks below enumerate every output, the empty one included.
EXACT = {"stopping": "exact", "allow_empty": True}


def tokens_of(hyps: list[Hypothesis]) -> list[list[int]]:
    return [h.tokens for h in hyps]


def greedy_search(
    model: Any, src: Tensor, src_mask: Tensor, options: DecodingConfig | None = None, **kw: Any
) -> list[Hypothesis]:
    """decode with a beam of one: one hypothesis per sentence."""
    options = (options or opts()).updated(beam_size=1, nbest=1)
    return [h for [h] in beam_search(model, src, src_mask, options, **kw)]


def sample(
    model: Any,
    src: Tensor,
    src_mask: Tensor,
    options: DecodingConfig | None = None,
    *,
    generator: torch.Generator,
) -> list[Hypothesis]:
    """decode with sampling: one hypothesis per sentence."""
    options = (options or opts()).updated(sampling=True, nbest=1)
    return [h for [h] in beam_search(model, src, src_mask, options, generator=generator)]


A, B, C = 4, 5, 6  # the table's words; 0–3 are PAD, UNK, BOS, EOS

Table = dict[tuple[int, ...], dict[int, float]]

# Greedy takes a (0.5) then ends: P(a) = 0.2. The best output is b: P(b) = 0.4 · 0.9 = 0.36.
TABLE: Table = {
    (): {A: 0.5, B: 0.4, EOS_ID: 0.1},
    (A,): {EOS_ID: 0.4, C: 0.35, B: 0.25},
    (B,): {EOS_ID: 0.9, C: 0.1},
}
ENDS: dict[int, float] = {EOS_ID: 1.0}  # every other prefix ends: a finite tree
GOES_ON: dict[int, float] = {A: 0.5, B: 0.3, C: 0.15, EOS_ID: 0.05}  # an endless one


@dataclass
class PrefixState:
    src: Tensor  # (N, S)
    prefix: Tensor  # (N, t) tokens fed so far, BOS first

    def select(self, indices: Tensor) -> PrefixState:
        return PrefixState(self.src[indices], self.prefix[indices])


class TableModel:
    """Next-token probabilities looked up by prefix (the source is ignored); counts its steps."""

    def __init__(self, table: Table, default: dict[int, float], vocab_size: int = 7) -> None:
        self.table, self.default, self.vocab_size = table, default, vocab_size
        self.steps = 0
        self.encode_options: list[EncodeOptions] = []

    def distribution(self, prefix: tuple[int, ...]) -> dict[int, float]:
        return self.table.get(prefix, self.default)

    def log_probs(self, prefix: tuple[int, ...]) -> Tensor:
        probs = torch.zeros(self.vocab_size, dtype=torch.float64)
        for token, p in self.distribution(prefix).items():
            probs[token] = p
        return probs.log()

    def encode(
        self, src: Tensor, src_mask: Tensor, options: EncodeOptions = DEFAULT_ENCODE_OPTIONS
    ) -> PrefixState:
        self.encode_options.append(options)
        return PrefixState(src, src.new_empty(src.size(0), 0))

    def decode_step(self, prev_tokens: Tensor, state: PrefixState) -> tuple[Tensor, PrefixState]:
        self.steps += 1
        prefix = torch.cat([state.prefix, prev_tokens[:, None]], dim=1)
        rows = [self.log_probs(tuple(row[1:])) for row in prefix.tolist()]
        return torch.stack(rows), PrefixState(state.src, prefix)

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        raise NotImplementedError

    def cross_attention(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor | None:
        return None


def all_outputs(model: TableModel, max_len: int) -> list[tuple[list[int], float, int]]:
    """Every output of at most max_len tokens with its log P and |Y|, by brute force: one that
    ends with EOS counts it (in log P and |Y|), one that reaches max_len tokens ends there."""
    outputs = []

    def walk(prefix: tuple[int, ...], log_p: float) -> None:
        if len(prefix) == max_len:
            outputs.append((list(prefix), log_p, max_len))
            return
        for token, p in model.distribution(prefix).items():
            if token == EOS_ID:
                outputs.append((list(prefix), log_p + math.log(p), len(prefix) + 1))
            else:
                walk((*prefix, token), log_p + math.log(p))

    walk((), 0.0)
    return outputs


def one_source(length: int = 3) -> tuple[Tensor, Tensor]:
    src = pad_sequences([[7] * length], suffix=EOS_ID)
    return src, src != PAD_ID


@dataclass
class RecurrentState:
    hidden: Tensor  # (N, D)
    context: Tensor  # (N, D) the source, summed
    src_len: Tensor  # (N,)
    step: int

    def select(self, indices: Tensor) -> RecurrentState:
        return RecurrentState(
            self.hidden[indices], self.context[indices], self.src_len[indices], self.step
        )

    @property
    def attention(self) -> Tensor | None:
        return None


class RecurrentFake:
    """A tiny random recurrent model in float64 whose outputs depend on the source; EOS grows
    likelier once the output is as long as the source (``eos_slope`` per token)."""

    def __init__(
        self,
        vocab_size: int = 16,
        dim: int = 8,
        eos_slope: float = 1.0,
        eos_bias: float = 0.0,
        seed: int = 0,
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        self.src_embed = torch.randn(vocab_size, dim, generator=g, dtype=torch.float64)
        self.tgt_embed = torch.randn(vocab_size, dim, generator=g, dtype=torch.float64)
        self.recur = torch.randn(dim, dim, generator=g, dtype=torch.float64) / dim**0.5
        self.out = torch.randn(dim, vocab_size, generator=g, dtype=torch.float64) * 2
        self.eos_slope, self.eos_bias = eos_slope, eos_bias

    def encode(
        self, src: Tensor, src_mask: Tensor, options: EncodeOptions = DEFAULT_ENCODE_OPTIONS
    ) -> RecurrentState:
        context = (self.src_embed[src] * src_mask[:, :, None]).sum(1)  # padding adds nothing
        return RecurrentState(torch.tanh(context), context, src_mask.sum(1) - 1, 0)

    def decode_step(
        self, prev_tokens: Tensor, state: RecurrentState
    ) -> tuple[Tensor, RecurrentState]:
        hidden = torch.tanh(state.hidden @ self.recur + self.tgt_embed[prev_tokens] + state.context)
        logits = hidden @ self.out
        eos = logits[:, EOS_ID] + self.eos_slope * (state.step - state.src_len) + self.eos_bias
        logits = torch.cat([logits[:, :EOS_ID], eos[:, None], logits[:, EOS_ID + 1 :]], dim=1)
        return logits.log_softmax(-1), RecurrentState(
            hidden, state.context, state.src_len, state.step + 1
        )

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        raise NotImplementedError

    def cross_attention(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor | None:
        return None


SOURCES = [[4, 5, 6], [7, 8, 9, 10, 11, 12, 4], [5], [9, 9, 8, 7, 6]]


def batch(sources: list[list[int]]) -> tuple[Tensor, Tensor]:
    src = pad_sequences(sources, suffix=EOS_ID)
    return src, src != PAD_ID


# -- the length penalty and limits ---------------------------------------------------------


def test_length_penalty_is_gnmt_formula() -> None:
    assert length_penalty(1, 0.6) == 1.0
    assert length_penalty(7, 0.6) == pytest.approx(2**0.6)
    assert length_penalty(13, 1.0) == pytest.approx(3.0)
    assert length_penalty(40, 0.0) == 1.0
    assert length_penalty(10, 0.6) == pytest.approx((15 / 6) ** 0.6)


def test_max_lengths_count_source_without_eos() -> None:
    _, mask = batch([[4, 5, 6], [4]])
    assert max_lengths(mask, 1.0, 50).tolist() == [53, 51]
    assert max_lengths(mask, 1.5, 2).tolist() == [6, 3]
    assert max_lengths(mask, 1.0, 50, max_len_cap=10).tolist() == [10, 10]


def test_encode_is_told_how_many_steps_search_may_take() -> None:
    model = TableModel(TABLE, ENDS)
    src, mask = batch([[4, 5, 6], [4]])
    beam_search(model, src, mask, opts(max_len_a=1.0, max_len_b=5))
    greedy_search(model, src, mask, opts(max_len_a=0.0, max_len_b=2), record_attention=True)
    # The longest output, 3 + 5 tokens, takes 8 steps: one that reaches the limit ends there,
    # with no step to score an EOS.
    assert model.encode_options == [
        EncodeOptions(max_steps=8, record_attention=False),
        EncodeOptions(max_steps=2, record_attention=True),
    ]


class RowCounting(RecurrentFake):
    """Records the rows of every decode_step."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[int] = []

    def decode_step(
        self, prev_tokens: Tensor, state: RecurrentState
    ) -> tuple[Tensor, RecurrentState]:
        self.rows.append(prev_tokens.numel())
        return super().decode_step(prev_tokens, state)


def test_the_first_step_decodes_one_row_a_sentence_then_k() -> None:
    """The k beams would all start from BOS: the first step decodes each sentence once, and its
    2k best candidates open k different beams (the hypothesis-score test below checks that
    each goes on from the right row)."""
    model = RowCounting()
    options = opts(beam_size=3, nbest=3, length_penalty=0.0, max_len_a=0.0, max_len_b=4)
    found = beam_search(model, *batch(SOURCES), options)
    assert model.rows[:2] == [len(SOURCES), 3 * len(SOURCES)]
    for hyps in found:
        assert len({tuple(h.tokens) for h in hyps}) == 3  # not copies of one beam


# -- the hand-made table ------------------------------------------------------------------


def test_greedy_follows_the_most_probable_token() -> None:
    assert tokens_of(greedy_search(TableModel(TABLE, ENDS), *one_source())) == [[A]]


def test_beam_finds_the_known_best_where_greedy_does_not() -> None:
    model = TableModel(TABLE, ENDS)
    [[best]] = beam_search(model, *one_source(), opts(beam_size=2, length_penalty=0.0))
    assert best.tokens == [B]
    assert best.log_prob == pytest.approx(math.log(0.36))
    assert best.score == pytest.approx(math.log(0.36))


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_nbest_order_and_scores_match_brute_force(alpha: float) -> None:
    model = TableModel(TABLE, ENDS)
    expected = sorted(
        (
            (tokens, log_p / length_penalty(length, alpha), log_p)
            for tokens, log_p, length in all_outputs(model, 5)
        ),
        key=lambda t: -t[1],
    )[:4]
    options = opts(beam_size=4, length_penalty=alpha, nbest=4, **EXACT)
    [hyps] = beam_search(model, *one_source(), options)
    assert [h.tokens for h in hyps] == [tokens for tokens, _, _ in expected]
    assert [h.score for h in hyps] == pytest.approx([score for _, score, _ in expected])
    assert [h.log_prob for h in hyps] == pytest.approx([log_p for _, _, log_p in expected])


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_wide_beam_on_an_endless_tree_is_exact(alpha: float) -> None:
    """A beam wide enough to hold every prefix must return the true n-best: the exact rule
    never cuts off an open beam that the length penalty could still lift above the finished."""
    model = TableModel(TABLE, GOES_ON)
    max_len = 4
    expected = sorted(
        (log_p / length_penalty(length, alpha), tokens)
        for tokens, log_p, length in all_outputs(model, max_len)
    )[::-1][:3]
    options = opts(
        beam_size=27, length_penalty=alpha, max_len_a=0.0, max_len_b=max_len, nbest=3, **EXACT
    )
    [hyps] = beam_search(model, *one_source(), options)
    assert [h.tokens for h in hyps] == [tokens for _, tokens in expected]
    assert [h.score for h in hyps] == pytest.approx([score for score, _ in expected])


def test_exact_search_stops_once_nothing_open_can_win() -> None:
    model = TableModel(TABLE, GOES_ON)
    [[best]] = beam_search(model, *one_source(), opts(beam_size=2, length_penalty=0.0, **EXACT))
    assert best.tokens == [B]
    # Step 1 finishes b (0.36) while the best open beam holds 0.175: no later step can help.
    assert model.steps == 2


def test_beam_of_one_equals_greedy_on_the_table() -> None:
    model = TableModel(TABLE, GOES_ON)
    [[hyp]] = beam_search(model, *one_source(), opts(beam_size=1, length_penalty=0.0))
    assert [hyp.tokens] == tokens_of(greedy_search(model, *one_source()))


# -- stopping rules and empty outputs --------------------------------------------------------

# A sure first word, then the end (0.6) or a word that goes on and on (0.98 a step): the best
# output is [a] after two steps, but an open beam's log P falls so slowly that with α = 0.6 the
# exact bound cannot rule it out until close to the length limit. (Reaching the limit costs no
# EOS, so at 0.99 a step the output that runs to the limit would win.)
UNSURE: Table = {(): {A: 1.0}, (A,): {EOS_ID: 0.6, B: 0.4}}
LINGERS: dict[int, float] = {B: 0.98, EOS_ID: 0.02}


def test_the_default_stops_when_the_best_has_ended_where_the_exact_bound_searches_on() -> None:
    limit = 3 + 50  # |X| + 50, the default
    early = TableModel(UNSURE, LINGERS)
    [[best]] = beam_search(early, *one_source(), opts())
    assert best.tokens == [A]
    assert early.steps == 2
    exact = TableModel(UNSURE, LINGERS)
    [[same]] = beam_search(exact, *one_source(), opts(stopping="exact"))
    assert same.tokens == [A] and same.score == pytest.approx(best.score)
    # Until best open log P / lp(limit) falls below [a]'s score: 46 steps, for the same answer.
    bound_steps = (
        1
        + math.ceil(
            (math.log(0.6) / length_penalty(2, 0.6) * length_penalty(limit, 0.6) - math.log(0.4))
            / math.log(0.98)
        )
        + 1
    )
    assert exact.steps == bound_steps and 40 < exact.steps < limit


@pytest.mark.parametrize(
    ("patience", "steps"),
    [(None, 2), (1.0, 2), (1.5, 4), (2.0, 4)],
)
def test_patience_waits_for_more_ended_hypotheses(patience: float | None, steps: int) -> None:
    """Beam 2 on the table: step 1 ends two hypotheses (b, then a), and the open ones never
    end before the limit of 4 tokens: waiting for ⌈p·2⌉ > 2 ends means searching to it."""
    model = TableModel(TABLE, GOES_ON)
    options = opts(
        beam_size=2, length_penalty=0.0, max_len_a=0.0, max_len_b=4, patience=patience, nbest=2
    )
    [hyps] = beam_search(model, *one_source(), options)
    assert model.steps == steps
    assert hyps[0].tokens == [B]


def test_early_stopping_waits_for_nbest_hypotheses() -> None:
    model = TableModel(TABLE, GOES_ON)
    options = opts(beam_size=3, nbest=3, length_penalty=0.0, max_len_a=0.0, max_len_b=4)
    [hyps] = beam_search(model, *one_source(), options)
    assert len(hyps) == 3  # step 1 ends two (b, a); a third needs more steps
    assert model.steps > 2


def test_beam_of_one_is_greedy_under_the_default_rule() -> None:
    model = RecurrentFake()
    src, mask = batch(SOURCES)
    greedy = greedy_search(model, src, mask, opts(length_penalty=0.6))
    beams = beam_search(model, src, mask, opts(beam_size=1, length_penalty=0.6))
    assert [h.tokens for [h] in beams] == tokens_of(greedy)
    assert [h.score for [h] in beams] == pytest.approx([h.score for h in greedy])


# The most probable first token is EOS: an empty output.
EMPTY_FIRST: Table = {(): {EOS_ID: 0.7, A: 0.3}}


@pytest.mark.parametrize("beam_size", [1, 3])
def test_empty_outputs_only_when_allowed(beam_size: int) -> None:
    model = TableModel(EMPTY_FIRST, ENDS)
    options = opts(beam_size=beam_size, nbest=1)
    [[hyp]] = beam_search(model, *one_source(), options)
    assert hyp.tokens == [A]
    assert hyp.log_prob == pytest.approx(math.log(0.3))  # scored by the model, not renormalised
    [[hyp]] = beam_search(model, *one_source(), options.updated(allow_empty=True))
    assert hyp.tokens == []
    sampled = sample(
        model, *batch([[7]] * 200), opts(sampling=True), generator=torch.Generator().manual_seed(0)
    )
    assert all(h.tokens == [A] for h in sampled)


def test_a_length_limit_of_zero_still_ends() -> None:
    model = TableModel(EMPTY_FIRST, ENDS)
    for beam_size in (1, 2):
        [[hyp]] = beam_search(
            model, *one_source(), opts(beam_size=beam_size, max_len_a=0, max_len_b=0)
        )
        assert hyp.tokens == []


# -- batches of sources ----------------------------------------------------------------------


def test_beam_of_one_equals_greedy() -> None:
    model = RecurrentFake()
    src, mask = batch(SOURCES)
    options = opts(beam_size=1, length_penalty=0.0, **EXACT)
    beams = beam_search(model, src, mask, options)
    greedy = greedy_search(model, src, mask, options)
    assert [h.tokens for [h] in beams] == tokens_of(greedy)
    assert [h.log_prob for h in greedy] == pytest.approx([h.log_prob for [h] in beams])
    assert [h.score for h in greedy] == pytest.approx([h.score for [h] in beams])


def test_outputs_are_not_trivial() -> None:
    """Guards the tests above and below: the fake gives varied outputs that end by themselves."""
    outputs = tokens_of(greedy_search(RecurrentFake(), *batch(SOURCES)))
    assert len({tuple(o) for o in outputs}) == len(SOURCES)
    assert all(0 < len(o) < len(s) + 50 for o, s in zip(outputs, SOURCES, strict=True))


@pytest.mark.parametrize("stopping", ["early", "exact"])
@pytest.mark.parametrize("beam_size", [1, 3, 5])
def test_a_sentence_decodes_the_same_alone_and_in_a_batch(beam_size: int, stopping: str) -> None:
    model = RecurrentFake()
    options = opts(beam_size=beam_size, nbest=beam_size, stopping=stopping)
    together = beam_search(model, *batch(SOURCES), options)
    for source, hyps in zip(SOURCES, together, strict=True):
        [alone] = beam_search(model, *batch([source]), options)
        assert [h.tokens for h in hyps] == [h.tokens for h in alone]
        assert [h.score for h in hyps] == pytest.approx([h.score for h in alone], abs=1e-9)
    assert tokens_of(greedy_search(model, *batch(SOURCES))) == [
        greedy_search(model, *batch([s]))[0].tokens for s in SOURCES
    ]


def rescore(model: RecurrentFake, source: list[int], tokens: list[int]) -> float:
    """log P(tokens + EOS | source), one row, step by step."""
    src, mask = batch([source])
    state, total = model.encode(src, mask), 0.0
    for prev, token in zip([BOS_ID, *tokens], [*tokens, EOS_ID], strict=True):
        log_probs, state = model.decode_step(torch.tensor([prev]), state)
        total += log_probs[0, token].item()
    return total


@pytest.mark.parametrize("stopping", ["early", "exact"])
@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_hypothesis_scores_are_the_model_probabilities_of_their_tokens(
    alpha: float, stopping: str
) -> None:
    """Catches beams whose states or histories get mixed up when they are reordered."""
    model = RecurrentFake()
    options = opts(beam_size=4, nbest=4, length_penalty=alpha, stopping=stopping)
    beams = beam_search(model, *batch(SOURCES), options)
    for source, hyps in zip(SOURCES, beams, strict=True):
        assert len(hyps) == 4
        assert len({tuple(h.tokens) for h in hyps}) == 4
        for h in hyps:
            assert h.log_prob == pytest.approx(rescore(model, source, h.tokens), abs=1e-9)
            assert h.score == pytest.approx(h.log_prob / length_penalty(len(h.tokens) + 1, alpha))
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_beam_finds_at_least_the_greedy_score() -> None:
    model = RecurrentFake()
    src, mask = batch(SOURCES)
    greedy = beam_search(model, src, mask, opts(beam_size=1, stopping="exact"))
    wide = beam_search(model, src, mask, opts(beam_size=6, stopping="exact"))
    for [g], [w] in zip(greedy, wide, strict=True):
        assert w.score >= g.score - 1e-9


def test_max_length_is_respected() -> None:
    model = RecurrentFake(
        eos_slope=0.0, eos_bias=-50.0
    )  # EOS all but impossible: outputs run to the limit
    src, mask = batch(SOURCES)
    limits = [math.floor(1.5 * len(s) + 2) for s in SOURCES]
    options = opts(max_len_a=1.5, max_len_b=2)
    assert [len(h.tokens) for h in greedy_search(model, src, mask, options)] == limits
    beams = beam_search(model, src, mask, options.updated(beam_size=3, nbest=3))
    assert [[len(h.tokens) for h in hyps] for hyps in beams] == [[n] * 3 for n in limits]
    capped = greedy_search(model, src, mask, options, max_len_cap=4)
    assert [len(h.tokens) for h in capped] == [min(n, 4) for n in limits]
    sampled = sample(
        model,
        src,
        mask,
        opts(sampling=True, max_len_a=0.0, max_len_b=3),
        generator=torch.Generator().manual_seed(0),
    )
    assert [len(h.tokens) for h in sampled] == [3] * len(SOURCES)


def test_never_produces_pad_or_bos() -> None:
    table: Table = {(): {PAD_ID: 0.5, BOS_ID: 0.3, A: 0.2}, (A,): {EOS_ID: 1.0}}
    model = TableModel(table, ENDS)
    assert tokens_of(greedy_search(model, *one_source())) == [[A]]
    assert tokens_of(beam_search(model, *one_source(), opts(beam_size=3))[0]) == [[A]]


class MarianLikeTable(TableModel):
    """A model with its own special ids: EOS 0, and PAD = BOS = decoder start = 6 (Marian's);
    3, nmt's usual EOS, is an ordinary word here."""

    pad_id, bos_id, eos_id = 6, 6, 0

    def decode_step(self, prev_tokens: Tensor, state: PrefixState) -> tuple[Tensor, PrefixState]:
        if state.prefix.size(1) == 0:
            assert prev_tokens.eq(6).all()  # decoding starts from the model's start token
        return super().decode_step(prev_tokens, state)


def test_search_uses_the_models_special_ids() -> None:
    table: Table = {(): {3: 0.5, 6: 0.4, 0: 0.1}, (3,): {3: 0.6, 0: 0.4}, (3, 3): {0: 1.0}}
    for beam_size in (1, 3):
        model = MarianLikeTable(table, {0: 1.0})
        [[hyp]] = beam_search(model, *one_source(), opts(beam_size=beam_size, length_penalty=0.0))
        assert hyp.tokens == [3, 3]  # 6 is never produced, 0 ends it


def test_empty_batch() -> None:
    src = torch.zeros(0, 3, dtype=torch.long)
    assert greedy_search(RecurrentFake(), src, src != PAD_ID) == []
    assert beam_search(RecurrentFake(), src, src != PAD_ID) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"beam_size": 2, "nbest": 3}, "nbest"),
        ({"beam_size": 0}, "beam_size"),
        ({"temperature": 0.0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"stopping": "exact", "patience": 2.0}, "patience"),
        ({"sampling": True, "nbest": 2}, "nbest"),
        ({"stopping": "never"}, "stopping"),
    ],
)
def test_bad_options_are_refused_once_naming_the_field(changes: dict[str, Any], field: str) -> None:
    from nmt.errors import NmtError

    with pytest.raises(NmtError, match=field):
        DecodingConfig().updated(**changes)
    with pytest.raises(ValidationError, match=field):
        DecodingConfig(**changes)


# -- sampling ----------------------------------------------------------------------------------


def test_sampling_with_top_k_1_or_tiny_top_p_is_greedy() -> None:
    model = RecurrentFake()
    src, mask = batch(SOURCES)
    greedy = tokens_of(greedy_search(model, src, mask))
    g = torch.Generator().manual_seed(3)
    hot = opts(sampling=True, temperature=2.0)
    assert tokens_of(sample(model, src, mask, hot.updated(top_k=1), generator=g)) == greedy
    assert tokens_of(sample(model, src, mask, hot.updated(top_p=1e-6), generator=g)) == greedy


def test_seeded_sampling_is_reproducible() -> None:
    model = RecurrentFake()
    src, mask = batch(SOURCES)

    def draw(seed: int) -> list[list[int]]:
        options = opts(sampling=True, temperature=3.0)
        return tokens_of(
            sample(model, src, mask, options, generator=torch.Generator().manual_seed(seed))
        )

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {A: 0.5, B: 0.4, EOS_ID: 0.1}),
        ({"temperature": 0.5}, {A: 0.25 / 0.42, B: 0.16 / 0.42, EOS_ID: 0.01 / 0.42}),
        ({"top_k": 2}, {A: 0.5 / 0.9, B: 0.4 / 0.9, EOS_ID: 0.0}),
        ({"top_p": 0.8}, {A: 0.5 / 0.9, B: 0.4 / 0.9, EOS_ID: 0.0}),
        ({"top_p": 0.5}, {A: 1.0, B: 0.0, EOS_ID: 0.0}),
    ],
)
def test_sampling_draws_from_the_right_distribution(
    options: dict, expected: dict[int, float]
) -> None:
    n = 4000
    src = pad_sequences([[7]] * n, suffix=EOS_ID)
    outputs = sample(
        TableModel(TABLE, ENDS),
        src,
        src != PAD_ID,
        opts(sampling=True, allow_empty=True, **options),
        generator=torch.Generator().manual_seed(0),
    )
    first = [h.tokens[0] if h.tokens else EOS_ID for h in outputs]
    for token, p in expected.items():
        assert first.count(token) / n == pytest.approx(p, abs=0.03)


# -- attention: the weights of the step that made each hypothesis --------------------------


@dataclass
class TracingState(RecurrentState):
    weights: Tensor  # (N, t, L, H, S)

    def select(self, indices: Tensor) -> TracingState:
        inner = super().select(indices)
        return TracingState(**vars(inner) | {"weights": self.weights[indices]})

    @property
    def attention(self) -> Tensor:
        return self.weights


class TracingFake(RecurrentFake):
    """RecurrentFake whose recorded 'attention' at each step spells out the token fed: layer l
    puts weight l + 1 on source column (token mod the sentence's source length). A hypothesis
    given another beam's weights, or rows not reordered with the beams, shows at once."""

    num_layers = 2

    def encode(
        self, src: Tensor, src_mask: Tensor, options: EncodeOptions = DEFAULT_ENCODE_OPTIONS
    ) -> TracingState:
        assert options.record_attention
        inner = super().encode(src, src_mask)
        weights = torch.zeros(src.size(0), 0, self.num_layers, 1, src.size(1))
        return TracingState(**vars(inner), weights=weights)

    def decode_step(
        self, prev_tokens: Tensor, state: RecurrentState
    ) -> tuple[Tensor, TracingState]:
        assert isinstance(state, TracingState)
        log_probs, inner = super().decode_step(prev_tokens, state)
        column = prev_tokens % (state.src_len + 1)  # (N,) within the real source + EOS
        step = torch.zeros(prev_tokens.size(0), self.num_layers, 1, state.weights.size(-1))
        for layer in range(self.num_layers):
            step[torch.arange(prev_tokens.size(0)), layer, 0, column] = layer + 1.0
        weights = torch.cat([state.weights, step[:, None]], dim=1)
        return log_probs, TracingState(**vars(inner), weights=weights)


def expected_trace(source: list[int], tokens: list[int]) -> Tensor:
    """(L, H, T, S) as TracingFake records it for the hypothesis ``tokens``."""
    fed = [BOS_ID, *tokens]
    trace = torch.zeros(TracingFake.num_layers, 1, len(fed), len(source) + 1)
    for t, token in enumerate(fed):
        for layer in range(TracingFake.num_layers):
            trace[layer, 0, t, token % (len(source) + 1)] = layer + 1.0
    return trace


@pytest.mark.parametrize(
    "changes",
    [
        {"beam_size": 4, "nbest": 4},
        {"beam_size": 4, "nbest": 4, "stopping": "exact"},
        {"beam_size": 1},
    ],
)
def test_each_hypothesis_gets_the_attention_of_its_own_steps(changes: dict[str, Any]) -> None:
    model = TracingFake()
    found = beam_search(model, *batch(SOURCES), opts(**changes), record_attention=True)
    for source, hyps in zip(SOURCES, found, strict=True):
        for h in hyps:
            assert h.attention is not None
            assert torch.equal(h.attention, expected_trace(source, h.tokens))
    if changes["beam_size"] > 1:
        # Guards the test: beams were reordered, some hypotheses share no history with row 0.
        assert any(h.tokens[:1] != hyps[0].tokens[:1] for hyps in found for h in hyps)


def test_no_attention_unless_asked_or_offered() -> None:
    [[hyp]] = beam_search(RecurrentFake(), *batch(SOURCES[:1]), opts(), record_attention=True)
    assert hyp.attention is None
    [[hyp]] = beam_search(RecurrentFake(), *batch(SOURCES[:1]), opts())
    assert hyp.attention is None


# -- real models: the cache changes no decision ----------------------------------------------


@dataclass
class UncachedState:
    src: Tensor
    src_mask: Tensor
    tgt_in: Tensor  # (N, t) everything fed so far

    def select(self, indices: Tensor) -> UncachedState:
        return UncachedState(self.src[indices], self.src_mask[indices], self.tgt_in[indices])


class Uncached:
    """Drives a model's teacher-forced ``forward`` over the whole prefix at every step."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def encode(
        self, src: Tensor, src_mask: Tensor, options: EncodeOptions = DEFAULT_ENCODE_OPTIONS
    ) -> UncachedState:
        return UncachedState(src, src_mask, src.new_empty(src.size(0), 0))

    def decode_step(
        self, prev_tokens: Tensor, state: UncachedState
    ) -> tuple[Tensor, UncachedState]:
        tgt_in = torch.cat([state.tgt_in, prev_tokens[:, None]], dim=1)
        logits = self.model(state.src, state.src_mask, tgt_in)[:, -1]
        return logits.log_softmax(-1), UncachedState(state.src, state.src_mask, tgt_in)

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        return self.model(src, src_mask, tgt_in)

    def cross_attention(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor | None:
        return None


def small_model(kind: str, vocab_size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "transformer":
        from nmt.models.transformer import Transformer

        config = TransformerConfig(
            num_layers=2, d_model=32, d_ff=64, num_heads=4, dropout=0.0, max_positions=64
        )
        model: torch.nn.Module = Transformer(config, vocab_size)
    else:
        from nmt.models.rnn import RNNSeq2Seq

        rnn = RNNConfig(embed_dim=16, hidden_size=24, num_layers=2, dropout=0.0, input_feeding=True)
        model = RNNSeq2Seq(rnn, vocab_size)
        for param in model.parameters():  # the ±0.1 init gives every source the same output
            torch.nn.init.normal_(param, std=0.5)
    return model.double().eval()


@pytest.mark.parametrize("stopping", ["early", "exact"])
@pytest.mark.parametrize("kind", ["transformer", "rnn"])
def test_cached_decoding_gives_the_tokens_of_uncached_decoding(kind: str, stopping: str) -> None:
    vocab_size = 24
    model = small_model(kind, vocab_size)
    g = torch.Generator().manual_seed(1)
    sources = [torch.randint(4, vocab_size, (n,), generator=g).tolist() for n in (5, 9, 2, 7)]
    src, mask = batch(sources)
    options = opts(max_len_a=0.0, max_len_b=12, stopping=stopping)
    cached = tokens_of(greedy_search(model, src, mask, options))
    assert cached == tokens_of(greedy_search(Uncached(model), src, mask, options))
    assert len({tuple(o) for o in cached}) > 1  # the random model does depend on its source
    options = options.updated(beam_size=4, nbest=4)
    cached_beams = beam_search(model, src, mask, options)
    uncached_beams = beam_search(Uncached(model), src, mask, options)
    assert [tokens_of(hyps) for hyps in cached_beams] == [
        tokens_of(hyps) for hyps in uncached_beams
    ]
    for hyps, ref in zip(cached_beams, uncached_beams, strict=True):
        assert [h.score for h in hyps] == pytest.approx([h.score for h in ref], abs=1e-9)


@pytest.mark.parametrize("kind", ["transformer", "rnn"])
@pytest.mark.parametrize("beam_size", [1, 4])
def test_attention_is_what_the_model_computed_for_each_hypothesis(
    kind: str, beam_size: int
) -> None:
    """The weights search returns equal the teacher-forced cross-attention of the same tokens
    (the recurrent model: one layer, one head)."""
    vocab_size = 24
    model = small_model(kind, vocab_size)
    g = torch.Generator().manual_seed(2)
    sources = [torch.randint(4, vocab_size, (n,), generator=g).tolist() for n in (6, 3, 8)]
    options = opts(beam_size=beam_size, nbest=beam_size, max_len_a=0.0, max_len_b=7)
    found = beam_search(model, *batch(sources), options, record_attention=True)
    for source, hyps in zip(sources, found, strict=True):
        src, mask = batch([source])
        for h in hyps:
            # A step per token and one for the EOS; none for it at the limit.
            fed = h.tokens if h.ended else h.tokens[:-1]
            tgt_in = torch.tensor([[BOS_ID, *fed]])
            expected = model.cross_attention(src, mask, tgt_in)[0]  # (L, H, T, S)
            assert h.attention is not None
            assert h.attention.shape == expected.shape
            torch.testing.assert_close(h.attention, expected.float(), atol=1e-6, rtol=0)


# -- the same outputs before and after the Transformer's rewrite (issue 10) ------------------


@pytest.mark.parametrize("name", ["post_sinusoidal", "pre_learned"])
def test_outputs_of_a_random_transformer_are_those_recorded_before_the_rewrite(name: str) -> None:
    """data/golden.json holds the beam-4 n-best lists and greedy outputs that the code of
    before the rewrite (separate q/k/v projections, a growing cache, one shared beam search
    with the exact bound) found for these weights, in float64."""
    from nmt.models.store import load_weights
    from nmt.models.transformer import Transformer

    golden = json.loads((DATA / "golden.json").read_text(encoding="utf-8"))[name]
    config = TransformerConfig(
        num_layers=2,
        d_model=32,
        d_ff=64,
        num_heads=4,
        dropout=0.0,
        max_positions=64,
        **golden["config"],
    )
    model = Transformer(config, 24)
    load_weights(model, DATA / f"{name}.safetensors")
    model = model.double().eval()
    src, mask = batch(golden["sources"])
    options = opts(beam_size=4, nbest=4, length_penalty=0.6, max_len_a=1.0, max_len_b=6, **EXACT)
    beams = beam_search(model, src, mask, options)
    assert [tokens_of(hyps) for hyps in beams] == [
        [h["tokens"] for h in hyps] for hyps in golden["beam4"]
    ]
    for hyps, recorded in zip(beams, golden["beam4"], strict=True):
        assert [h.score for h in hyps] == pytest.approx([r["score"] for r in recorded], abs=1e-9)
    assert tokens_of(greedy_search(model, src, mask, options)) == golden["greedy"]


# -- passing finished sentences on ----------------------------------------------------------


@pytest.mark.parametrize(
    "changes", [{"beam_size": 1}, {"beam_size": 4, "nbest": 2}, {"sampling": True, "seed": 3}]
)
def test_each_sentence_is_passed_on_once_as_soon_as_its_search_ends(
    changes: dict[str, Any],
) -> None:
    model = RecurrentFake()
    steps = 0
    decode_step = model.decode_step

    def counting_step(prev_tokens: Tensor, state: RecurrentState) -> Any:
        nonlocal steps
        steps += 1
        return decode_step(prev_tokens, state)

    model.decode_step = counting_step  # type: ignore[method-assign]
    passed_on: dict[int, tuple[list[Hypothesis], int]] = {}

    def on_done(sentence: int, hyps: list[Hypothesis]) -> None:
        assert sentence not in passed_on, "passed on twice"
        passed_on[sentence] = (hyps, steps)

    options = opts(**changes)
    generator = torch.Generator().manual_seed(options.seed or 0)
    found = beam_search(model, *batch(SOURCES), options, generator=generator, on_done=on_done)
    assert sorted(passed_on) == list(range(len(SOURCES)))
    for sentence, (hyps, _) in passed_on.items():
        assert [(h.tokens, h.score) for h in hyps] == [(h.tokens, h.score) for h in found[sentence]]
    # The one-token source ends first, while the seven-token one is still being searched.
    assert passed_on[2][1] < passed_on[1][1] == steps


# -- the length limit: the same semantics as CTranslate2 (issue 23) ---------------------------


def test_an_output_at_the_length_limit_ends_there_without_an_eos() -> None:
    """Before, the search forced an EOS at the limit and counted its log-probability (here
    about -50 a sentence): CTranslate2 stops without one, and so does nmt now."""
    model = RecurrentFake(eos_slope=0.0, eos_bias=-50.0)  # EOS all but impossible
    src, mask = batch(SOURCES)
    options = opts(beam_size=3, nbest=3, max_len_a=0.0, max_len_b=4, length_penalty=0.6)
    for hyps, source in zip(beam_search(model, src, mask, options), SOURCES, strict=True):
        for h in hyps:
            assert len(h.tokens) == 4 and not h.ended
            with_eos = rescore(model, source, h.tokens)
            log_probs = [
                step[t]
                for step, t in zip(step_log_probs(model, source, h.tokens), h.tokens, strict=False)
            ]
            assert h.log_prob == pytest.approx(sum(log_probs), abs=1e-9)
            assert h.log_prob > with_eos + 40  # no EOS paid for
            assert h.token_log_probs == pytest.approx(log_probs, abs=1e-6)
            assert h.score == pytest.approx(h.log_prob / length_penalty(4, 0.6))


def step_log_probs(model: RecurrentFake, source: list[int], tokens: list[int]) -> list[Tensor]:
    """The model's log-probabilities (V,) at each step of teacher-forcing ``tokens``."""
    src, mask = batch([source])
    state, steps = model.encode(src, mask), []
    for prev in [BOS_ID, *tokens]:
        log_probs, state = model.decode_step(torch.tensor([prev]), state)
        steps.append(log_probs[0].tolist())
    return steps


def test_token_log_probs_are_the_models_and_sum_to_the_score() -> None:
    model = RecurrentFake()
    options = opts(beam_size=4, nbest=4, length_penalty=0.0, allow_empty=True)
    for source, hyps in zip(SOURCES, beam_search(model, *batch(SOURCES), options), strict=True):
        for h in hyps:
            assert h.ended and len(h.token_log_probs) == len(h.tokens) + 1
            steps = step_log_probs(model, source, h.tokens)
            expected = [step[t] for step, t in zip(steps, [*h.tokens, EOS_ID], strict=True)]
            assert h.token_log_probs == pytest.approx(expected, abs=1e-6)
            assert sum(h.token_log_probs) == pytest.approx(h.log_prob, abs=1e-5)


# -- steering: prefix, repetition guards, minimum length (issue 25) ---------------------------

# A model that loves to repeat itself: "a" again and again, "b" now and then, rarely the end.
LOOPS: dict[int, float] = {A: 0.6, B: 0.3, EOS_ID: 0.1}


def repeats(tokens: list[int], n: int) -> int:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) - len(set(grams))


@pytest.mark.parametrize("beam_size", [1, 3])
def test_no_repeat_ngram_size_stops_a_loop(beam_size: int) -> None:
    options = opts(beam_size=beam_size, length_penalty=0.0, max_len_a=0.0, max_len_b=12)
    [[looping]] = beam_search(TableModel({}, LOOPS), *one_source(), options)
    assert looping.tokens == [A] * 12 and not looping.ended  # to the limit, one word
    for n in (1, 2, 3):
        [[guarded]] = beam_search(
            TableModel({}, LOOPS), *one_source(), options.updated(no_repeat_ngram_size=n)
        )
        assert guarded.ended and repeats(guarded.tokens, n) == 0
        assert len(guarded.tokens) >= n
    [[two]] = beam_search(
        TableModel({}, LOOPS), *one_source(), options.updated(no_repeat_ngram_size=2)
    )
    # a a, then (a, a) is banned: b; then a; then both (a, a) and (a, b) are taken: the end,
    # its probability renormalised over what is left (EOS alone).
    assert two.tokens == [A, A, B, A]
    expected = 3 * math.log(0.6) + math.log(0.3 / 0.4) + 0.0
    assert two.log_prob == pytest.approx(expected)
    assert two.token_log_probs == pytest.approx([math.log(p) for p in (0.6, 0.6, 0.3, 0.6, 0.1)])


def test_repetition_penalty_is_ctrls_rule_on_log_probabilities() -> None:
    options = opts(beam_size=1, length_penalty=0.0, max_len_a=0.0, max_len_b=12)
    [[guarded]] = beam_search(
        TableModel({}, LOOPS), *one_source(), options.updated(repetition_penalty=5.0)
    )
    # Once written, a token's log P is multiplied by 5: after "a", 0.6 becomes 0.6^5 = 0.078,
    # below "b" (0.3); after "a b", "b" falls to 0.3^5 and the end (0.1) wins.
    assert guarded.tokens == [A, B] and guarded.ended
    after_a = torch.tensor([0.6**5, 0.3, 0.1])
    after_ab = torch.tensor([0.6**5, 0.3**5, 0.1])
    expected = (
        math.log(0.6)
        + float((after_a / after_a.sum())[1].log())
        + float((after_ab / after_ab.sum())[2].log())
    )
    assert guarded.log_prob == pytest.approx(expected)
    assert guarded.token_log_probs == pytest.approx([math.log(p) for p in (0.6, 0.3, 0.1)])


def test_minimum_length_forbids_an_early_end() -> None:
    model = TableModel(TABLE, GOES_ON)
    options = opts(beam_size=2, length_penalty=0.0, max_len_a=0.0, max_len_b=8)
    [[short]] = beam_search(model, *one_source(), options)
    assert short.tokens == [B]
    for a, b, at_least in ((0.0, 3, 3), (1.0, 1, 4)):  # |X| = 3
        [[longer]] = beam_search(model, *one_source(), options.updated(min_len_a=a, min_len_b=b))
        assert len(longer.tokens) >= at_least


def test_a_prefix_starts_every_output_then_search_goes_on() -> None:
    model = RecurrentFake()
    src, mask = batch(SOURCES)
    options = opts(beam_size=3, nbest=2, length_penalty=0.0)
    free = beam_search(model, src, mask, options)
    prefixes = [[9, 9], [], [7], [free[3][0].tokens[0]]]
    steered = beam_search(model, src, mask, options, prefixes=prefixes)
    for source, prefix, hyps in zip(SOURCES, prefixes, steered, strict=True):
        for h in hyps:
            assert h.tokens[: len(prefix)] == prefix and h.ended
            assert h.log_prob == pytest.approx(rescore(model, source, h.tokens), abs=1e-9)
    assert tokens_of(steered[1]) == tokens_of(free[1])  # no prefix: as before
    assert tokens_of(steered[3]) == tokens_of(free[3])  # the search's own first token
    assert steered[0][0].tokens != free[0][0].tokens


def test_after_a_prefix_only_the_best_may_end_and_a_lower_eos_leaves_its_slot_empty() -> None:
    """CTranslate2's rule (nmt.decoding.search._empty_slots). After the prefix [a], EOS ranks
    second (0.3): before, it ended the output as [a] alone, which outscored everything. Merely
    dropping it would let c, the third candidate, fill its place and win with [a, c] (0.2);
    CTranslate2 keeps the slot empty, so the beam of 2 goes on from b alone: [a, b, a] (0.19)."""
    table: Table = {
        (): {A: 0.6, EOS_ID: 0.4},
        (A,): {B: 0.5, EOS_ID: 0.3, C: 0.2},
        (A, B): {A: 0.38, C: 0.37, EOS_ID: 0.25},
    }
    model = TableModel(table, ENDS)
    options = opts(beam_size=2, length_penalty=0.0, allow_empty=True)
    [[best]] = beam_search(model, *one_source(), options, prefixes=[[A]])
    assert best.tokens == [A, B, A]
    assert best.log_prob == pytest.approx(math.log(0.6 * 0.5 * 0.38))
    # The best candidate itself may end: with EOS first after the prefix, [a] is the output.
    table[(A,)] = {EOS_ID: 0.5, B: 0.3, C: 0.2}
    [[alone]] = beam_search(TableModel(table, ENDS), *one_source(), options, prefixes=[[A]])
    assert alone.tokens == [A] and alone.ended


# -- hooks: the observer (a tree of the search) and the selector (constraints) ---------------


def test_the_trace_rebuilds_every_finished_hypothesis_from_its_parent_links() -> None:
    from nmt.decoding.trace import BeamTrace

    model = RecurrentFake()
    trace = BeamTrace()
    options = opts(beam_size=3, nbest=3, length_penalty=0.0)
    found = beam_search(model, *batch(SOURCES), options, observer=trace)
    assert sorted(trace.steps) == list(range(len(SOURCES)))
    for sentence, hyps in enumerate(found):
        steps = trace.steps[sentence]
        assert [s.step for s in steps] == list(range(len(steps)))
        assert all(
            len(s.kept) <= 3 and len(s.kept) + len(s.ended) + len(s.pruned) <= 6 for s in steps
        )
        assert not steps[-1].kept  # the last step ends the search
        leaves = trace.paths(sentence, EOS_ID)
        for h in hyps:
            assert (h.tokens, pytest.approx(h.log_prob)) in [(t, lp) for t, lp in leaves]


class BanAndRemember(Selector):
    """A selector with side state per hypothesis, as constrained decoding keeps it: bans one
    token, and follows each open beam's history through the reordering."""

    def __init__(self, banned: int) -> None:
        self.banned = banned
        self.history: list[list[int]] = [[]]  # per row of the current layout
        self.rows_per_step: list[int] = []

    def choose(
        self, step: int, active: Tensor, scores: Tensor, log_probs: Tensor, k: int
    ) -> tuple[Tensor, Tensor]:
        if step == 0:
            self.history = [[] for _ in range(log_probs.size(0) * log_probs.size(1))]
        log_probs[:, :, self.banned] = -math.inf
        return super().choose(step, active, scores, log_probs, k)

    def reorder(self, rows: Tensor, tokens: Tensor) -> None:
        self.history = [
            [*self.history[r], t] for r, t in zip(rows.tolist(), tokens.tolist(), strict=True)
        ]


def test_a_selector_steers_the_one_loop_and_its_side_state_follows_the_beams() -> None:
    model = RecurrentFake()
    src, mask = batch([SOURCES[1]])
    options = opts(beam_size=3, length_penalty=0.0, max_len_a=0.0, max_len_b=6, stopping="exact")
    [[free]] = beam_search(model, src, mask, options)
    banned = free.tokens[0]
    selector = BanAndRemember(banned)
    trace: list[Any] = []
    [[steered]] = beam_search(model, src, mask, options, selector=selector, observer=trace.append)
    assert banned not in steered.tokens
    # The side state of the open beams after the last reorder equals their tokens, rebuilt
    # from the trace's parent links.
    beams: list[list[int]] = [[]]
    for step in trace:
        if step.kept:
            beams = [[*beams[parent], token] for parent, token, _ in step.kept]
    assert selector.history == beams and len(beams) == 3 and len(beams[0]) > 2


@pytest.mark.parametrize("width", [8_000, 8_064, 58_101])
@pytest.mark.parametrize("m", [1, 2, 8])
def test_top_per_row_finds_what_topk_finds(width: int, m: int) -> None:
    generator = torch.Generator().manual_seed(width + m)
    values = torch.randn(6, width, generator=generator)
    values[1, -1] = 50.0  # the best in the columns after the last whole chunk
    values[2, : m + 3] = 40.0 + torch.arange(m + 3.0)  # the m best in one chunk
    values[3] = -math.inf  # a row forced to one token (a prefix): the rest are ties at -inf
    values[3, 4321] = -1.0
    values[4, ::997] = 30.0  # ties between chunks
    best, index = top_per_row(values, m)
    expected = values.topk(m, dim=1).values
    assert torch.equal(best, expected)
    assert torch.equal(values.gather(1, index), best)
    assert all(len(set(row)) == m for row in index.tolist())  # no column twice


def test_top_per_row_small_widths_are_plain_topk() -> None:
    values = torch.randn(3, 500)
    best, index = top_per_row(values, 8)
    expected = values.topk(8, dim=1)
    assert torch.equal(best, expected.values) and torch.equal(index, expected.indices)

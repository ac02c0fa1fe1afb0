"""Constraint tracking and dynamic beam allocation on hand-made score tables."""

from __future__ import annotations

import math

import torch

from nmt.config import DecodingConfig
from nmt.decoding.constraints import (
    ConstrainedSelector,
    ConstraintState,
    forbid_early_ends,
    select,
    word_continuations,
)
from nmt.decoding.search import beam_search

EOS = 3
NEG = -math.inf


def table(rows: list[list[float]]) -> torch.Tensor:
    """Scores (A=1, k, V) from one row of scores per beam."""
    return torch.tensor([rows], dtype=torch.float32)


# -- the state of one hypothesis ------------------------------------------------------------------


def test_a_phrase_is_met_token_by_token_and_counts_in_the_bank() -> None:
    state = ConstraintState.start([[7, 8], [9]])
    assert state.next_tokens() == {7, 9} and state.bank == 0 and state.num_tokens == 3
    state = state.advance(7)
    assert state.next_tokens() == {8} and state.bank == 1 and not state.all_met
    state = state.advance(8)
    assert state.met == (True, False) and state.bank == 2
    assert state.next_tokens() == {9}
    state = state.advance(5).advance(9)
    assert state.all_met and state.bank == 3 and state.next_tokens() == set()


def test_a_phrase_in_progress_is_abandoned_by_another_token() -> None:
    state = ConstraintState.start([[7, 8]]).advance(7).advance(5)
    assert state.bank == 0 and state.current is None and state.next_tokens() == {7}
    # A token that breaks one phrase may start another.
    state = ConstraintState.start([[7, 8], [9, 4]]).advance(7).advance(9)
    assert state.current == 1 and state.progress == 1 and state.bank == 1


def test_a_met_phrase_stays_met_and_duplicates_count_once() -> None:
    state = ConstraintState.start([[7], [7]])
    assert state.phrases == ((7,),)
    state = state.advance(7).advance(7).advance(5)
    assert state.all_met and state.bank == 1


def test_no_constraints_are_always_met() -> None:
    state = ConstraintState.start([])
    assert state.all_met and state.bank == 0 and state.advance(4) == state


# -- EOS ------------------------------------------------------------------------------------------


def test_eos_is_forbidden_until_the_constraints_are_met() -> None:
    unmet, met = ConstraintState.start([[7]]), ConstraintState.start([[7]]).advance(7)
    log_probs = torch.zeros(3, 10)
    forbid_early_ends(log_probs, [unmet, met, unmet], EOS)
    assert log_probs[:, EOS].tolist() == [NEG, 0.0, NEG]
    assert log_probs[:, :EOS].eq(0).all() and log_probs[:, EOS + 1 :].eq(0).all()


# -- dynamic beam allocation ----------------------------------------------------------------------


def test_without_constraints_the_order_is_plain_top_k() -> None:
    scores = torch.randn(3, 4, 20)
    empty = ConstraintState.start([])
    picked = select(scores, [[empty] * 4] * 3, 8)
    top_scores, top_index = scores.view(3, -1).topk(8, dim=1)
    assert torch.equal(picked.scores, top_scores)
    assert torch.equal(picked.beams, top_index // 20)
    assert torch.equal(picked.tokens, top_index % 20)


def test_an_improbable_constraint_token_takes_a_place_among_the_first_k() -> None:
    # Two beams, six tokens: the constraint (token 5) is the least probable extension of all.
    scores = table(
        [
            [NEG, -1.0, -1.1, -1.2, -1.3, -9.0],
            [NEG, -2.0, -2.1, -2.2, -2.3, -9.5],
        ]
    )
    start = ConstraintState.start([[5]])
    picked = select(scores, [[start, start]], 4)
    # Bank 1 (token 5 produced) comes first, its best is beam 0's; then bank 0's best.
    assert picked.tokens[0, :2].tolist() == [5, 1]
    assert picked.beams[0, :2].tolist() == [0, 0]
    assert picked.scores[0, :2].tolist() == [-9.0, -1.0]
    # Then each bank's second best: beam 1's token 5, then bank 0's second.
    assert picked.tokens[0, 2:].tolist() == [5, 2]
    assert picked.beams[0, 2:].tolist() == [1, 0]
    assert picked.states[0][0].all_met and not picked.states[0][1].all_met


def test_banks_are_striped_from_the_highest_down() -> None:
    # Three beams with 0, 1 and 2 of the three constraint tokens [[4, 5], [6]] produced.
    start = ConstraintState.start([[4, 5], [6]])
    states = [start, start.advance(6), start.advance(6).advance(4)]
    scores = table(
        [
            [NEG, -1.0, -1.5, NEG, -8.0, -8.5, -7.0],  # beam 0: 4 → bank 1, 6 → bank 1
            [NEG, -2.0, -2.5, NEG, -6.0, -9.9, -9.9],  # beam 1: 4 → bank 2, others bank 1
            [NEG, -3.0, -3.5, NEG, -9.9, -5.0, -9.9],  # beam 2: 5 → bank 3, others bank 0
        ]
    )
    picked = select(scores, [states], 6)
    banks = [state.bank for state in picked.states[0]]
    chosen = list(zip(picked.beams[0].tolist(), picked.tokens[0].tolist(), strict=True))
    # Best of bank 3, of bank 2, of bank 1, of bank 0; then second bests, banks 1 and 0.
    assert banks == [3, 2, 1, 0, 1, 0]
    assert chosen == [(2, 5), (1, 4), (1, 1), (0, 1), (1, 2), (0, 2)]
    # Plain top-k would have kept only unconstrained tokens in its first three.
    assert all(token in (1, 2) for token in scores.view(-1).topk(3).indices.remainder(7).tolist())


def test_states_follow_their_candidates_beam() -> None:
    # Beam 1 has met the constraint, beam 0 has not: whatever is picked from beam 1 is met.
    start = ConstraintState.start([[5]])
    states = [start, start.advance(5)]
    scores = table([[NEG, -1.0, -2.0, NEG, -3.0, -9.0], [NEG, -1.5, -2.5, NEG, -3.5, -9.0]])
    picked = select(scores, [states], 4)
    for beam, token, state in zip(
        picked.beams[0].tolist(), picked.tokens[0].tolist(), picked.states[0], strict=True
    ):
        assert state.all_met == (beam == 1 or token == 5)
    assert picked.beams[0, 0].item() == 1  # met beams form the higher bank: they come first


def test_impossible_candidates_come_last_and_sentences_stay_apart() -> None:
    # Step 0: beams 1.. are copies at -inf. Sentence 1 has no constraint.
    scores = torch.full((2, 2, 5), NEG)
    scores[0, 0] = torch.tensor([NEG, -1.0, -2.0, NEG, -4.0])
    scores[1, 0] = torch.tensor([NEG, -0.5, -0.7, NEG, -0.9])
    constrained, free = ConstraintState.start([[4]]), ConstraintState.start([])
    picked = select(scores, [[constrained] * 2, [free] * 2], 4)
    assert picked.beams[:, :3].eq(0).all()
    assert picked.tokens[0, :3].tolist() == [4, 1, 2]
    assert picked.tokens[1, :3].tolist() == [1, 2, 4]
    assert picked.scores[:, 3].isneginf().all()  # only three finite extensions each


def test_at_the_last_step_only_candidates_that_meet_every_constraint_remain() -> None:
    start = ConstraintState.start([[5]])
    states = [start, start.advance(5)]  # beam 1 has met it
    scores = table([[NEG, -1.0, -2.0, NEG, -3.0, -9.0], [NEG, -4.0, -4.5, NEG, -5.0, -9.9]])
    last = select(scores, [states], 4, last_step=[True])
    # Of the candidates (the 4 best, each beam's best, token 5 for beam 0) two meet it.
    assert last.beams[0, :2].tolist() == [1, 0] and last.tokens[0, :2].tolist() == [1, 5]
    assert all(s.all_met for s in last.states[0][:2]) and last.scores[0, 2:].isneginf().all()
    # Where none meets them, they all stay; before the last step, the banks share the beam.
    two_tokens = ConstraintState.start([[5, 4]])
    unmet = select(scores, [[two_tokens, two_tokens]], 4, last_step=[True])
    assert unmet.scores[0].isfinite().all()
    assert not all(s.all_met for s in select(scores, [states], 4).states[0])


# -- a term is a whole word -----------------------------------------------------------------------

PIECES = ["<pad>", "<unk>", "<s>", "</s>", "▁Hund", "▁Der", "heit", ".", "▁", "7"]


def test_the_pieces_that_continue_a_word_are_those_without_a_mark_that_begin_a_word() -> None:
    assert word_continuations(PIECES).tolist() == [6, 9]  # "heit", "7"; not ".", "▁", "</s>"


def test_after_a_term_its_word_ends_there() -> None:
    """A model that, given "▁Hund", goes on with "heit" (0.9): the term is met as tokens, but
    "Hundheit" does not hold the word "Hund". After the phrase, "heit" is forbidden."""
    from tests.decoding.test_search import ENDS, TableModel, one_source

    hund, der, heit, stop = 4, 5, 6, 7
    model = TableModel(
        {
            (): {der: 0.9, hund: 0.1},
            (hund,): {heit: 0.95, stop: 0.05},
            (der,): {hund: 0.6, der: 0.4},
            (der, hund): {heit: 0.9, stop: 0.1},
        },
        ENDS,
        vocab_size=len(PIECES),
    )
    options = DecodingConfig(beam_size=4, length_penalty=0.0, max_len_a=0.0, max_len_b=6)

    def search(continuations: torch.Tensor) -> list[int]:
        selector = ConstrainedSelector([[[hund]]], [6], EOS, continuations)
        [[best]] = beam_search(model, *one_source(), options, selector=selector)
        return best.tokens

    assert search(torch.tensor([], dtype=torch.long)) == [der, hund, heit]  # met as tokens only
    assert search(word_continuations(PIECES)) == [der, hund, stop]

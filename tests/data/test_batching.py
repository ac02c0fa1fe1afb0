import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nmt.data.batching import (
    Batch,
    TokenBudgetSampler,
    cut_batches,
    padding_fraction,
    sort_by_length,
)
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

lengths = st.lists(st.tuples(st.integers(1, 60), st.integers(1, 60)), min_size=1, max_size=300)


@settings(max_examples=50, deadline=None)
@given(pairs=lengths, max_tokens=st.integers(64, 2000), seed=st.integers(0, 5))
def test_every_batch_keeps_the_budget_and_every_pair_comes_once(
    pairs: list[tuple[int, int]], max_tokens: int, seed: int
) -> None:
    src, tgt = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    sampler = TokenBudgetSampler(src, tgt, max_tokens=max_tokens, seed=seed)
    batches = sampler.epoch_batches(3)
    assert sorted(i for b in batches for i in b) == list(range(len(pairs)))
    for batch in batches:
        padded_src = len(batch) * (src[batch].max() + 1)  # + EOS
        padded_tgt = len(batch) * (tgt[batch].max() + 1)  # + BOS / EOS
        assert (padded_src <= max_tokens and padded_tgt <= max_tokens) or len(batch) == 1


def as_lists(batches: list[np.ndarray]) -> list[list[int]]:
    return [b.tolist() for b in batches]


def test_same_seed_same_batches_and_epochs_differ() -> None:
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(1, 50, 1000), rng.integers(1, 50, 1000)
    a = TokenBudgetSampler(src, tgt, max_tokens=500, seed=7)
    b = TokenBudgetSampler(src, tgt, max_tokens=500, seed=7)
    c = TokenBudgetSampler(src, tgt, max_tokens=500, seed=8)
    assert as_lists(a.epoch_batches(2)) == as_lists(b.epoch_batches(2))
    assert as_lists(a.epoch_batches(2)) != as_lists(a.epoch_batches(3))
    assert as_lists(a.epoch_batches(2)) != as_lists(c.epoch_batches(2))
    # The memo of the last epoch never hands out another epoch's batches.
    assert as_lists(a.epoch_batches(3)) == as_lists(b.epoch_batches(3))


def greedy_batches(
    order: list[int], src: np.ndarray, tgt: np.ndarray, max_tokens: int
) -> list[list[int]]:
    """The textbook loop: add pairs while size · longest fits on both sides."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest_src = max([src[j] for j in current] + [src[i]])
        longest_tgt = max([tgt[j] for j in current] + [tgt[i]])
        size = len(current) + 1
        if current and (size * longest_src > max_tokens or size * longest_tgt > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    return [*batches, current] if current else batches


@settings(max_examples=100, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300)), max_size=400),
    max_tokens=st.integers(1, 3000),
    seed=st.integers(0, 3),
)
def test_vectorised_cut_equals_the_greedy_loop(
    pairs: list[tuple[int, int]], max_tokens: int, seed: int
) -> None:
    # Windows of 64 pairs that double: batches longer than a window, pairs over the budget
    # alone, and an empty corpus all occur with these sizes.
    src = np.array([p[0] for p in pairs], dtype=np.int64)
    tgt = np.array([p[1] for p in pairs], dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(pairs))
    expected = greedy_batches(order.tolist(), src, tgt, max_tokens)
    assert as_lists(cut_batches(order, src, tgt, max_tokens)) == expected


def test_grouping_by_length_keeps_padding_low() -> None:
    # Lengths shaped like the real corpus: many short pairs, a long tail; target ≈ source.
    rng = np.random.default_rng(1)
    src = np.clip(rng.lognormal(2.5, 0.8, 20000).astype(int), 1, 120)
    tgt = np.clip(src + rng.integers(-3, 4, src.size), 1, 120)
    sampler = TokenBudgetSampler(src, tgt, max_tokens=4000, seed=0)
    src_pad, tgt_pad = padding_fraction(sampler.epoch_batches(0), src + 1, tgt + 1)
    assert tgt_pad < 0.05
    assert src_pad < 0.10
    # Without grouping (one random order) the padding would be far higher: the test can fail.
    random_batches = [list(range(i, min(i + 50, src.size))) for i in range(0, src.size, 50)]
    assert padding_fraction(random_batches, src + 1, tgt + 1)[1] > 0.3


def test_batch_adds_markers_and_builds_masks() -> None:
    batch = Batch.from_pairs([[5, 6, 7], [8]], [[9], [10, 11]], [4, 2])
    assert batch.src.tolist() == [[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID]]
    assert batch.tgt_in.tolist() == [[BOS_ID, 9, PAD_ID], [BOS_ID, 10, 11]]
    assert batch.tgt_out.tolist() == [[9, EOS_ID, PAD_ID], [10, 11, EOS_ID]]
    assert batch.src_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert batch.tgt_mask.tolist() == [[True, True, False], [True, True, True]]
    assert batch.num_tgt_tokens == 5
    assert torch.equal(batch.indices, torch.tensor([4, 2]))


@settings(max_examples=50, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(1, 2**22), st.integers(1, 2**22)), max_size=200),
    small=st.booleans(),
)
def test_packed_sort_equals_lexsort(pairs: list[tuple[int, int]], small: bool) -> None:
    # Small lengths take the packed key; lengths past 2^21 fall back to lexsort itself.
    src = np.array([p[0] for p in pairs], dtype=np.int64) % (100 if small else 2**22)
    tgt = np.array([p[1] for p in pairs], dtype=np.int64) % (100 if small else 2**22)
    expected = np.lexsort((src, tgt, np.maximum(src, tgt)))
    assert sort_by_length(src, tgt).tolist() == expected.tolist()

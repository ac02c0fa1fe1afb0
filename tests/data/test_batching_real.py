"""Padding of token-budget batches on the real de-en corpus (slow: builds the corpus)."""

from pathlib import Path

import pytest

from nmt.data.batching import TokenBudgetSampler, padding_fraction
from nmt.data.corpus.recipe import fetch_corpus
from nmt.data.dataset import encode_parallel
from nmt.data.tokenizer import Tokenizer


@pytest.mark.slow
def test_padding_under_ten_percent_on_the_real_corpus(tmp_path: Path) -> None:
    data = tmp_path / "de-en"
    fetch_corpus("de-en", data)
    files = [data / "train.en", data / "train.de"]
    tokenizer = Tokenizer.train(files, tmp_path / "tokenizer.model", vocab_size=8000)
    pairs = encode_parallel(tokenizer, *files, max_len=100)
    src, tgt = pairs.src_lengths, pairs.tgt_lengths
    batches = TokenBudgetSampler(src, tgt, max_tokens=4000, seed=1).epoch_batches(0)
    src_pad, tgt_pad = padding_fraction(batches, src + 1, tgt + 1)
    print(f"padding at 4,000 tokens: source {src_pad:.1%}, target {tgt_pad:.1%}")
    assert src_pad < 0.10
    assert tgt_pad < 0.10

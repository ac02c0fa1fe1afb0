"""The Translator: batching behind the scenes, input order, empty and over-long lines, n-best."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from nmt.config import Config, TransformerConfig
from nmt.data.tokenizer import Tokenizer
from nmt.decoding.translator import Translator
from nmt.errors import NmtError

LONG = "the quick brown fox jumps over the lazy dog"  # one of the tokenizer's training lines


@pytest.fixture
def sentences(lines: list[str]) -> list[str]:
    """Shuffled, so that input order is not length order."""
    return [lines[i] for i in (5, 2, 9, 0, 11, 3, 8, 1, 6, 10, 4, 7)]


@pytest.mark.parametrize("beam_size", [1, 4])
def test_outputs_come_back_in_input_order(
    copy_model: Any, tokenizer: Tokenizer, beam_size: int, sentences: list[str]
) -> None:
    translator = Translator(copy_model, tokenizer)
    assert translator.translate(sentences, beam_size=beam_size, max_tokens=30) == sentences
    assert len(copy_model.encoded) > 2  # several batches were needed


def test_batches_keep_within_the_token_budget(
    copy_model: Any, tokenizer: Tokenizer, sentences: list[str]
) -> None:
    Translator(copy_model, tokenizer).translate(sentences, max_tokens=40)
    assert all(rows * length <= 40 or rows == 1 for rows, length in copy_model.encoded)
    assert sum(rows for rows, _ in copy_model.encoded) == len(sentences)


def test_empty_lines_never_reach_the_model(copy_model: Any, tokenizer: Tokenizer) -> None:
    translator = Translator(copy_model, tokenizer)
    assert translator.translate(["", "   ", ""]) == ["", "", ""]
    assert copy_model.encoded == []
    assert translator.translate(["", "hello world", " "]) == ["", "hello world", ""]
    assert copy_model.encoded == [(1, len(tokenizer.encode("hello world")) + 1)]


def test_an_over_long_line_is_truncated_with_a_warning(
    copy_model: Any, tokenizer: Tokenizer, caplog: pytest.LogCaptureFixture
) -> None:
    long = LONG
    ids = tokenizer.encode(long)
    assert len(ids) > 6
    translator = Translator(copy_model, tokenizer, max_positions=6)
    with caplog.at_level(logging.WARNING):
        outputs = translator.translate(["hello", long, "hi"], first_line=10)
    assert outputs == ["hello", tokenizer.decode(ids[:5]), "hi"]
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "line 11" in record.getMessage()


def test_outputs_fit_the_model_positions(babble_model: Any, tokenizer: Tokenizer) -> None:
    translator = Translator(babble_model, tokenizer, max_positions=8)
    for beam_size in (1, 3):
        [[translation]] = translator.translate_nbest(["hello world"], nbest=1, beam_size=beam_size)
        assert len(translation.tokens) == 7  # BOS + 7 tokens, and EOS scored after the last
    unlimited = Translator(babble_model, tokenizer)
    [[translation]] = unlimited.translate_nbest(["hello world"], nbest=1, max_len_b=20)
    assert len(translation.tokens) == len(tokenizer.encode("hello world")) + 20


def test_nbest_shapes_and_order(copy_model: Any, tokenizer: Tokenizer) -> None:
    translator = Translator(copy_model, tokenizer)
    results = translator.translate_nbest(
        ["hello world", "", "the cat sat on the mat"], nbest=3, beam_size=4
    )
    assert [len(r) for r in results] == [3, 1, 3]
    assert results[0][0].text == "hello world"
    assert results[2][0].text == "the cat sat on the mat"
    assert results[1][0].text == "" and results[1][0].score == 0.0
    for translations in results:
        scores = [t.score for t in translations]
        assert scores == sorted(scores, reverse=True)
        assert all(t.attention is None for t in translations)
    assert (
        translator.translate_nbest(["hello world"], nbest=1, beam_size=1)[0][0].text
        == "hello world"
    )


def test_attention_per_translation(copy_model: Any, tokenizer: Tokenizer) -> None:
    translator = Translator(copy_model, tokenizer)
    [translations] = translator.translate_nbest(
        ["a dog ran in the park"], nbest=2, beam_size=2, return_attention=True
    )
    num_src = len(tokenizer.encode("a dog ran in the park")) + 1
    for t in translations:
        assert t.attention is not None
        assert t.attention.shape == (1, 1, len(t.tokens) + 1, num_src)


def test_nbest_larger_than_beam_is_refused(copy_model: Any, tokenizer: Tokenizer) -> None:
    with pytest.raises(NmtError, match="n-best"):
        Translator(copy_model, tokenizer).translate_nbest(["hello"], nbest=5, beam_size=4)


def test_sampled_translations_are_repeatable(
    copy_model: Any, tokenizer: Tokenizer, sentences: list[str]
) -> None:
    translator = Translator(copy_model, tokenizer)
    first = translator.translate_sampled(sentences, temperature=3.0, seed=7, max_tokens=30)
    assert len(first) == len(sentences)
    assert first == translator.translate_sampled(sentences, temperature=3.0, seed=7, max_tokens=30)
    assert first != translator.translate_sampled(sentences, temperature=3.0, seed=8, max_tokens=30)
    assert translator.translate_sampled(sentences, top_k=1, seed=8) == sentences


def test_load_a_model_directory(tmp_path: Path, tokenizer_path: Path) -> None:
    from nmt.models.store import write_model_dir
    from nmt.models.transformer import Transformer

    torch.manual_seed(0)
    model_config = TransformerConfig(
        num_layers=1, d_model=16, d_ff=32, num_heads=2, max_positions=12
    )
    model = Transformer(model_config, Tokenizer.load(tokenizer_path).vocab_size)
    write_model_dir(
        tmp_path / "model",
        config=Config(model=model_config),
        tokenizer_path=tokenizer_path,
        model=model,
    )

    translator = Translator.load(tmp_path / "model")
    assert translator.max_positions == 12
    outputs = translator.translate(["hello world", "", LONG], max_len_b=50)
    assert len(outputs) == 3 and outputs[1] == ""
    [[translation]] = translator.translate_nbest([LONG], nbest=1, return_attention=True)
    assert len(translation.tokens) <= 11
    assert translation.attention is not None
    assert translation.attention.shape[:2] == (1, 2)  # one layer, two heads

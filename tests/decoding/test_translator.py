"""The Translator: batching behind the scenes, input order, empty and over-long lines, n-best."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from nmt.config import DecodingConfig
from nmt.data.tokenizer import Tokenizer
from nmt.decoding.translator import Translator
from nmt.errors import NmtError
from nmt.models.interface import DEFAULT_ENCODE_OPTIONS, EncodeOptions
from tests.decoding.conftest import CopyModel

LONG = "the quick brown fox jumps over the lazy dog"  # one of the tokenizer's training lines


def opts(**changes: Any) -> DecodingConfig:
    return DecodingConfig(**changes)


@pytest.fixture
def sentences(lines: list[str]) -> list[str]:
    """Shuffled, so that input order is not length order."""
    return [lines[i] for i in (5, 2, 9, 0, 11, 3, 8, 1, 6, 10, 4, 7)]


@pytest.mark.parametrize("beam_size", [1, 4])
def test_outputs_come_back_in_input_order(
    copy_model: Any, tokenizer: Tokenizer, beam_size: int, sentences: list[str]
) -> None:
    translator = Translator(copy_model, tokenizer)
    assert translator.translate(sentences, opts(beam_size=beam_size, max_tokens=30)) == sentences
    assert len(copy_model.encoded) > 2  # several batches were needed


def test_batches_keep_within_the_token_budget(
    copy_model: Any, tokenizer: Tokenizer, sentences: list[str]
) -> None:
    Translator(copy_model, tokenizer).translate(sentences, opts(max_tokens=40))
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
        [[translation]] = translator.translate_nbest(["hello world"], opts(beam_size=beam_size))
        assert len(translation.tokens) == 7  # BOS + 7 tokens, and EOS scored after the last
    unlimited = Translator(babble_model, tokenizer)
    [[translation]] = unlimited.translate_nbest(["hello world"], opts(max_len_b=20))
    assert len(translation.tokens) == len(tokenizer.encode("hello world")) + 20


def test_nbest_shapes_and_order(copy_model: Any, tokenizer: Tokenizer) -> None:
    translator = Translator(copy_model, tokenizer)
    results = translator.translate_nbest(
        ["hello world", "", "the cat sat on the mat"], opts(nbest=3, beam_size=4)
    )
    assert [len(r) for r in results] == [3, 1, 3]
    assert results[0][0].text == "hello world"
    assert results[2][0].text == "the cat sat on the mat"
    assert results[1][0].text == "" and results[1][0].score == 0.0
    for translations in results:
        scores = [t.score for t in translations]
        assert scores == sorted(scores, reverse=True)
        assert all(t.attention is None for t in translations)
    assert translator.translate_nbest(["hello world"], opts(beam_size=1))[0][0].text == (
        "hello world"
    )


@pytest.mark.parametrize("beam_size", [1, 2])
def test_attention_and_pieces_per_translation(
    copy_model: Any, tokenizer: Tokenizer, beam_size: int
) -> None:
    """The attention is the weights the model's state recorded while decoding (CopyModel: step t
    on source position t), laid out (L, H, T, S) against tgt_pieces + EOS and src_pieces + EOS."""
    translator = Translator(copy_model, tokenizer)
    sentence = "a dog ran in the park"
    ids = tokenizer.encode(sentence)
    pieces = tokenizer.pieces()
    [translations] = translator.translate_nbest(
        [sentence, "hello"], opts(nbest=beam_size, beam_size=beam_size), return_attention=True
    )[:1]
    assert len(translations) == beam_size
    for t in translations:
        assert t.src_pieces == [pieces[i] for i in ids]
        assert t.tgt_pieces == [pieces[i] for i in t.tokens]
        assert not t.truncated
        assert t.attention is not None
        assert t.attention.shape == (1, 1, len(t.tgt_pieces) + 1, len(t.src_pieces) + 1)
        steps = torch.arange(len(t.tokens) + 1).clamp(max=len(ids))
        assert torch.equal(t.attention[0, 0], torch.nn.functional.one_hot(steps, len(ids) + 1))
    assert translations[0].text == sentence
    [[plain]] = translator.translate_nbest([sentence])
    assert plain.attention is None and plain.tgt_pieces == [pieces[i] for i in ids]


def test_truncated_sources_say_so(copy_model: Any, tokenizer: Tokenizer) -> None:
    translator = Translator(copy_model, tokenizer, max_positions=6)
    long, short = translator.translate_nbest([LONG, "hello"])
    assert long[0].truncated and not short[0].truncated
    assert long[0].src_pieces == [tokenizer.pieces()[i] for i in tokenizer.encode(LONG)[:5]]


def test_options_default_to_the_translators(copy_model: Any, tokenizer: Tokenizer) -> None:
    translator = Translator(copy_model, tokenizer, default_options=opts(max_len_a=0, max_len_b=2))
    assert translator.translate(["the cat sat on the mat"]) == [
        tokenizer.decode(tokenizer.encode("the cat sat on the mat")[:2])
    ]
    nbest = Translator(copy_model, tokenizer, default_options=opts(nbest=2))
    assert [len(r) for r in nbest.translate_nbest(["hello", "hi"])] == [2, 2]
    assert Translator(copy_model, tokenizer).default_options == DecodingConfig()


def test_nbest_larger_than_beam_is_refused_naming_the_field(
    copy_model: Any, tokenizer: Tokenizer
) -> None:
    translator = Translator(copy_model, tokenizer)
    with pytest.raises(NmtError, match="nbest"):
        translator.translate_nbest(["hello"], translator.default_options.updated(nbest=5))


def test_sampled_translations_are_repeatable(
    copy_model: Any, tokenizer: Tokenizer, sentences: list[str]
) -> None:
    translator = Translator(copy_model, tokenizer)
    hot = opts(sampling=True, temperature=3.0, seed=7, max_tokens=30)
    first = translator.translate(sentences, hot)
    assert len(first) == len(sentences)
    assert first == translator.translate(sentences, hot)
    assert first != translator.translate(sentences, hot.updated(seed=8))
    assert translator.translate(sentences, opts(sampling=True, top_k=1, seed=8)) == sentences


def test_load_a_model_directory(model_dir: Path) -> None:
    translator = Translator.load(model_dir)
    assert translator.max_positions == 12
    assert translator.default_options == DecodingConfig()  # the config's decoding section
    outputs = translator.translate(["hello world", "", LONG])
    assert len(outputs) == 3 and outputs[1] == ""
    [[translation]] = translator.translate_nbest([LONG], return_attention=True)
    assert len(translation.tokens) <= 11
    assert translation.attention is not None
    assert translation.attention.shape[:2] == (1, 2)  # one layer, two heads
    assert translation.attention.shape[2:] == (
        len(translation.tgt_pieces) + translation.ended,  # a row for the EOS step, if any
        len(translation.src_pieces) + 1,
    )


def test_the_docs_snippet_runs(copy_model: Any, tokenizer: Tokenizer) -> None:
    docs = Path(__file__).parents[2] / "docs" / "decoding.md"
    snippet = docs.read_text(encoding="utf-8").split("```python\n", 1)[1].split("```", 1)[0]
    names: dict[str, Any] = {"translator": Translator(copy_model, tokenizer)}
    exec(snippet, names)
    [translations] = names["results"]
    assert len(translations) == 4 and all(t.attention is not None for t in translations)


def test_sources_are_padded_with_the_models_own_ids(tokenizer: Tokenizer) -> None:
    """A model whose PAD is the last id (Marian's layout) gets its own padding, and EOS."""

    class MarianLikeCopy(CopyModel):
        pad_id, bos_id, eos_id = tokenizer.vocab_size - 1, 2, 3

        def encode(
            self,
            src: torch.Tensor,
            src_mask: torch.Tensor,
            options: EncodeOptions = DEFAULT_ENCODE_OPTIONS,
        ) -> Any:
            self.sources = (src, src_mask)
            return super().encode(src, src_mask, options)

    model = MarianLikeCopy(tokenizer.vocab_size)
    Translator(model, tokenizer).translate(["hello", "the cat sat on the mat"])
    src, src_mask = model.sources
    short = len(tokenizer.encode("hello"))
    assert src[0, short] == 3 and (src[0, short + 1 :] == tokenizer.vocab_size - 1).all()
    assert src_mask[0].tolist() == [True] * (short + 1) + [False] * (src.size(1) - short - 1)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_each_translation_is_passed_on_once_before_its_batch_ends(
    copy_model: Any, tokenizer: Tokenizer, sentences: list[str], beam_size: int
) -> None:
    steps = 0
    decode_step = copy_model.decode_step

    def counting_step(prev_tokens: torch.Tensor, state: Any) -> Any:
        nonlocal steps
        steps += 1
        return decode_step(prev_tokens, state)

    copy_model.decode_step = counting_step
    passed_on: dict[int, tuple[str, int]] = {}

    def on_done(i: int, translations: list[Any]) -> None:
        assert i not in passed_on, "passed on twice"
        passed_on[i] = (translations[0].text, steps)

    given = ["", *sentences, "  "]  # blank lines too: they need no model
    results = Translator(copy_model, tokenizer).translate_nbest(
        given, opts(beam_size=beam_size, max_tokens=1000), on_done=on_done
    )
    assert len(copy_model.encoded) == 1  # one batch
    assert {i: text for i, (text, _) in passed_on.items()} == {
        i: nbest[0].text for i, nbest in enumerate(results)
    }
    assert passed_on[0] == ("", 0) and passed_on[len(given) - 1] == ("", 0)
    shortest = min(range(1, len(given) - 1), key=lambda i: len(tokenizer.encode(given[i])))
    assert passed_on[shortest][0] == given[shortest]
    assert passed_on[shortest][1] < steps  # while longer sentences were still searched


def test_a_translator_built_without_max_positions_takes_the_models_own(model_dir: Path) -> None:
    """Before, a Translator built directly (no max_positions) fed a long line whole to a model
    that takes 12 positions, and the model raised."""
    from nmt.models.store import load_model_dir

    loaded = load_model_dir(model_dir)
    translator = Translator(loaded.model, loaded.tokenizer)
    assert translator.max_positions == 12
    [[translation]] = translator.translate_nbest([LONG * 3])
    assert translation.truncated and len(translation.src_pieces) == 11


def test_the_one_way_in_loads_either_engine_and_refuses_others(model_dir: Path) -> None:
    assert Translator.load(model_dir, engine="nmt").translate(["hello world"])
    with pytest.raises(NmtError, match="engine 'fast'"):
        Translator.load(model_dir, engine="fast")
    with pytest.raises(NmtError, match="no such model directory"):
        Translator.load(model_dir / "missing")


def test_a_prefix_too_long_for_the_limit_is_one_error_naming_the_option_and_line(
    copy_model: Any, tokenizer: Tokenizer
) -> None:
    translator = Translator(copy_model, tokenizer, max_positions=6)
    with pytest.raises(NmtError, match=r"^prefix: \d+ tokens, more than the 5 .* line 1 "):
        translator.translate(["hello", "hi"], opts(max_len_b=50, prefix=LONG))
    with pytest.raises(NmtError, match="prefix: 1 prefixes for 2 sentences"):
        translator.translate_nbest(["hello", "hi"], prefixes=["the"])
    [[hello], [hi]] = translator.translate_nbest(["hello", "hi"], prefixes=["the", None])
    assert hello.text.startswith("the") and hi.text == "hi"


def test_alignments_follow_the_attention_and_lift_to_words(
    copy_model: Any, tokenizer: Tokenizer
) -> None:
    from nmt.decoding.alignment import pharaoh, word_alignment_of

    translator = Translator(copy_model, tokenizer)
    [[copied]] = translator.translate_nbest(["she reads a book"], return_alignment=True)
    # The copy model looks at source position t while writing target piece t.
    assert copied.alignment == [(i, i) for i in range(len(copied.tgt_pieces))]
    assert copied.attention is not None
    words = word_alignment_of(copied)
    assert pharaoh(words) == "0-0 1-1 2-2 3-3"
    assert copied.token_log_probs and len(copied.token_log_probs) == len(copied.tokens) + 1


def test_the_observer_sees_every_sentence_by_its_index_in_the_call(
    copy_model: Any, tokenizer: Tokenizer, sentences: list[str]
) -> None:
    from nmt.decoding.trace import BeamTrace

    trace = BeamTrace()
    translator = Translator(copy_model, tokenizer)
    found = translator.translate_nbest(
        ["", *sentences], opts(beam_size=2, max_tokens=30), observer=trace
    )
    assert sorted(trace.steps) == list(range(1, len(sentences) + 1))  # not the blank line
    for i, [best] in enumerate(found[1:], start=1):
        leaves = trace.paths(i, copy_model_eos(translator))
        assert best.tokens in [tokens for tokens, _ in leaves]


def copy_model_eos(translator: Translator) -> int:
    from nmt.decoding.search import special_ids

    return special_ids(translator.model).eos


def test_an_ensemble_says_the_least_of_its_members_positions(model_dir: Path) -> None:
    from nmt.models.ensemble import Ensemble
    from nmt.models.store import load_model_dir

    loaded = load_model_dir(model_dir)
    translator = Translator(Ensemble([loaded.model, loaded.model]), loaded.tokenizer)
    assert translator.max_positions == 12
    [[translation]] = translator.translate_nbest([LONG * 3])
    assert translation.truncated


def test_sentences_no_longer_wanted_are_not_searched(
    copy_model: Any, tokenizer: Tokenizer, sentences: list[str]
) -> None:
    # Every other sentence's request is given up as soon as the first sentence is translated
    # (its client hung up): each sentence is asked for once, as its batch begins.
    given_up: set[int] = set()
    asked: list[int] = []

    def wanted(i: int) -> bool:
        asked.append(i)
        return i not in given_up

    def on_done(i: int, translations: list[Any]) -> None:
        given_up.update(range(0, len(sentences), 2))  # every other sentence's request is gone

    results = Translator(copy_model, tokenizer).translate_nbest(
        sentences, opts(max_tokens=30), on_done=on_done, wanted=wanted
    )
    batches = copy_model.encoded
    assert len(batches) > 2  # several batches: some began after the hang-up
    assert sorted(asked) == list(range(len(sentences)))  # each asked once, as its batch began
    first_batch_rows = batches[0][0]
    searched = [i for i, nbest in enumerate(results) if nbest]
    dropped = [i for i in range(0, len(sentences), 2) if i not in asked[:first_batch_rows]]
    assert dropped, "no sentence of the gone request was left for a later batch"
    assert sum(rows for rows, _ in batches) == len(sentences) - len(dropped)
    assert searched == [i for i in range(len(sentences)) if i not in dropped]
    assert all(results[i][0].text == sentences[i] for i in searched)  # the copy model's output


@pytest.mark.parametrize("engine", ["nmt", "ctranslate2"])
def test_both_engines_leave_unwanted_sentences_unsearched(
    model_dir: Path, lines: list[str], engine: str
) -> None:
    translator = Translator.load(model_dir, engine=engine)  # model_dir is the test's own copy
    options = opts(max_tokens=1)  # a batch per sentence
    given = lines[:6]
    everything = translator.translate_nbest(given, options)
    kept = translator.translate_nbest(given, options, wanted=lambda i: i % 3 == 0)
    assert [bool(nbest) for nbest in kept] == [i % 3 == 0 for i in range(len(given))]
    assert [kept[i][0].text for i in (0, 3)] == [everything[i][0].text for i in (0, 3)]

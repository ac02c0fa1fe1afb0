"""Glossary files, the source-side matching policy and target terms as token ids."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from nmt.config import DecodingConfig
from nmt.data.tokenizer import Tokenizer
from nmt.decoding.glossary import (
    SentenceTerms,
    Term,
    check_fits,
    contains,
    find_terms,
    glossary_option,
    missing_targets,
    read_glossary,
    sentence_terms,
    target_ids,
    warn_missing,
)
from nmt.decoding.translator import Translator
from nmt.errors import NmtError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "terms.tsv"
    path.write_text(text, encoding="utf-8")
    return path


# -- the file -------------------------------------------------------------------------------------


def test_a_tsv_gives_its_terms_with_optional_notes(tmp_path: Path) -> None:
    path = write(tmp_path, "# terms\ndog\tHund\n\nfire brigade\tFeuerwehr\tnot 'Feuerwache'\n")
    assert read_glossary(path) == [
        Term("dog", "Hund"),
        Term("fire brigade", "Feuerwehr", "not 'Feuerwache'"),
    ]
    assert glossary_option(path) == [
        {"source": "dog", "target": "Hund"},
        {"source": "fire brigade", "target": "Feuerwehr"},
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dog\tHund\ncat\n", r"terms.tsv:2: 1 tab-separated columns, expected 2 or 3"),
        ("dog\tHund\ta\tb\n", r"terms.tsv:1: 4 tab-separated columns"),
        ("dog\tHund\n\tKatze\n", r"terms.tsv:2: the source term is empty"),
        ("dog\t   \n", r"terms.tsv:1: the target term is only whitespace"),
    ],
)
def test_a_bad_line_is_one_error_naming_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(NmtError, match=message):
        read_glossary(write(tmp_path, text))


def test_a_missing_or_undecodable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NmtError, match="glossary not found"):
        read_glossary(tmp_path / "none.tsv")
    path = tmp_path / "latin1.tsv"
    path.write_bytes("Straße\tstreet\n".encode("latin-1"))
    with pytest.raises(NmtError, match="cannot read the glossary"):
        read_glossary(path)


# -- matching the source --------------------------------------------------------------------------

TERMS = [Term("dog", "Hund"), Term("cat", "Katze"), Term("fire brigade", "Feuerwehr")]


def found(sentence: str, terms: list[Term] = TERMS) -> list[str]:
    return [term.source for term in find_terms(sentence, terms)]


def test_matches_ignore_case_and_keep_to_whole_words() -> None:
    assert found("The DOG sleeps.") == ["dog"]
    assert found("A category of hotdogs and dogma.") == []
    assert found("A cat-like dog") == ["cat", "dog"]  # a hyphen ends a word
    assert found("Call the Fire\n  Brigade!") == ["fire brigade"]  # any whitespace between words


def test_plurals_and_possessives_match_the_last_word() -> None:
    assert found("Two dogs, the cat's bowl, the cats' toys.") == ["dog", "cat"]
    assert found("Both fire brigades came.") == ["fire brigade"]
    assert found("The dogsled.") == []  # an ending, not any continuation


def test_terms_come_in_match_order_once_each_and_the_longest_overlap_wins() -> None:
    assert found("cat, dog, cat and dog") == ["cat", "dog"]
    terms = [Term("York", "York"), Term("New York", "New York")]
    assert found("New York is not York.", terms) == ["New York", "York"]
    assert found("New York only.", terms) == ["New York"]


# -- the target side ------------------------------------------------------------------------------


def test_a_target_term_has_the_ids_it_has_inside_a_sentence(tokenizer: Tokenizer) -> None:
    for term, sentence in [
        ("dog", "a dog ran in the park"),
        ("market", "we went to the market on monday"),
        ("brown fox", "the quick brown fox jumps over the lazy dog"),
    ]:
        ids = target_ids(tokenizer, term)
        assert ids and contains(tokenizer.encode_target(sentence), ids), term
        # the same word glued to its neighbour would be cut differently: the ▁ matters.
        assert tokenizer.decode(ids) == term


def test_a_target_term_the_vocabulary_cannot_spell_is_refused(tokenizer: Tokenizer) -> None:
    with pytest.raises(NmtError, match="vocabulary lacks"):
        target_ids(tokenizer, "Ωmega")


def test_contains_finds_contiguous_runs_only() -> None:
    assert contains([1, 2, 3, 4], [2, 3])
    assert not contains([1, 2, 5, 3], [2, 3])
    assert not contains([1], [1, 2])


def test_each_sentence_gets_the_ids_of_its_own_terms(tokenizer: Tokenizer) -> None:
    terms = [Term("dog", "market"), Term("cat", "brown fox")]
    found = sentence_terms(["a dog and a cat", "", "no term here", "cats"], terms, tokenizer)
    market, fox = target_ids(tokenizer, "market"), target_ids(tokenizer, "brown fox")
    assert [f.phrases for f in found] == [[market, fox], [], [], [fox]]
    assert missing_targets(found[0], [*market, 9, *fox]) == []
    assert missing_targets(found[0], [*fox, 9]) == ["market"]


def test_terms_that_cannot_fit_the_length_limit_name_the_line() -> None:
    terms = SentenceTerms([Term("dog", "Hund"), Term("cat", "Katze")], [[5, 6, 7], [8, 9]])
    check_fits(terms, 5, line=3)
    with pytest.raises(NmtError, match=r"line 4: its 2 glossary terms take 5 tokens together"):
        check_fits(terms, 4, line=4)
    with pytest.raises(NmtError, match=r"line 7: glossary term 'dog' → 'Hund' takes 3 tokens"):
        check_fits(terms, 2, line=7)


# -- on the trained test model ---------------------------------------------------------------------

SENTENCES = ["the cat sees a dog", "a big red house", "the small tree runs", "green cat eats"]
# Targets the word-for-word model would never write for these sources: only the search can.
GLOSSARY = [{"source": "cat", "target": "baum"}, {"source": "tree", "target": "gross rot"}]


@pytest.fixture(scope="module")
def translator(trained_model_dir: Path) -> Translator:
    return Translator.load(trained_model_dir)


def options_with(translator: Translator, **changes: Any) -> DecodingConfig:
    return translator.default_options.updated(glossary=GLOSSARY, **changes)


@pytest.mark.parametrize("beam_size", [1, 2, 4])
def test_a_term_the_output_lacks_is_in_the_constrained_output(
    translator: Translator, beam_size: int
) -> None:
    free = translator.translate(SENTENCES, translator.default_options.updated(beam_size=beam_size))
    steered = translator.translate(SENTENCES, options_with(translator, beam_size=beam_size))
    assert "baum" not in free[0].split() and "gross rot" not in free[2]
    assert "baum" in steered[0].split()
    assert "gross rot" in steered[2]
    assert "baum" in steered[3].split()
    # A sentence without a term is searched exactly as without a glossary.
    assert steered[1] == free[1]


@pytest.mark.parametrize(
    "stopping", [{"stopping": "early"}, {"stopping": "exact"}, {"patience": 2.0}]
)
def test_every_hypothesis_of_the_nbest_meets_every_term(
    translator: Translator, stopping: dict[str, Any]
) -> None:
    # Four beams reordered at every step, and four ended hypotheses: each holds both terms only
    # if every beam's constraint state followed it, and EOS waited for them under each rule.
    sentence = "the cat sees the green tree"
    options = options_with(translator, beam_size=4, nbest=4, **stopping)
    (nbest,) = translator.translate_nbest([sentence], options)
    assert len(nbest) == 4
    for translation in nbest:
        words = translation.text.split()
        assert "baum" in words and "gross rot" in translation.text, translation.text
        assert translation.ended


def test_terms_too_long_for_a_line_are_refused_before_translating(translator: Translator) -> None:
    options = options_with(translator, max_len_a=0.0, max_len_b=2)
    with pytest.raises(NmtError, match=r"line 7: glossary term 'cat' → 'baum' takes \d+ tokens"):
        translator.translate(["a big red house", "the cat"], options, first_line=6)


def test_ctranslate2_refuses_a_glossary(trained_model_dir: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir, ignore=shutil.ignore_patterns(".ct2-*"))
    ct2 = Translator.load(model_dir, engine="ctranslate2")
    with pytest.raises(NmtError, match="a glossary needs --engine nmt"):
        ct2.translate(["the cat"], options_with(translator=ct2))


def test_a_term_missing_at_the_length_limit_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    found = [SentenceTerms([Term("dog", "Hund")], [[5, 6]]), SentenceTerms([], [])]
    with caplog.at_level("WARNING", logger="nmt.decoding.glossary"):
        warn_missing(found, [[5, 7, 6], [1]], first_line=10)
    assert "line 10:" in caplog.text and "'Hund'" in caplog.text
    assert "line 11" not in caplog.text


def test_the_server_takes_a_glossary_and_names_a_bad_term(
    translator: Translator, trained_model_dir: Path
) -> None:
    from fastapi.testclient import TestClient

    from nmt.data.tokenizer import TOKENIZER_FILE
    from nmt.serve.app import create_app, model_info
    from nmt.serve.limits import ServeSettings

    app = create_app(
        translator,
        tokenizer=Tokenizer.load(trained_model_dir / TOKENIZER_FILE),
        info=model_info(trained_model_dir, engine="nmt", device="cpu"),
        settings=ServeSettings(),
    )
    with TestClient(app) as client:
        good = client.post("/v1/translate", json={"texts": [SENTENCES[0]], "glossary": GLOSSARY})
        assert good.status_code == 200, good.text
        assert "baum" in good.json()["translations"][0]["text"].split()
        blank = [{"source": " ", "target": "baum"}]
        bad = client.post("/v1/translate", json={"texts": [SENTENCES[0]], "glossary": blank})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "glossary", 0, "source"]
    assert "only whitespace" in bad.json()["detail"][0]["msg"]

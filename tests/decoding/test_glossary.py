"""Glossary files, the source-side matching policy and target terms as token ids."""

from __future__ import annotations

from pathlib import Path

import pytest

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
)
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

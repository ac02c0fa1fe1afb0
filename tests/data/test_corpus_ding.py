"""Ding dictionary lines: sentence parts kept, headwords and annotations dropped."""

from __future__ import annotations

from nmt.data.corpus.ding import (
    dictionary_pairs,
    is_plain,
    is_sentence,
    line_pairs,
    strip_annotations,
)

# Shaped like real entries of trans-de-en (GPL-2+); shortened.
REASSURE = (
    "jdn. beruhigen {vt} | beruhigend | Ich versuchte, sie zu beruhigen. | "
    "Sie können beruhigt sein. :: to reassure sb. | reassuring | I tried to reassure her. | "
    "You can put your mind at rest."
)


def test_only_parts_that_are_sentences_on_both_sides_are_kept() -> None:
    assert line_pairs(REASSURE).pairs == [
        ("I tried to reassure her.", "Ich versuchte, sie zu beruhigen."),
        ("You can put your mind at rest.", "Sie können beruhigt sein."),
    ]


def test_a_part_that_is_a_sentence_on_one_side_only_is_dropped() -> None:
    line = "Unsinn {m} | Unsinn! :: nonsense | what nonsense"
    assert line_pairs(line).pairs == []


def test_alternatives_pair_by_position_when_equal_in_number() -> None:
    line = "Wie alt bist du?; Wie alt sind Sie? :: How old are you?; What is your age?"
    assert line_pairs(line).pairs == [
        ("How old are you?", "Wie alt bist du?"),
        ("What is your age?", "Wie alt sind Sie?"),
    ]


def test_unequal_alternatives_keep_the_first_with_the_first() -> None:
    line = "Siehste! [ugs.]; Siehst du! :: You see!"
    out = line_pairs(line)
    assert out.pairs == [("You see!", "Siehste!")]
    assert sum(out.skipped.values()) == 1


def test_annotations_are_stripped() -> None:
    assert strip_annotations("Herzindex {m} /HI/ [med.]") == "Herzindex"
    assert strip_annotations("Er ist sehr müde. [ugs.] <müd>") == "Er ist sehr müde."
    # A slash between words is an alternative, not an abbreviation.
    assert strip_annotations("I bear/have no relation.") == "I bear/have no relation."
    line = "Das ist toll! [ugs.] {adj} :: That's great! [coll.]"
    assert line_pairs(line).pairs == [("That's great!", "Das ist toll!")]


def test_lines_whose_parts_differ_in_number_are_skipped() -> None:
    line = "Ich gehe. | Du gehst. :: I go."
    out = line_pairs(line)
    assert out.pairs == []
    assert out.skipped["lines: parts differ in number"] == 1


def test_comments_and_lines_without_separator_give_nothing() -> None:
    lines = ["# Version :: devel 2023-01-30", "no separator here.", REASSURE]
    out = dictionary_pairs(lines)
    assert [en for en, _ in out.pairs] == [
        "I tried to reassure her.",
        "You can put your mind at rest.",
    ]


def test_is_sentence() -> None:
    assert is_sentence("Time marches on.")
    assert is_sentence("„Komm her!“")
    assert is_sentence("2 plus 2 is 4.")
    assert not is_sentence("to reassure sb.")
    assert not is_sentence("Eel au bleu")


def test_is_plain_refuses_slashes_parentheses_and_gaps() -> None:
    assert is_plain(("I tried to reassure her.", "Ich versuchte, sie zu beruhigen."))
    assert not is_plain(("I bear/have no relation.", "Ich stehe in keinem Verhältnis."))
    assert not is_plain(("I’m (really) sorry!", "Es tut mir leid!"))
    assert not is_plain(("How do you say … in German?", "Wie sagt man … auf Deutsch?"))

"""prepare / restore with a stand-in translator whose word alignment is known: it reverses the
words and upper-cases them, and says which source word each target word came from."""

from __future__ import annotations

import pytest
from lxml import etree

from nmt.decoding.translator import Translation
from nmt.errors import NmtError
from nmt.text import prepare
from nmt.text.protect import protected_spans


def reverse(sentence: str) -> Translation:
    words = sentence.split()
    target = [w.upper() for w in reversed(words)]
    n = len(words)
    return Translation(
        text=" ".join(target),
        tokens=[],
        score=0.0,
        src_pieces=["▁" + w for w in words],
        tgt_pieces=["▁" + w for w in target],
        alignment=[(n - 1 - j, j) for j in range(n)],
    )


def round_trip(text: str, **kwargs: object) -> str:
    prepared = prepare(text, **kwargs)  # type: ignore[arg-type]
    return prepared.restore([reverse(s) for s in prepared.sentences])


def test_whitespace_line_breaks_and_blank_lines_come_back() -> None:
    text = "  One two. Three four!\n\n\tFive six.   \r\nSeven.\n"
    assert round_trip(text) == "  TWO. ONE FOUR! THREE\n\n\tSIX. FIVE   \r\nSEVEN.\n"


def test_as_many_sentences_come_out_as_went_in() -> None:
    text = "Cats sleep. Dogs run. Who knows?\nBirds sing."
    prepared = prepare(text)
    assert prepared.sentences == ["Cats sleep.", "Dogs run.", "Who knows?", "Birds sing."]
    assert prepared.num_sentences == 4 and not prepared.needs_attention


def test_a_sentence_without_markup_comes_back_as_its_translation_exactly() -> None:
    prepared = prepare("The cat sleeps.  The dog runs.")
    translations = [Translation(f"<{s}>", [], 0.0) for s in prepared.sentences]
    assert prepared.restore(translations) == "<The cat sleeps.>  <The dog runs.>"


def test_inline_tags_follow_the_words_they_held() -> None:
    # Reversed: "big" moves to the front, its <b> with it.
    assert round_trip("the <b>big</b> house", format="html") == "HOUSE <b>BIG</b> THE"
    out = round_trip('see <a href="x?a=1&amp;b=2">the page</a> now', format="html")
    assert out == 'NOW <a href="x?a=1&amp;b=2">PAGE THE</a> SEE'


def test_markup_comes_back_well_formed_with_the_same_tags_nested_alike() -> None:
    text = (
        "<p>One <b>two <i>three</i></b> four. Five <em>six. Seven</em> eight.</p>"
        '<ul><li>Nine &amp; <a href="#">ten</a></li></ul><p>x<br>y <code>a &lt; b</code>.</p>'
    )
    out = round_trip(text, format="html")

    def shape(fragment: str) -> list[str]:
        root = etree.fromstring(f"<div>{fragment}</div>", etree.HTMLParser(recover=False))
        return [f"{e.tag}/{len(list(e.iterancestors()))}" for e in root.iter()]

    assert shape(out) == shape(text)
    assert "<code>a &lt; b</code>" in out and "&amp;" in out


def test_an_empty_element_stays_whole_at_either_edge_of_a_sentence() -> None:
    """An anchor with nothing in it (DocBook's ``<a name="AEN6"></a>`` before a heading's text,
    Debian's base-passwd manual) came back as ``</a><a name="AEN6">``: its end tag fell in the
    gap before the sentence, its start tag inside, and the anchor then wrapped the text."""
    out = round_trip('<h3><a name="x"></a>Colin Watson</h3>', format="html")
    assert out == '<h3><a name="x"></a>WATSON COLIN</h3>'
    out = round_trip('<p>Colin Watson<a name="y"></a></p>', format="html")
    assert out == '<p>WATSON COLIN<a name="y"></a></p>'


def test_translated_attributes_and_kept_elements() -> None:
    text = '<p title="Go home">Hi there <img src="a.png" alt="A cat"> <script>x = 1</script></p>'
    out = round_trip(text, format="html")
    assert 'title="HOME GO"' in out and 'alt="CAT A"' in out and "<script>x = 1</script>" in out


def test_protected_spans_come_back_exactly_and_in_order() -> None:
    text = "Open %s with {name} at https://example.org/x?y=1 or --verbose, $HOME."
    out = round_trip(text)
    # Reversed words, spans still in their order, each among the words it can be near.
    assert out == ". %s, {name} OR AT https://example.org/x?y=1 --verbose WITH $HOME OPEN"
    spans = [text[s.start : s.end] for s in protected_spans(text)]
    assert [out[s.start : s.end] for s in protected_spans(out)] == spans
    assert "%s" not in prepare(text).sentences[0]  # kept out of the model's input


def test_an_accelerator_marks_the_aligned_target_word() -> None:
    assert round_trip("Open the _File menu") == "MENU _FILE THE OPEN"
    assert round_trip("E_xit now", accelerator="_") == "NOW _EXIT"


def test_a_sentence_too_long_is_cut_and_every_piece_translated() -> None:
    text = "one two three, four five six, seven eight nine. Ten."
    prepared = prepare(text, fits=lambda s: len(s) <= 16)
    assert prepared.sentences == [
        "one two three,",
        "four five six,",
        "seven eight",
        "nine.",
        "Ten.",
    ]
    assert prepared.num_sentences == 2
    out = prepared.restore([reverse(s) for s in prepared.sentences])
    assert out == "THREE, TWO ONE SIX, FIVE FOUR EIGHT SEVEN NINE. TEN."


def test_a_sentence_of_markup_only_needs_no_translation() -> None:
    prepared = prepare("%s", format="text")
    assert prepared.sentences == [] and prepared.restore([]) == "%s"


@pytest.mark.parametrize(
    ("text", "format", "message"),
    [
        ("<p>one\n<b>two</i></p>", "html", "<text>:2: not well-formed HTML"),
        ("a <b>b</c>", "xml", "<text>:1: not well-formed XML"),
    ],
)
def test_malformed_markup_is_one_error_naming_the_line(
    text: str, format: str, message: str
) -> None:
    with pytest.raises(NmtError, match=message):
        prepare(text, format=format)  # type: ignore[arg-type]

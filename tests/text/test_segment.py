"""Sentence spans and cutting: nothing lost, nothing moved."""

from nmt.text.segment import cut_pieces, cut_to_fit, sentence_spans


def test_spans_cover_every_sentence_and_leave_the_whitespace() -> None:
    text = "The weather is nice today. Where is the station?\n\n  It is far.  \nGood."
    spans = sentence_spans(text, language="en", split_lines=True)
    assert [text[s:e] for s, e in spans] == [
        "The weather is nice today.",
        "Where is the station?",
        "It is far.",
        "Good.",
    ]
    # What lies between the spans is whitespace only: rejoining there loses no text.
    bounds = [0, *[b for span in spans for b in span], len(text)]
    gaps = [text[a:b] for a, b in zip(bounds[::2], bounds[1::2], strict=True)]
    assert all(not gap.strip() for gap in gaps)


def test_a_line_break_ends_a_sentence_only_when_asked() -> None:
    text = "a title\nthe body goes on."
    assert len(sentence_spans(text, language="en", split_lines=True)) == 2
    assert len(sentence_spans(text, language="en", split_lines=False)) == 1


def test_cutting_prefers_clause_boundaries_and_keeps_every_word() -> None:
    text = "The weather is nice today, and the station is far; we walk there slowly."
    fits = lambda s: len(s) <= 30  # noqa: E731
    pieces = cut_pieces(text, cut_to_fit(text, fits))
    assert pieces == [
        "The weather is nice today,",
        "and the station is far;",
        "we walk there slowly.",
    ]
    assert all(fits(p) for p in pieces)
    assert cut_to_fit("short enough", fits) == []


def test_a_clause_too_long_is_cut_between_words_and_a_word_between_characters() -> None:
    text = "one two three four five six seven eight nine ten " + "x" * 25
    fits = lambda s: len(s) <= 10  # noqa: E731
    pieces = cut_pieces(text, cut_to_fit(text, fits))
    assert all(fits(p) for p in pieces)
    # Every character is in a piece, in order.
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")
    assert pieces[-3:] == ["x" * 10, "x" * 10, "x" * 5]

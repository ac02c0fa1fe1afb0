"""Untranslatable spans: what is found, and what is not."""

import pytest

from nmt.text.protect import protected_spans


def found(text: str, accelerator: str | None = None) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.kind) for s in protected_spans(text, accelerator=accelerator)]


@pytest.mark.parametrize(
    ("text", "span", "kind"),
    [
        ("Open %s now", "%s", "placeholder"),
        ("%(count)d files", "%(count)d", "placeholder"),
        ("take %1$s first", "%1$s", "placeholder"),
        ("{0} of {total}", "{0}", "placeholder"),
        ("{0} of {total}", "{total}", "placeholder"),
        ("costs {price:.2f}", "{price:.2f}", "placeholder"),
        ("see https://example.org/a/b.", "https://example.org/a/b", "url"),
        ("write to me@example.org today", "me@example.org", "email"),
        ("set $HOME and ${PATH}", "$HOME", "variable"),
        ("set $HOME and ${PATH}", "${PATH}", "variable"),
        ("run with --verbose or -v", "--verbose", "option"),
        ("run with --size=10 now", "--size=10", "option"),
        ("type `ls -l` here", "`ls -l`", "code"),
        ("the _File menu", "_", "accelerator"),
        ("the &File menu", "&", "accelerator"),
        ("the ~Save button", "~", "accelerator"),
        ("a <b>bold</b> word", "<b>", "tag"),
        ("Tom &amp; Jerry", "&amp;", "entity"),
    ],
)
def test_found(text: str, span: str, kind: str) -> None:
    assert (span, kind) in found(text)


@pytest.mark.parametrize(
    "text", ["50% off today", "file_name here", "well-known facts", "x < y > z", "a - b", "E_xit"]
)
def test_not_found(text: str) -> None:
    assert found(text) == []


def test_an_accelerator_inside_a_word_only_when_named() -> None:
    assert found("E_xit") == []
    assert found("E_xit", accelerator="_") == [("_", "accelerator")]
    assert found("Clea~r", accelerator="~") == [("~", "accelerator")]

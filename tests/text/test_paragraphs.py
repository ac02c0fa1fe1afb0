"""Paragraphs on the trained toy model: every sentence comes back, translated exactly as it is
alone, through Python and through the CLI; markup and placeholders survive a real model."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from nmt.config import DecodingConfig
from nmt.decoding.translator import Translator
from nmt.text import translate_text
from nmt.text.protect import protected_spans
from nmt.text.translate import prepare_texts

OPTIONS = DecodingConfig(beam_size=2)


@pytest.fixture(scope="module")
def translator(trained_model_dir: Path) -> Translator:
    return Translator.load(trained_model_dir)


def paragraphs_of(sentences: list[str], seed: int = 0) -> list[list[str]]:
    """The sentences in order, grouped 2 to 6 at a time."""
    rng, groups, at = random.Random(seed), [], 0
    while at < len(sentences):
        size = rng.randint(2, 6)
        groups.append(sentences[at : at + size])
        at += size
    return groups


@pytest.fixture(scope="module")
def sentences(toy_corpus: Path) -> list[str]:
    lines = (toy_corpus / "test.en").read_text().splitlines()
    # "… sees a." reads as an initial to a sentence splitter, as "J. Smith" would.
    return [f"{line}." for line in lines if not line.endswith(" a")][:30]


def test_paragraph_sentences_equal_each_sentence_alone(
    translator: Translator, sentences: list[str]
) -> None:
    groups = paragraphs_of(sentences)
    alone = [translator.translate([s], OPTIONS)[0] for s in sentences]
    out = translate_text(translator, [" ".join(g) for g in groups], options=OPTIONS)
    expected, at = [], 0
    for group in groups:
        expected.append(" ".join(alone[at : at + len(group)]))
        at += len(group)
    assert out == expected


def test_the_cli_translates_paragraphs_line_by_line(
    trained_model_dir: Path, translator: Translator, sentences: list[str]
) -> None:
    groups = paragraphs_of(sentences, seed=1)
    text = "\n\n".join(" ".join(g) for g in groups) + "\n"
    result = subprocess.run(
        [sys.executable, "-m", "nmt.cli", "translate", str(trained_model_dir), "--beam-size", "2"],
        input=text,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    alone = translator.translate(sentences, OPTIONS)  # one batch, as `--format lines` would
    expected, at = [], 0
    for group in groups:
        expected.append(" ".join(alone[at : at + len(group)]))
        at += len(group)
    assert result.stdout == "\n\n".join(expected) + "\n"


def test_markup_and_placeholders_survive_a_real_model(translator: Translator) -> None:
    texts = [
        "the <b>big</b> cat sees <a href='x.html'>a red dog</a>. the tree runs.",
        "the cat sees %s and {name} at https://example.org/a, a _green tree.",
    ]
    html, plain = (
        translate_text(translator, texts[:1], format="html")[0],
        translate_text(translator, texts[1:])[0],
    )
    assert html.count("<b>") == 1 and html.count("</b>") == 1
    assert (
        html.index("<b>")
        < html.index("</b>")
        < html.index('<a href="x.html">')
        < html.index("</a>")
    )
    kept = [plain[s.start : s.end] for s in protected_spans(plain)]
    assert kept == ["%s", "{name}", "https://example.org/a", "_"]
    assert "gruen" in plain.split("_")[1]  # the accelerator marks the word aligned to "green"


def test_an_over_long_sentence_is_cut_and_every_piece_translated(translator: Translator) -> None:
    sentence = ", ".join(["the big red house"] * 60) + "."  # far past the model's positions
    [prepared] = prepare_texts(translator, [sentence])
    pieces = prepared.sentences
    assert len(pieces) >= 2 and prepared.num_sentences == 1
    assert translator.max_positions is not None
    assert all(len(translator.tokenizer.encode(p)) < translator.max_positions for p in pieces)
    assert " ".join(pieces) == sentence  # cut at clause boundaries, nothing left out
    [out] = translate_text(translator, [sentence], options=OPTIONS)
    assert out == " ".join(translator.translate(pieces, OPTIONS))


def test_the_documented_python_snippet_runs(
    trained_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "documents.md").read_text(encoding="utf-8")
    snippet = doc.split("```python\n", 1)[1].split("```", 1)[0]
    assert "runs/quickstart/averaged" in snippet
    exec(snippet.replace("runs/quickstart/averaged", str(trained_model_dir)), {})
    printed = capsys.readouterr().out
    assert printed.startswith("['") and "<b>" in printed and "</b>" in printed

"""/v1/translate on texts as people send them (through the real app and worker): paragraphs
split and rejoined, HTML, scores, alignments, a prefix, a glossary, the beam-search trace, and
the requests that must be refused, each naming its field."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import html as lxml_html

from nmt.config import DecodingConfig
from nmt.decoding.alignment import pharaoh, word_alignment_of
from nmt.decoding.translator import Translator

PARAGRAPH = "the cat sees the dog. a big red house.\n\nthe small tree eats!"
SENTENCES = ["the cat sees the dog.", "a big red house.", "the small tree eats!"]


def translate(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/translate", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def refused(client: TestClient, status: int, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/translate", json=body)
    assert response.status_code == status, response.text
    (error,) = response.json()["detail"]
    return error


def test_a_paragraph_comes_back_sentence_for_sentence(
    client: TestClient, translator: Translator
) -> None:
    (result,) = translate(client, texts=[PARAGRAPH])["translations"]
    assert [s["source"] for s in result["sentences"]] == SENTENCES
    alone = translator.translate(SENTENCES)  # each sentence as it would be translated alone
    assert [s["text"] for s in result["sentences"]] == alone
    assert all(alone)
    # Rejoined with the paragraph's own spacing: a space within the line, the blank line kept.
    assert result["text"] == f"{alone[0]} {alone[1]}\n\n{alone[2]}"
    assert result["score"] == pytest.approx(sum(s["score"] for s in result["sentences"]))


def test_an_english_paragraph_of_two_sentences_gives_two(client: TestClient) -> None:
    (result,) = translate(client, texts=["This is a paragraph. It has two sentences."])[
        "translations"
    ]
    assert [s["source"] for s in result["sentences"]] == [
        "This is a paragraph.",
        "It has two sentences.",
    ]


def test_html_keeps_its_tags_well_formed(client: TestClient) -> None:
    source = "<p>the <b>big</b> dog sees a <i>small red</i> house.</p><p>the cat eats.</p>"
    (result,) = translate(client, texts=[source], format="html")["translations"]
    assert len(result["sentences"]) == 2  # block tags end sentences
    out = result["text"]
    for tag in ("<p>", "</p>", "<b>", "</b>", "<i>", "</i>"):
        assert out.count(tag) == source.count(tag), out
    tree = lxml_html.fragment_fromstring(out, create_parent="div")
    assert [e.tag for e in tree.iter()] == [
        e.tag for e in lxml_html.fragment_fromstring(source, create_parent="div").iter()
    ]


def test_malformed_html_names_the_text(client: TestClient) -> None:
    error = refused(client, 422, texts=["fine", "<p>the <b>dog</p>"], format="html")
    assert error["loc"] == ["body", "texts", 1]
    assert "texts[1]" in error["msg"]


def test_scores_are_the_searchs_token_probabilities(
    client: TestClient, translator: Translator
) -> None:
    (result,) = translate(client, texts=[SENTENCES[0]], scores=True)["translations"]
    (hypothesis,) = result["sentences"][0]["hypotheses"]
    (expected,) = translator.translate_nbest(SENTENCES[:1])[0]
    tokens = hypothesis["tokens"]
    assert [t["piece"] for t in tokens] == [*expected.tgt_pieces, "</s>"]
    assert [t["prob"] for t in tokens] == pytest.approx(
        [math.exp(lp) for lp in expected.token_log_probs], abs=1e-4
    )
    assert all(0 < t["prob"] <= 1 for t in tokens)
    assert (
        "tokens"
        not in translate(client, texts=[SENTENCES[0]])["translations"][0]["sentences"][0][
            "hypotheses"
        ][0]
    )


def test_alignments_are_pharaoh_word_pairs(client: TestClient, translator: Translator) -> None:
    (result,) = translate(client, texts=[PARAGRAPH], alignments=True)["translations"]
    expected = translator.translate_nbest(SENTENCES, return_alignment=True)
    for sentence, nbest in zip(result["sentences"], expected, strict=True):
        alignment = sentence["hypotheses"][0]["alignment"]
        assert alignment == pharaoh(word_alignment_of(nbest[0]))
        pairs = [tuple(map(int, pair.split("-"))) for pair in alignment.split()]
        src_words, tgt_words = len(sentence["source"].split()), len(sentence["text"].split())
        assert pairs and all(s < src_words and t < tgt_words for s, t in pairs)


def test_a_prefix_starts_each_texts_first_sentence(
    client: TestClient, translator: Translator
) -> None:
    free = translator.translate(SENTENCES)
    prefix = "ein klein"  # not what the model writes first for any of them
    assert not any(t.startswith(prefix) for t in free)
    (result,) = translate(client, texts=[PARAGRAPH], prefix=prefix)["translations"]
    first, *others = result["sentences"]
    assert first["text"].startswith(prefix) and result["text"].startswith(prefix)
    assert [s["text"] for s in others] == free[1:]  # the others are searched freely


def test_a_glossary_term_appears(client: TestClient, translator: Translator) -> None:
    sentence = "the cat sees the dog"
    plain = translator.translate([sentence])[0]
    assert "baum" not in plain
    body = {"texts": [sentence], "glossary": [{"source": "dog", "target": "baum"}]}
    (result,) = translate(client, **body)["translations"]
    assert "baum" in result["text"]
    expected = translator.translate(
        [sentence], DecodingConfig(beam_size=4, glossary=body["glossary"])
    )
    assert result["text"] == expected[0]


@pytest.mark.parametrize(
    ("options", "loc"),
    [
        ({"glossary": [{"source": "", "target": "baum"}]}, ["body", "glossary", 0, "source"]),
        ({"glossary": [{"source": "dog", "target": "  "}]}, ["body", "glossary", 0, "target"]),
        ({"prefix": "  "}, ["body"]),  # empty: DecodingConfig's check, the message names it
        ({"prefix": "ein " * 80}, ["body", "prefix"]),  # longer than the length limit
        ({"format": "pdf"}, ["body", "format"]),
        ({"scores": "yes"}, ["body", "scores"]),
    ],
)
def test_options_the_model_cannot_honour_are_422_naming_the_field(
    client: TestClient, options: dict[str, Any], loc: list[Any]
) -> None:
    error = refused(client, 422, texts=["the cat"], **options)
    assert error["loc"] == loc
    if loc == ["body"]:
        assert error["msg"].startswith("Value error, prefix:")


GLOSSARY_TERM = {"source": "dog", "target": "baum"}


def test_the_trace_holds_the_search_that_found_the_translation(client: TestClient) -> None:
    (result,) = translate(client, texts=[SENTENCES[0]], trace=True, beam_size=3, nbest=3)[
        "translations"
    ]
    sentence = result["sentences"][0]
    steps = sentence["trace"]
    assert steps and all(len(step["kept"]) <= 3 for step in steps)
    # Rebuild every finished hypothesis from the parent links: the n-best are among them.
    finished: list[tuple[str, float]] = []
    history: list[list[str]] = [[]]
    for step in steps:
        for parent, piece, log_prob in step["ended"]:
            tail = [] if piece == "</s>" else [piece]
            finished.append(("".join([*history[parent], *tail]), log_prob))
        history = [[*history[parent], piece] for parent, piece, _ in step["kept"]]
    spelled = {pieces.replace("▁", " ").strip() for pieces, _ in finished}
    assert {h["text"] for h in sentence["hypotheses"]} <= spelled
    assert "trace" not in translate(client, texts=[SENTENCES[0]])["translations"][0]["sentences"][0]


def test_the_trace_marks_where_the_glossary_steered_the_search(
    client: TestClient, translator: Translator
) -> None:
    """Each traced candidate carries the glossary tokens its hypothesis holds: the translation's
    own path ends holding every token of the term, and candidates that add one hold more than
    the hypothesis they extend."""
    sentence_in = "the big dog sees a small red house"
    (result,) = translate(
        client, texts=[sentence_in], trace=True, beam_size=4, glossary=[GLOSSARY_TERM]
    )["translations"]
    sentence = result["sentences"][0]
    assert "baum" in sentence["text"]
    history: list[tuple[list[str], int]] = [([], 0)]  # pieces and glossary tokens, per open beam
    held_at_end, steered = None, 0
    for step in sentence["trace"]:
        terms = step["terms"]
        for kind in ("kept", "ended", "pruned"):
            assert len(terms[kind]) == len(step[kind])
            for (parent, _, _), held in zip(step[kind], terms[kind], strict=True):
                assert held - history[parent][1] in (0, 1) or held == 0  # one token, or abandoned
                steered += held > history[parent][1]
        for (parent, piece, _), held in zip(step["ended"], terms["ended"], strict=True):
            pieces = history[parent][0] + ([] if piece == "</s>" else [piece])
            if (
                held_at_end is None
                and "".join(pieces).replace("▁", " ").strip() == sentence["text"]
            ):
                held_at_end = held
        history = [
            (history[parent][0] + [piece], held)
            for (parent, piece, _), held in zip(step["kept"], terms["kept"], strict=True)
        ]
    assert held_at_end == len(translator.tokenizer.encode_target("baum")) and steered > 0
    plain = translate(client, texts=[sentence_in], trace=True)
    assert "terms" not in plain["translations"][0]["sentences"][0]["trace"][0]


def test_a_50_megabyte_paragraph_is_refused_before_it_is_read(client: TestClient) -> None:
    paragraph = "the cat sees the dog. " * (50_000_000 // 22)
    response = client.post("/v1/translate", json={"texts": [paragraph]})
    assert response.status_code == 413, response.text[:300]
    (error,) = response.json()["detail"]
    assert error["limit"] == "max_body_bytes" and "the limit is 4,000" in error["msg"]

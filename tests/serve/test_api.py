"""The API through the real app (FastAPI's TestClient, the worker thread running): answers,
every limit, every kind of malformed request, and failures that stay with their request."""

from __future__ import annotations

import json
import math
import re
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from nmt.config import DecodingConfig, RNNConfig, load_config
from nmt.data.tokenizer import TOKENIZER_FILE, Tokenizer
from nmt.decoding.alignment import pharaoh, word_alignment_of
from nmt.decoding.translator import Translation, TranslationDone, Translator, Wanted
from nmt.models.build import build_model
from nmt.models.store import load_model_dir, resolve_model_dir, write_model_dir
from nmt.serve.app import create_app, model_info
from nmt.serve.limits import Limits
from tests.serve.app_client import LIMITS, client_for

SENTENCES = ["the cat sees the dog", "a big red house", "the small tree eats"]


def post(client: TestClient, **body: Any) -> Any:
    return client.post("/v1/translate", json=body)


# -- answers ------------------------------------------------------------------------------


def test_translations_are_the_translators(client: TestClient, translator: Translator) -> None:
    response = post(client, texts=SENTENCES)
    assert response.status_code == 200, response.text
    results = response.json()["translations"]
    expected = translator.translate_nbest(SENTENCES)
    assert [r["text"] for r in results] == [nbest[0].text for nbest in expected]
    assert all(r["text"] for r in results)  # the trained model's outputs are not empty
    assert [r["score"] for r in results] == pytest.approx([n[0].score for n in expected])
    assert not any(r["truncated"] for r in results)
    assert "attention" not in results[0]["sentences"][0]["hypotheses"][0]  # not asked for


def test_options_are_the_clis_decoding_options(client: TestClient, translator: Translator) -> None:
    response = post(client, texts=SENTENCES[:1], beam_size=5, nbest=3, length_penalty=1.0)
    assert response.status_code == 200, response.text
    hyps = response.json()["translations"][0]["sentences"][0]["hypotheses"]
    options = DecodingConfig(beam_size=5, nbest=3, length_penalty=1.0)
    expected = translator.translate_nbest(SENTENCES[:1], options)[0]
    assert [h["text"] for h in hyps] == [t.text for t in expected]
    scores = [h["score"] for h in hyps]
    assert len(hyps) == 3 and scores == sorted(scores, reverse=True)


def test_attention_comes_with_its_pieces(client: TestClient, translator: Translator) -> None:
    response = post(client, texts=SENTENCES[:2], attention=True)
    assert response.status_code == 200, response.text
    expected = translator.translate_nbest(SENTENCES[:2], return_attention=True)
    for result, nbest in zip(response.json()["translations"], expected, strict=True):
        att = result["sentences"][0]["hypotheses"][0]["attention"]
        truth = nbest[0]
        assert att["src_pieces"] == [*truth.src_pieces, "</s>"]
        assert att["tgt_pieces"] == [*truth.tgt_pieces, "</s>"]
        weights = torch.tensor(att["weights"])
        num_layers, num_heads = 2, 4  # the trained test model's shape
        shape = (num_layers, num_heads, len(att["tgt_pieces"]), len(att["src_pieces"]))
        assert weights.shape == shape
        assert truth.attention is not None
        torch.testing.assert_close(weights, truth.attention.float(), atol=1e-4, rtol=0)
        torch.testing.assert_close(weights.sum(-1), torch.ones(shape[:3]), atol=1e-3, rtol=0)


def test_attention_of_an_output_stopped_at_the_length_limit(
    client: TestClient, translator: Translator
) -> None:
    """An output cut at the length limit has no EOS, so its attention has no EOS row: it used to
    be labelled with one anyway and the request failed with a 500."""
    limit = {"max_len_a": 0.0, "max_len_b": 2}
    response = post(client, texts=SENTENCES[:1], attention=True, **limit)
    assert response.status_code == 200, response.text
    [truth] = translator.translate_nbest(
        SENTENCES[:1], translator.default_options.updated(**limit), return_attention=True
    )[0][:1]
    assert not truth.ended and len(truth.tgt_pieces) == 2
    att = response.json()["translations"][0]["sentences"][0]["hypotheses"][0]["attention"]
    assert att["tgt_pieces"] == truth.tgt_pieces
    assert torch.tensor(att["weights"]).shape[-2:] == (2, len(truth.src_pieces) + 1)


def test_health_and_model_description(client: TestClient, trained_model_dir: Path) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["queued"] == 0
    info = client.get("/v1/model").json()
    config = load_config(trained_model_dir / "config.yaml")
    model = load_model_dir(trained_model_dir).model
    unique = {id(p): p.numel() for p in model.parameters()}  # tied matrices once
    assert info["parameters"] == sum(unique.values())
    assert (info["src_lang"], info["tgt_lang"]) == ("en", "de")
    assert info["vocab_size"] == Tokenizer.load(trained_model_dir / TOKENIZER_FILE).vocab_size
    assert info["architecture"]["num_heads"] == config.model.num_heads
    assert info["decoding"] == config.decoding.model_dump(mode="json")
    assert info["server"]["limits"] == LIMITS.model_dump()


def test_the_page_and_the_api_documentation_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/v1/translate" in page.text
    # Self-contained: nothing to fetch from elsewhere (the browser test watches its requests too).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(""", page.text)
    schema = client.get("/openapi.json").json()
    assert {"/v1/translate", "/health", "/v1/model"} <= set(schema["paths"])
    # The API's documentation draws on this server's files only, so it works offline too.
    docs = client.get("/docs")
    assert docs.status_code == 200
    assets = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", docs.text)
    assert assets and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_an_over_long_sentence_is_cut_into_pieces_and_all_translated(client: TestClient) -> None:
    # Within the server's 200 subwords but past the model's limit (max_positions 128): before
    # texts were split (nmt.text) it was truncated; now every piece of it is translated.
    long_text = " ".join(["the big red house"] * 60)[: LIMITS.max_chars]
    response = post(client, texts=[long_text, SENTENCES[0]])
    assert response.status_code == 200, response.text
    long, short = response.json()["translations"]
    assert not long["truncated"] and not short["truncated"]
    assert len(long["sentences"]) > 1 and len(short["sentences"]) == 1
    assert " ".join(s["source"] for s in long["sentences"]) == long_text.strip()
    assert all(s["text"] for s in long["sentences"])


# -- limits -----------------------------------------------------------------------------------


def assert_limit(response: Any, status: int, limit: str, value: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    (error,) = response.json()["detail"]
    assert (error["type"], error["limit"], error["value"]) == ("limit_exceeded", limit, value)
    assert f"{value:,}" in error["msg"]
    return error  # type: ignore[no-any-return]


def test_characters_per_text(client: TestClient) -> None:
    error = assert_limit(
        post(client, texts=["fine", "x" * (LIMITS.max_chars + 1)]), 413, "max_chars", 300
    )
    assert error["loc"] == ["body", "texts", 1]
    at_the_limit = "big " * (LIMITS.max_chars // 4)  # 75 subwords ("▁big" is one piece)
    assert post(client, texts=[at_the_limit]).status_code == 200


def test_subwords_per_text(client: TestClient) -> None:
    # 150 characters, but every letter its own subword: more than 200 subwords.
    spaced = " ".join("zqxj" * 40)[: LIMITS.max_chars]
    error = assert_limit(post(client, texts=[spaced]), 413, "max_subwords", 200)
    assert error["loc"] == ["body", "texts", 0]


def test_texts_per_request(client: TestClient) -> None:
    error = assert_limit(post(client, texts=["a"] * 6), 413, "max_texts", 5)
    assert error["loc"] == ["body", "texts"]
    assert post(client, texts=["a"] * 5).status_code == 200


def test_body_size_declared(client: TestClient) -> None:
    body = json.dumps({"texts": ["a"], "padding": " " * 5000})
    assert_limit(
        client.post("/v1/translate", content=body, headers={"content-type": "application/json"}),
        413,
        "max_body_bytes",
        4000,
    )


def test_body_size_streamed_without_a_length(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"texts": ["'
        for _ in range(10):
            yield b"a" * 1000
        yield b'"]}'

    response = client.post(
        "/v1/translate", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_limit(response, 413, "max_body_bytes", 4000)


def test_beam_size_limit(client: TestClient) -> None:
    error = assert_limit(post(client, texts=["a"], beam_size=7), 422, "max_beam_size", 6)
    assert error["loc"] == ["body", "beam_size"]


# -- malformed requests: 422 naming the field -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "locs"),
    [
        ('{"texts": ["a"', [["body", 14]]),  # not JSON: the offset where it broke
        ("[1, 2]", [["body"]]),
        ('{"text": ["a"]}', [["body", "texts"], ["body", "text"]]),  # missing, unknown
        ('{"texts": []}', [["body", "texts"]]),  # empty
        ('{"texts": "a"}', [["body", "texts"]]),
        ('{"texts": ["a", 3]}', [["body", "texts", 1]]),
        ('{"texts": ["a"], "beam_size": "4"}', [["body", "beam_size"]]),
        ('{"texts": ["a"], "beam_size": 2.5}', [["body", "beam_size"]]),
        ('{"texts": ["a"], "beam_size": 0}', [["body", "beam_size"]]),
        ('{"texts": ["a"], "length_penalty": -1}', [["body", "length_penalty"]]),
        ('{"texts": ["a"], "top_p": 1.5}', [["body", "top_p"]]),
        ('{"texts": ["a"], "stopping": "never"}', [["body", "stopping"]]),
        ('{"texts": ["a"], "attention": "yes"}', [["body", "attention"]]),
        ('{"texts": ["a"], "beam_sise": 4}', [["body", "beam_sise"]]),  # unknown option
        ('{"texts": ["a"], "max_tokens": 10}', [["body", "max_tokens"]]),  # the server's
    ],
)
def test_malformed_requests_name_the_field(
    client: TestClient, body: str, locs: list[list[Any]]
) -> None:
    response = client.post(
        "/v1/translate", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == locs


def test_options_that_do_not_fit_together(client: TestClient) -> None:
    # Each value is in range; together with the model's beam size 4 they are not.
    response = post(client, texts=["a"], nbest=5)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body"] and "nbest (5)" in error["msg"]


# -- models without attention, recurrent models ------------------------------------------------


@pytest.mark.parametrize(("attention", "expected"), [("none", "none"), ("additive", (1, 1))])
def test_recurrent_models_attention(
    attention: str, expected: Any, trained_model_dir: Path, tmp_path: Path
) -> None:
    config = load_config(trained_model_dir / "config.yaml")
    config.model = RNNConfig(cell="gru", embed_dim=16, hidden_size=16, attention=attention)  # type: ignore[arg-type]
    tokenizer_path = trained_model_dir / TOKENIZER_FILE
    torch.manual_seed(0)
    model = build_model(config.model, Tokenizer.load(tokenizer_path).vocab_size)
    write_model_dir(tmp_path / "rnn", config=config, tokenizer_path=tokenizer_path, model=model)
    with client_for(Translator.load(tmp_path / "rnn"), tmp_path / "rnn") as client:
        response = post(client, texts=["the cat"], attention=True, max_len_b=3)
    assert response.status_code == 200, response.text
    att = response.json()["translations"][0]["sentences"][0]["hypotheses"][0]["attention"]
    if expected == "none":
        assert att == "none"
    else:
        assert torch.tensor(att["weights"]).shape[:2] == expected


# -- failures stay with their request ----------------------------------------------------------


class FailsOnBoom:
    """The real translator, except that a batch holding "boom" raises (like a model bug)."""

    def __init__(self, translator: Translator) -> None:
        self.translator = translator

    def translate_nbest(
        self,
        sentences: Sequence[str],
        options: DecodingConfig | None = None,
        *,
        return_attention: bool = False,
        on_done: TranslationDone | None = None,
        wanted: Wanted | None = None,
    ) -> list[list[Translation]]:
        if "boom" in sentences:
            raise RuntimeError("a bug in the model")
        return self.translator.translate_nbest(sentences, options, on_done=on_done, wanted=wanted)


def test_a_failure_in_one_request_leaves_the_others_alone(
    translator: Translator, trained_model_dir: Path
) -> None:
    texts = [*SENTENCES, "boom"]
    with client_for(FailsOnBoom(translator), trained_model_dir, max_wait_ms=500) as client:
        responses: dict[str, Any] = {}

        def ask(text: str) -> None:
            responses[text] = post(client, texts=[text])

        threads = [threading.Thread(target=ask, args=(text,)) for text in texts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert responses["boom"].status_code == 500
        assert "a bug in the model" in responses["boom"].json()["detail"]
        expected = translator.translate(SENTENCES)
        for text, translation in zip(SENTENCES, expected, strict=True):
            assert responses[text].status_code == 200, responses[text].text
            assert responses[text].json()["translations"][0]["text"] == translation
        assert post(client, texts=["a red house"]).status_code == 200  # and it goes on


# -- an ensemble behind the same API ---------------------------------------------------------


def test_an_ensemble_is_served(
    trained_model_dir: Path, translator: Translator, tmp_path: Path
) -> None:
    """Two different members: the server answers what the ensemble's Translator answers (the
    mean of the members' probabilities), not what either member alone would."""
    loaded = load_model_dir(trained_model_dir)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in loaded.model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    other = tmp_path / "other"
    write_model_dir(
        other,
        config=loaded.config,
        tokenizer_path=trained_model_dir / TOKENIZER_FILE,
        model=loaded.model,
    )
    ensemble = Translator.load([trained_model_dir, other])
    app = create_app(
        ensemble,
        tokenizer=Tokenizer.load(trained_model_dir / TOKENIZER_FILE),
        info=model_info(trained_model_dir, other, engine="nmt", device="cpu"),
    )
    with TestClient(app) as client:
        response = post(client, texts=SENTENCES)  # the model's own decoding options
        assert response.status_code == 200, response.text
        results = response.json()["translations"]
        info = client.get("/v1/model").json()
    expected = [nbest[0] for nbest in ensemble.translate_nbest(SENTENCES)]
    alone = [nbest[0] for nbest in translator.translate_nbest(SENTENCES)]
    assert [r["text"] for r in results] == [t.text for t in expected]
    scores = [r["score"] for r in results]
    assert scores == pytest.approx([t.score for t in expected])
    assert scores != pytest.approx([t.score for t in alone])
    assert info["members"] == [str(resolve_model_dir(d)) for d in (trained_model_dir, other)]
    single = model_info(trained_model_dir, engine="nmt", device="cpu")
    assert info["parameters"] == 2 * single.parameters
    assert info["training_step"] is None


# -- the CTranslate2 engine behind the same API -----------------------------------------------


def test_the_ctranslate2_engine_serves_the_same_api(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"  # the conversion is cached beside the model: use a copy
    shutil.copytree(trained_model_dir, model_dir)
    engine = Translator.load(model_dir, engine="ctranslate2")
    app = create_app(
        engine,
        tokenizer=Tokenizer.load(model_dir / TOKENIZER_FILE),
        info=model_info(model_dir, engine="ctranslate2", device="cpu"),
    )
    with TestClient(app) as client:
        response = post(client, texts=SENTENCES)
        assert response.status_code == 200, response.text
        got = [r["text"] for r in response.json()["translations"]]
        assert got == engine.translate(SENTENCES)
        for unavailable in ("attention", "trace"):
            refused = post(client, texts=SENTENCES, **{unavailable: True})
            assert refused.status_code == 422
            assert refused.json()["detail"][0]["loc"] == ["body", unavailable]
        # Scores and alignments are the engine's own.
        both = post(client, texts=SENTENCES[:1], scores=True, alignments=True)
        assert both.status_code == 200, both.text
        (hypothesis,) = both.json()["translations"][0]["sentences"][0]["hypotheses"]
        (truth,) = engine.translate_nbest(SENTENCES[:1], return_alignment=True)[0]
        assert hypothesis["alignment"] == pharaoh(word_alignment_of(truth))
        assert [t["prob"] for t in hypothesis["tokens"]] == pytest.approx(
            [math.exp(lp) for lp in truth.token_log_probs], abs=1e-4
        )


def test_the_docs_say_what_the_code_does() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "serve.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"\| `--([a-z-]+)` \| ([\d,]+) \|", docs))
    defaults = Limits().model_dump()
    assert {f"max_{k.removeprefix('max-').replace('-', '_')}": v for k, v in table.items()} == {
        name: f"{value:,}" for name, value in defaults.items()
    }
    options = set(DecodingConfig.model_fields) - {"max_tokens"}
    listed = re.search(r"`beam_size`.*?`seed`", docs, re.DOTALL)
    assert listed and set(re.findall(r"`(\w+)`", listed.group(0))) == options

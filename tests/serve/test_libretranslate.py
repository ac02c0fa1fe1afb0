"""LibreTranslate's API on the real app (FastAPI's TestClient, the worker running): its shapes,
its three body encodings, its errors, and answers equal to nmt's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nmt.config import DecodingConfig
from nmt.decoding.translator import Translator
from nmt.text import translate_text
from tests.serve.app_client import LIMITS, client_for

PARAGRAPH = "the cat sees the dog. a big red house."
ENGLISH = "This is a sentence written in English for testing purposes"


def error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}, response.text
    return str(response.json()["error"])


def test_translate_json_and_form_give_nmts_translation(
    client: TestClient, translator: Translator
) -> None:
    expected = translate_text(translator, [PARAGRAPH])[0]
    assert expected
    body = {"q": PARAGRAPH, "source": "en", "target": "de"}
    as_json = client.post("/translate", json=body)
    as_form = client.post("/translate", data=body)
    as_multipart = client.post("/translate", files={k: (None, v) for k, v in body.items()})
    for response in (as_json, as_form, as_multipart):
        assert response.status_code == 200, response.text
        assert response.json() == {"translatedText": expected}


def test_a_list_of_texts_gives_a_list(client: TestClient, translator: Translator) -> None:
    texts = ["the cat sees the dog", "<b>a big</b> red house"]
    response = client.post(
        "/translate", json={"q": texts, "source": "en", "target": "de", "format": "html"}
    )
    assert response.status_code == 200, response.text
    got = response.json()["translatedText"]
    assert got == translate_text(translator, texts, format="html")
    assert got[1].count("<b>") == 1 and got[1].count("</b>") == 1


def test_alternatives_are_the_next_best(client: TestClient, translator: Translator) -> None:
    sentence = "the big dog sees a small red house"
    body = {"q": sentence, "source": "en", "target": "de", "alternatives": 2}
    answer = client.post("/translate", json=body).json()
    nbest = translator.translate_nbest([sentence], DecodingConfig(beam_size=4, nbest=3))[0]
    assert answer["translatedText"] == nbest[0].text
    assert answer["alternatives"] == [t.text for t in nbest[1:]]


def test_source_auto_is_detected(client: TestClient) -> None:
    response = client.post("/translate", data={"q": ENGLISH, "source": "auto", "target": "de"})
    assert response.status_code == 200, response.text
    detected = response.json()["detectedLanguage"]
    assert detected["language"] == "en" and detected["confidence"] > 50
    french = {"q": "Bonjour, ceci est un test de traduction.", "source": "auto", "target": "de"}
    assert error(client.post("/translate", data=french), 400) == "fr is not supported"


def test_languages_are_the_models(client: TestClient) -> None:
    for method in (client.get, client.post):
        assert method("/languages").json() == [
            {"code": "en", "name": "English", "targets": ["de"]},
            {"code": "de", "name": "German", "targets": []},
        ]


def test_detect(client: TestClient) -> None:
    found = client.post("/detect", data={"q": ENGLISH}).json()
    assert found[0]["language"] == "en" and 50 < found[0]["confidence"] <= 100
    assert [d["confidence"] for d in found] == sorted(
        (d["confidence"] for d in found), reverse=True
    )
    german = client.post("/detect", json={"q": "Das ist ein Satz, der auf Deutsch geschrieben ist"})
    assert german.json()[0]["language"] == "de"


def test_translate_file_and_download_it(client: TestClient, translator: Translator) -> None:
    text = "the cat sees the dog.\n\na big red house.\n"
    response = client.post(
        "/translate_file",
        data={"source": "en", "target": "de"},
        files={"file": ("notes.txt", text.encode(), "text/plain")},
    )
    assert response.status_code == 200, response.text
    url = response.json()["translatedFileUrl"]
    assert url.startswith("http://testserver/download_file/") and url.endswith(".notes.txt")
    download = client.get(url.removeprefix("http://testserver"))
    assert download.status_code == 200
    assert download.text == translate_text(translator, [text])[0]
    assert download.text.count("\n\n") == 1  # the blank line between paragraphs kept
    assert error(client.get("/download_file/..secret"), 400) == "Invalid filename"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"source": "en", "target": "de"}, "Invalid request: missing q parameter"),
        ({"q": [], "source": "en", "target": "de"}, "Invalid request: missing q parameter"),
        ({"q": "a", "target": "de"}, "Invalid request: missing source parameter"),
        ({"q": "a", "source": "en"}, "Invalid request: missing target parameter"),
        ({"q": "a", "source": "en", "target": "zz"}, "zz is not supported"),
        ({"q": "a", "source": "fr", "target": "de"}, "fr is not supported"),
        (
            {"q": "a", "source": "en", "target": "de", "format": "xml"},
            "xml format is not supported",
        ),
        (
            {"q": "a", "source": "en", "target": "de", "alternatives": "abc"},
            "Invalid request: alternatives parameter is not a number",
        ),
        (
            {"q": "<p>the <b>dog</p>", "source": "en", "target": "de", "format": "html"},
            "q[0]:1: not well-formed HTML",
        ),
    ],
)
def test_bad_requests_are_librestranslates_400(
    client: TestClient, body: dict[str, Any], message: str
) -> None:
    assert error(client.post("/translate", json=body), 400).startswith(message)


def test_errors_in_librestranslates_shape(client: TestClient) -> None:
    assert error(client.post("/translate", json=["not", "a", "dict"]), 400) == (
        "Invalid JSON format"
    )
    too_many = {"q": ["a"] * (LIMITS.max_texts + 1), "source": "en", "target": "de"}
    assert "the limit is 5" in error(client.post("/translate", json=too_many), 413)
    huge = {"q": "the cat sees the dog. " * 1000, "source": "en", "target": "de"}
    assert "the limit is 4,000" in error(client.post("/translate", json=huge), 413)
    deep = {"q": "a", "source": "en", "target": "de", "alternatives": 9}  # beam 10 > 6
    assert "beam size 10" in error(client.post("/translate", json=deep), 422)
    binary = client.post(
        "/translate_file",
        data={"source": "en", "target": "de"},
        files={"file": ("a.exe", b"MZ\x90\x00", "application/octet-stream")},
    )
    assert error(binary, 400) == "Invalid request: file format not supported"
    not_utf8 = client.post(
        "/translate_file",
        data={"source": "en", "target": "de"},
        files={"file": ("a.txt", b"caf\xe9", "text/plain")},
    )
    assert "a.txt is not UTF-8 text (byte 3)" in error(not_utf8, 400)
    no_file = client.post("/translate_file", data={"source": "en", "target": "de"})
    assert error(no_file, 400) == "Invalid request: missing file parameter"


def test_an_api_key_is_ignored_unless_keys_are_configured(
    client: TestClient, translator: Translator, trained_model_dir: Path
) -> None:
    body = {"q": "the cat", "source": "en", "target": "de", "api_key": "anything"}
    assert client.post("/translate", json=body).status_code == 200
    with client_for(translator, trained_model_dir, api_keys=["s3cret"]) as keyed:
        assert error(keyed.post("/translate", json=body), 403) == "Invalid API key"
        assert error(keyed.post("/detect", data={"q": "hello"}), 403) == "Invalid API key"
        good = keyed.post("/translate", json={**body, "api_key": "s3cret"})
        assert good.status_code == 200, good.text

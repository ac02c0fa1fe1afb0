"""The page at / in a real browser: Debian's Chromium driven by Playwright, against a real
`nmt serve` of the trained test model. It types, translates, checks the output against the
CLI's and the heatmap against the API's weights, hovers, and saves a
screenshot (docs/serve-page.png with NMT_UPDATE_SCREENSHOT=1)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import launched_chromium
from tests.serve.conftest import Server, cli_translate

# The README's figure is refreshed only on request (NMT_UPDATE_SCREENSHOT=1), so that running the
# tests leaves the working tree clean; otherwise the screenshot goes to the test's own folder.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "serve-page.png"
SENTENCE = "the big dog sees a small red house"
HEAD = 1  # the head the test picks (not the first: a page that always drew head 0 would pass)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launched_chromium()


def alpha(background: str) -> float:
    """The alpha of an inline ``rgba(r, g, b, a)`` background; 0 when there is none."""
    match = re.search(r"rgba\([^)]*,\s*([\d.]+)\)", background)
    return float(match.group(1)) if match else 0.0


def test_the_page_translates_and_shows_where_attention_looks(
    browser: Any, server: Server, trained_model_dir: Path, tmp_path: Path
) -> None:
    update_docs = os.environ.get("NMT_UPDATE_SCREENSHOT") == "1"
    screenshot = DOCS_SCREENSHOT if update_docs else tmp_path / "serve-page.png"
    expected = cli_translate(trained_model_dir, [SENTENCE], "--beam-size", "4")[0]
    api = httpx.post(
        f"{server.url}/v1/translate",
        json={"texts": [SENTENCE], "beam_size": 4, "attention": True},
        timeout=60,
    ).json()
    attention = api["translations"][0]["sentences"][0]["hypotheses"][0]["attention"]
    num_tgt, num_src = len(attention["tgt_pieces"]), len(attention["src_pieces"])
    last_layer = attention["weights"][-1]  # the page opens on the last layer

    page = browser.new_page(viewport={"width": 1000, "height": 900}, device_scale_factor=1)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{server.url}/")
    page.wait_for_function("document.getElementById('beam').options.length > 0")
    page.fill("#source", SENTENCE)
    page.select_option("#beam", "4")
    page.click("#translate")
    page.wait_for_selector("#heatmap rect.cell")

    # The output is the CLI's translation, word for word.
    assert expected
    assert page.inner_text("#output") == expected

    # Head 2: |target| × |source| cells, each the weight the API returned for that head.
    page.click(f'.thumb[data-head="{HEAD}"]')
    cells = page.eval_on_selector_all(
        "#heatmap rect.cell", "els => els.map(e => [+e.dataset.t, +e.dataset.s, +e.dataset.w])"
    )
    assert len(cells) == num_tgt * num_src
    assert {(t, s) for t, s, _ in cells} == {(t, s) for t in range(num_tgt) for s in range(num_src)}
    for t, s, w in cells:
        assert w == pytest.approx(last_layer[HEAD][t][s], abs=1e-3)

    # The mean over heads is the mean.
    page.click('.thumb[data-head="mean"]')
    for t, s, w in page.eval_on_selector_all(
        "#heatmap rect.cell", "els => els.map(e => [+e.dataset.t, +e.dataset.s, +e.dataset.w])"
    ):
        mean = sum(head[t][s] for head in last_layer) / len(last_layer)
        assert w == pytest.approx(mean, abs=1e-3)

    def shades(strip: str) -> list[float]:
        backgrounds = page.eval_on_selector_all(
            f"#{strip} .piece", "els => els.map(e => e.style.background)"
        )
        return [alpha(b) for b in backgrounds]

    # Hovering a target piece lights the source pieces it attends to, the strongest most.
    assert max(shades("src-strip")) == 0
    row = 1
    page.hover(f'#tgt-strip .piece[data-t="{row}"]')
    lit = shades("src-strip")
    assert len(lit) == num_src and max(lit) > 0
    mean_row = [sum(head[row][s] for head in last_layer) / len(last_layer) for s in range(num_src)]
    assert lit.index(max(lit)) == mean_row.index(max(mean_row))

    # And the reverse: hovering a source piece lights the target pieces that look at it.
    page.hover('#src-strip .piece[data-s="0"]')
    assert max(shades("tgt-strip")) > 0 and max(shades("src-strip")) == 0

    # The figure for the README, with a target piece hovered.
    page.hover(f'#tgt-strip .piece[data-t="{row}"]')
    partial = screenshot.with_name(f".{screenshot.name}.tmp.png")
    page.screenshot(path=str(partial), full_page=True)
    os.replace(partial, screenshot)
    assert screenshot.stat().st_size > 10_000  # a real page, not a blank

    # The n-best list on request: the beam's four hypotheses, the best first.
    page.check("#want-nbest")  # translates again, asking for nbest = beam size
    page.wait_for_function("document.querySelectorAll('#nbest li').length === 4")
    items = page.eval_on_selector_all("#nbest li", "els => els.map(e => e.firstChild.textContent)")
    assert items[0] == expected and len(set(items)) == 4

    # Offline: the page fetched nothing but its own server.
    assert requested and all(url.startswith(server.url) for url in requested), requested
    page.close()


def test_the_api_documentation_renders_offline(browser: Any, server: Server) -> None:
    """/docs is Swagger UI drawn from this server's own files: it lists the routes without a
    CDN (FastAPI's default page loads its scripts from one, and stayed blank offline)."""
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = page.eval_on_selector_all(
        ".opblock-summary-path", "els => els.map(e => e.textContent.trim())"
    )
    assert {"/v1/translate", "/health", "/v1/model"} <= set(paths), paths
    assert all(url.startswith(server.url) for url in requested), requested
    page.close()


PARAGRAPH = "the big dog sees a small red house. the cat eats.\n\na tree sees the dog!"
UNSURE = 0.6  # the page's threshold for an unsure word


def api(server: Server, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/v1/translate", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["translations"][0]  # type: ignore[no-any-return]


def word_probabilities(hypothesis: dict[str, Any]) -> list[float]:
    """Per word of the hypothesis, the least probability of its pieces (the page's rule); a
    lone word-start piece "▁" belongs to the word its next piece spells."""
    words: list[tuple[str, float]] = []
    for token in hypothesis["tokens"]:
        piece, prob = token["piece"], token["prob"]
        if piece == "</s>":
            continue
        if piece.startswith("▁") and not (words and words[-1][0] == ""):
            words.append((piece.removeprefix("▁"), prob))
        elif words:
            text, least = words[-1]
            words[-1] = (text + piece.removeprefix("▁"), min(least, prob))
        else:
            words.append((piece, prob))
    return [prob for text, prob in words if text]


def test_paragraphs_confidence_steering_and_the_search_tree(
    browser: Any, server: Server, tmp_path: Path
) -> None:
    expected = api(server, texts=[PARAGRAPH], beam_size=4, scores=True, trace=True)
    page = browser.new_page(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{server.url}/")
    page.wait_for_function("document.getElementById('beam').options.length > 0")
    page.fill("#source", PARAGRAPH)
    page.select_option("#beam", "4")
    page.check("#want-trace")
    page.click("#translate")
    page.wait_for_selector("#tree circle.node")

    # A paragraph in, the paragraph out: every sentence, the blank line kept.
    assert page.inner_text("#output") == expected["text"]
    assert len(expected["sentences"]) == 3 and "\n\n" in expected["text"]
    assert page.eval_on_selector_all("#sentence option", "els => els.length") == 3

    # Confidence: each word carries the probability the API gave it; the unsure ones marked.
    words = page.eval_on_selector_all(
        "#output .word", "els => els.map(e => [+e.dataset.p, e.classList.contains('unsure')])"
    )
    truth = [p for s in expected["sentences"] for p in word_probabilities(s["hypotheses"][0])]
    assert len(words) == len(truth) == len(expected["text"].split())
    for (shown, unsure), p in zip(words, truth, strict=True):
        assert shown == pytest.approx(p, abs=1e-4)
        assert unsure == (p < UNSURE)
    assert any(unsure for _, unsure in words) and not all(unsure for _, unsure in words)

    # The search tree of the first sentence: one node per traced hypothesis, and the thick
    # path ends in an ended node and spells the translation.
    trace = expected["sentences"][0]["trace"]
    traced = sum(len(step[kind]) for step in trace for kind in ("kept", "ended", "pruned"))
    assert page.eval_on_selector_all("#tree circle.node[data-step]", "els => els.length") == traced
    path = page.eval_on_selector_all(
        "#tree circle.node.best",
        "els => els.map(e => [+e.dataset.step, e.dataset.kind, e.dataset.piece])",
    )
    assert [step for step, _, _ in path] == list(range(len(path)))
    assert path[-1][1] == "ended" and all(kind == "kept" for _, kind, _ in path[:-1])
    spelled = "".join(piece for _, _, piece in path if piece != "</s>").replace("▁", " ")
    assert spelled.strip() == expected["sentences"][0]["text"]

    # Clicking the third sentence shows its search.
    page.click('#output .sentence[data-sentence="2"]')
    third = expected["sentences"][2]["trace"]
    traced = sum(len(step[kind]) for step in third for kind in ("kept", "ended", "pruned"))
    assert page.eval_on_selector_all("#tree circle.node[data-step]", "els => els.length") == traced

    # Steering: a prefix and a glossary term, as the API gives them.
    steered = api(
        server,
        texts=[PARAGRAPH],
        beam_size=4,
        prefix="ein klein",
        glossary=[{"source": "dog", "target": "baum"}],
    )
    assert steered["text"].startswith("ein klein") and "baum" in steered["text"]
    page.uncheck("#want-trace")
    page.click("#steering summary")
    page.fill("#prefix", "ein klein")
    page.fill("#glossary", "dog = baum")
    page.click("#translate")
    page.wait_for_function("document.getElementById('output').innerText.startsWith('ein klein')")
    assert page.inner_text("#output") == steered["text"]
    # The tree marks where the glossary steered the search: the term's pieces, and only those.
    assert page.is_hidden("#tree-terms")
    page.check("#want-trace")
    page.click("#translate")
    page.wait_for_selector("#tree circle.node.steered")
    marked = page.eval_on_selector_all(
        "#tree circle.node.steered", "els => els.map(e => e.dataset.piece)"
    )
    assert marked and all(piece.lstrip("▁") in "baum" for piece in marked)
    assert page.is_visible("#tree-terms")
    page.uncheck("#want-trace")
    page.fill("#glossary", "dog = ")  # an empty target: the server's 422, shown
    page.click("#translate")
    page.wait_for_selector("#error:not([hidden])")
    assert "glossary.0.target" in page.inner_text("#error")
    page.fill("#glossary", "")
    page.fill("#prefix", "")

    # HTML: tags come back around their words.
    fragment = "<p>the <b>big</b> dog sees a small red house.</p>"
    html = api(server, texts=[fragment], format="html", beam_size=4)
    page.select_option("#format", "html")
    page.fill("#source", fragment)
    page.click("#translate")
    page.wait_for_function("document.getElementById('output').innerText.includes('<b>')")
    assert page.inner_text("#output") == html["text"]

    # A file, through /translate_file: the page shows the translation and links to it.
    upload = tmp_path / "notes.txt"
    upload.write_text("the cat sees the dog.\n\na big red house.\n", encoding="utf-8")
    page.set_input_files("#file", str(upload))
    page.click("#translate-file")
    page.wait_for_selector("#file-link:not([hidden])")
    in_one = api(server, texts=[upload.read_text(encoding="utf-8")])
    assert page.inner_text("#output").strip() == in_one["text"].strip()
    link = page.get_attribute("#file-link", "href")
    assert link and link.startswith("/download_file/")
    assert httpx.get(f"{server.url}{link}", timeout=10).text == in_one["text"]

    assert requested and all(url.startswith(server.url) for url in requested), requested
    page.close()

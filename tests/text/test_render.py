"""A translated real page in a real browser: Chromium builds the same element tree from it as
from the original (the same tags in the same order and depth), and shows its text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nmt.config import DecodingConfig
from nmt.decoding.translator import Translator
from nmt.text.documents import Job
from nmt.text.documents import html as html_document
from tests.browser import launched_chromium

PAGE = Path(__file__).parent / "data" / "libffi-the-basics.html"
# Every element's tag and depth, in document order.
TREE = """[...document.querySelectorAll('*')].map(e => {
    let depth = 0;
    for (let p = e; p.parentElement; p = p.parentElement) depth++;
    return e.tagName + '@' + depth;
})"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launched_chromium()


def test_chromium_renders_the_translated_page_with_the_same_tree(
    browser: Any, trained_model_dir: Path, tmp_path: Path
) -> None:
    translator = Translator.load(trained_model_dir)
    job = Job("page.html", DecodingConfig(beam_size=1), "en", "de", progress=False)
    out, _ = html_document.translate(translator, PAGE.read_text(encoding="utf-8"), job)
    translated = tmp_path / "page.de.html"
    translated.write_text(out, encoding="utf-8")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    trees, texts = [], []
    for path in (PAGE, translated):
        page.goto(path.resolve().as_uri())
        trees.append(page.evaluate(TREE))
        texts.append(page.inner_text("body"))
    page.close()
    assert trees[0] == trees[1] and len(trees[0]) > 50
    assert texts[0] != texts[1] and len(texts[1].split()) > 100
    assert not errors

"""`make course`'s site, built from the fast-mode chapters, opened page by page in Chromium.
``NMT_COURSE_SITE=build/course-site`` checks a site already built instead (the full-mode one
`make course` writes): ``NMT_COURSE_SITE=build/course-site pytest tests/course/test_site.py``.

Every page must load without a console error, every image must have decoded, every link
within the site must name a file that exists, nothing may be fetched from the network (no CDN,
no web fonts), and the LaTeX must have been typeset (KaTeX, served with the site).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from tests.browser import launched_chromium


@pytest.fixture(scope="module")
def site(
    course_site: ModuleType,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    if built := os.environ.get("NMT_COURSE_SITE"):
        return Path(built).resolve()
    executed_chapters: dict[str, Any] = request.getfixturevalue("executed_chapters")
    notebooks = {name: nb for name, (nb, _) in executed_chapters.items()}
    broken = [name for name, nb in notebooks.items() if isinstance(nb, BaseException)]
    if broken:
        pytest.fail(f"chapters failed to execute: {', '.join(broken)}", pytrace=False)
    folder = tmp_path_factory.mktemp("course")
    course_site.write_sources(notebooks, folder / "src")
    course_site.build_site(folder / "src", folder / "site")
    return folder / "site"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launched_chromium()


def pages(site: Path) -> list[Path]:
    return sorted(p for p in site.glob("*.html") if p.name != "404.html")


def test_the_site_has_every_chapter_and_the_paper_map(site: Path) -> None:
    names = {p.stem for p in pages(site)}
    assert {"index", "paper-map"} <= names
    assert len([n for n in names if n[:2].isdigit()]) == 6, names


def test_every_page_loads_offline_with_images_links_and_math(site: Path, browser: Any) -> None:
    problems: list[str] = []
    typeset = 0
    for path in pages(site):
        page = browser.new_page()
        page.on(
            "console",
            lambda message, name=path.name: (
                problems.append(f"{name}: console {message.text}")
                if message.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error, name=path.name: problems.append(f"{name}: {error}"))
        page.on(
            "request",
            lambda request, name=path.name: (
                problems.append(f"{name}: fetched {request.url}")
                if not request.url.startswith(("file://", "data:", "blob:"))
                else None
            ),
        )
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_timeout(200)  # the load handlers (KaTeX) run
        broken_images = page.eval_on_selector_all(
            "img", "imgs => imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
        )
        problems.extend(f"{path.name}: broken image {src[:80]}" for src in broken_images)
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
            url = urlparse(href)
            if url.scheme == "file" and not Path(unquote(url.path)).exists():
                problems.append(f"{path.name}: broken link {href}")
        typeset += page.eval_on_selector_all(".katex", "els => els.length")
        page.close()
    assert not problems, "\n".join(problems)
    assert typeset > 20  # the chapters' formulas, typeset

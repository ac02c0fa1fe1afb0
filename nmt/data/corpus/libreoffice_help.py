"""LibreOffice help: the English and German HTML pages, aligned by paragraph ``id``.

Both languages are generated from the same XML help files, so every paragraph and heading carries
the same ``id`` (``par_id…``, ``hd_id…``) in both: the alignment is exact. Switches between
platforms or applications hold hidden variants of a phrase; the text keeps the ``default`` variant
and leaves the other hidden ones out (the page's script would hide them too). Code listings are
left out.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping

from nmt.data.corpus import debian
from nmt.data.corpus.debian import Deb
from nmt.data.corpus.html_pages import ElementParser
from nmt.data.corpus.source import Extracted, Source, align_pages, normalise

log = logging.getLogger(__name__)

EN_PACKAGE, DE_PACKAGE = "libreoffice-help-en-us", "libreoffice-help-de"
EN_ROOT, DE_ROOT = "usr/share/libreoffice/help/en-US/", "usr/share/libreoffice/help/de/"

PARAGRAPH_TAGS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6"})
PARAGRAPH_ID = re.compile(r"(?:par_id|hd_id|N\d)")
CODE_CLASSES = frozenset({"bascode", "pycode", "sqlcode", "code", "codeintable", "smathcode"})


class _ParagraphParser(ElementParser):
    """Collects the text of each paragraph that has an id, keyed by (id, occurrence)."""

    def __init__(self) -> None:
        super().__init__()
        self.paragraphs: dict[tuple[str, int], str] = {}
        self._seen: Counter[str] = Counter()
        self._code_depth: int | None = None  # stack depth of the code block we are in
        self._paragraph: tuple[str, int] | None = None
        self._paragraph_depth = 0
        self._hidden_depth: int | None = None  # stack depth of the hidden span we are in
        self._text: list[str] = []

    def opened(self, tag: str, attributes: dict[str, str | None], depth: int) -> None:
        classes = set((attributes.get("class") or "").split())
        if self._code_depth is None and classes & CODE_CLASSES:
            self._code_depth = depth
        element_id = attributes.get("id") or ""
        if self._paragraph is None:
            if tag in PARAGRAPH_TAGS and PARAGRAPH_ID.match(element_id):
                self._seen[element_id] += 1
                self._paragraph = (element_id, self._seen[element_id])
                self._paragraph_depth = depth
                self._text = []
        elif (
            self._hidden_depth is None
            and "hidden" in attributes
            and not element_id.startswith("default")
        ):
            self._hidden_depth = depth

    def closed(self, tag: str, depth: int) -> None:
        if self._hidden_depth == depth:
            self._hidden_depth = None
        if self._paragraph is not None and self._paragraph_depth == depth:
            if self._code_depth is None:
                self.paragraphs[self._paragraph] = normalise("".join(self._text))
            self._paragraph = None
        if self._code_depth == depth:
            self._code_depth = None

    def line_break(self) -> None:
        if self._paragraph is not None:
            self._text.append(" ")

    def handle_data(self, data: str) -> None:
        if self._paragraph is not None and self._hidden_depth is None:
            self._text.append(data)


def paragraphs(html: str) -> dict[tuple[str, int], str]:
    """Text of every paragraph and heading with an id, keyed by ``(id, occurrence)``."""
    parser = _ParagraphParser()
    parser.parse(html)
    return parser.paragraphs


def align_page(en_html: str, de_html: str) -> Extracted:
    """Pairs of paragraphs that carry the same id on both pages, in the English page's order."""
    en, de = paragraphs(en_html), paragraphs(de_html)
    out = Extracted()
    for key, en_text in en.items():
        de_text = de.get(key)
        if de_text is None:
            out.skipped["paragraphs: id only in English"] += 1
        elif en_text and de_text:
            out.pairs.append((en_text, de_text))
    out.skipped["paragraphs: id only in German"] += len(de.keys() - en.keys())
    return out


def extract(debs: Mapping[str, Deb]) -> Extracted:
    """Every aligned paragraph of every page that both languages have, pages sorted by path."""
    en_pages = debian.read_html_pages(debs[EN_PACKAGE], EN_ROOT)
    de_pages = debian.read_html_pages(debs[DE_PACKAGE], DE_ROOT)
    out = align_pages(en_pages, de_pages, align_page, missing="pages: only in English")
    out.skipped["pages: only in German"] += len(de_pages.keys() - en_pages.keys())
    log.info("LibreOffice help: %d pairs from %d pages", len(out.pairs), len(en_pages))
    return out


SOURCE = Source(
    name="LibreOffice help",
    packages=(EN_PACKAGE, DE_PACKAGE),
    licence="MPL-2.0",
    extract=extract,
)

"""The GIMP manual: English and German DocBook HTML pages, aligned block by block.

Both languages are built from the same DocBook sources, so the block elements (paragraphs,
headings, table headers, terms) come in the same document order. A page whose sequence of block
tags differs between the languages is skipped whole. The navigation header and footer and code
listings (``pre``) give no pairs. Paragraphs the translators have not done yet stand in English on
the German page; the recipe drops such pairs as untranslated. The packages are about 100 MB, mostly
screenshots: only the HTML files are read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from nmt.data.corpus import debian
from nmt.data.corpus.debian import Deb
from nmt.data.corpus.html_pages import VOID_TAGS, ElementParser
from nmt.data.corpus.source import Extracted, Source, align_pages, normalise

log = logging.getLogger(__name__)

EN_PACKAGE, DE_PACKAGE = "gimp-help-en", "gimp-help-de"
EN_ROOT, DE_ROOT = "usr/share/gimp/2.0/help/en/", "usr/share/gimp/2.0/help/de/"

HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
BLOCK_TAGS = HEADINGS | {"p", "dt", "th", "caption", "pre"}
SECTION_NUMBER = re.compile(r"^(?:\d+|[A-Z])(?:\.\d+)*\.\s+")  # "2.19.1. " before a heading
SKIPPED_CLASSES = frozenset({"navheader", "navfooter"})


class _BlockParser(ElementParser):
    """Collects ``(tag, text)`` of each outermost block element in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[tuple[str, str]] = []
        self._skip_depth: int | None = None  # depth of the navigation we are in
        self._block: str | None = None
        self._block_depth = 0
        self._text: list[str] = []

    def opened(self, tag: str, attributes: dict[str, str | None], depth: int) -> None:
        classes = set((attributes.get("class") or "").split())
        if self._skip_depth is None and classes & SKIPPED_CLASSES:
            self._skip_depth = depth
        if self._skip_depth is None and self._block is None and tag in BLOCK_TAGS:
            self._block, self._block_depth, self._text = tag, depth, []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID_TAGS:  # ``<a id="x"/>`` opens and closes at once
            return
        self.handle_starttag(tag, attrs)

    def closed(self, tag: str, depth: int) -> None:
        if self._block is not None and depth == self._block_depth:
            text = normalise("".join(self._text))
            if self._block in HEADINGS:
                text = SECTION_NUMBER.sub("", text, count=1)
            self.blocks.append((self._block, text))
            self._block = None
        if self._skip_depth == depth:
            self._skip_depth = None

    def line_break(self) -> None:
        if self._block is not None:
            self._text.append(" ")

    def handle_data(self, data: str) -> None:
        if self._block is not None:
            self._text.append(data)


def blocks(html: str) -> list[tuple[str, str]]:
    """``(tag, text)`` of every block of a page outside its navigation, in document order."""
    parser = _BlockParser()
    parser.parse(html)
    return parser.blocks


def align_page(en_html: str, de_html: str) -> Extracted:
    """Block pairs of a page, or none (counted) when the block sequences differ."""
    en, de = blocks(en_html), blocks(de_html)
    out = Extracted()
    if [tag for tag, _ in en] != [tag for tag, _ in de]:
        out.skipped["pages: block sequences differ"] += 1
        return out
    for (tag, en_text), (_, de_text) in zip(en, de, strict=True):
        if tag == "pre":
            out.skipped["blocks: code"] += 1
        else:
            out.pairs.append((en_text, de_text))
    return out


def extract(debs: Mapping[str, Deb]) -> Extracted:
    """Every aligned block of every page both languages have, pages sorted by name."""
    en_pages = debian.read_html_pages(debs[EN_PACKAGE], EN_ROOT)
    de_pages = debian.read_html_pages(debs[DE_PACKAGE], DE_ROOT)
    out = align_pages(en_pages, de_pages, align_page, missing="pages: only in English")
    log.info("GIMP manual: %d pairs from %d pages", len(out.pairs), len(en_pages))
    return out


SOURCE = Source(
    name="GIMP manual",
    packages=(EN_PACKAGE, DE_PACKAGE),
    licence="GFDL-1.2-or-later",
    extract=extract,
)

"""GNOME user help: Mallard pages in English (``C``) and German, aligned block by block.

The German pages are generated from the English ones (itstool), so their block elements
(``p``, ``title``, ``desc``, ``subtitle``) come in the same document order. A page whose
sequence of block tags differs between the languages is skipped whole. Blocks that are not
translated (ITS ``translate="no"``, editors' ``comment``s, ``revision`` notes) are left out on
both sides, and so are the translators' credits that only the German pages carry.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping

from nmt.data.corpus import debian
from nmt.data.corpus.debian import Deb
from nmt.data.corpus.source import Extracted, Source, align_pages, normalise

log = logging.getLogger(__name__)

PACKAGE = "gnome-user-docs"
HELP_DIR = "usr/share/help/"
EN_LANG, DE_LANG = "C", "de"

MALLARD = "{http://projectmallard.org/1.0/}"
ITS_TRANSLATE = "{http://www.w3.org/2005/11/its}translate"
BLOCKS = frozenset(f"{MALLARD}{tag}" for tag in ("p", "title", "desc", "subtitle"))
UNTRANSLATED = frozenset(f"{MALLARD}{tag}" for tag in ("comment", "revision", "credit"))
# How Yelp shows a key combination and a menu path: its parts joined.
SEQUENCES = {f"{MALLARD}keyseq": "+", f"{MALLARD}guiseq": " ▸ "}


def blocks(page: bytes) -> list[tuple[str, str]]:
    """``(tag, text)`` of every translatable block of a Mallard page, in document order."""
    root = ET.fromstring(page)
    return [(element.tag.removeprefix(MALLARD), text) for element, text in _walk(root, True)]


def _walk(element: ET.Element, translate: bool) -> Iterator[tuple[ET.Element, str]]:
    flag = element.get(ITS_TRANSLATE)
    if flag is not None:
        translate = flag == "yes"
    if element.tag in UNTRANSLATED:
        return
    if element.tag in BLOCKS and translate:
        yield element, normalise(text(element))
    for child in element:
        yield from _walk(child, translate)


def text(element: ET.Element) -> str:
    """An element's text with its children's, key and menu sequences joined as Yelp shows them."""
    joiner = SEQUENCES.get(str(element.tag))
    if joiner is not None:
        return joiner.join(text(child) for child in element)
    parts = [element.text or ""]
    for child in element:
        parts += [text(child), child.tail or ""]
    return "".join(parts)


def align_page(en_page: bytes, de_page: bytes) -> Extracted:
    """Block pairs of a page, or none (counted) when the block sequences differ."""
    out = Extracted()
    try:
        en, de = blocks(en_page), blocks(de_page)
    except ET.ParseError:
        out.skipped["pages: not well-formed XML"] += 1
        return out
    if [tag for tag, _ in en] != [tag for tag, _ in de]:
        out.skipped["pages: block sequences differ"] += 1
        return out
    out.pairs.extend((en_text, de_text) for (_, en_text), (_, de_text) in zip(en, de, strict=True))
    return out


def extract(debs: Mapping[str, Deb]) -> Extracted:
    """Every aligned block of every page both languages have, pages sorted by path."""
    files = debian.read_files(
        debs[PACKAGE].path, lambda p: p.startswith(HELP_DIR) and p.endswith(".page")
    )
    en_prefix, de_prefix = f"{HELP_DIR}{EN_LANG}/", f"{HELP_DIR}{DE_LANG}/"
    en_pages = {
        p.removeprefix(en_prefix): data for p, data in files.items() if p.startswith(en_prefix)
    }
    de_pages = {
        p.removeprefix(de_prefix): data for p, data in files.items() if p.startswith(de_prefix)
    }
    out = align_pages(en_pages, de_pages, align_page, missing="pages: not translated")
    log.info("GNOME help: %d pairs from %d pages", len(out.pairs), len(en_pages))
    return out


SOURCE = Source(
    name="GNOME user help",
    packages=(PACKAGE,),
    licence="CC-BY-SA-3.0",
    extract=extract,
)

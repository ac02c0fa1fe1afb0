"""What every source of parallel text offers the recipe, and the one text normalisation."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from nmt.data.corpus.debian import Deb

Pair = tuple[str, str]  # (English, German)


@dataclass
class Extracted:
    """The pairs a source yields, in a fixed order, and what it left out on the way.

    ``skipped`` counts by reason; each reason names its unit ("pages: macro sequences differ",
    "entries: not whole sentences"), since sources skip whole pages as well as single pairs.
    """

    pairs: list[Pair] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    def extend(self, other: Extracted) -> None:
        self.pairs.extend(other.pairs)
        self.skipped.update(other.skipped)


Page = TypeVar("Page", str, bytes)


def align_pages(
    en_pages: Mapping[str, Page],
    de_pages: Mapping[str, Page],
    align_page: Callable[[Page, Page], Extracted],
    *,
    missing: str,
) -> Extracted:
    """Align every English page with the German page of the same path, paths sorted; an
    English page without a German one is counted under ``missing``."""
    out = Extracted()
    for path in sorted(en_pages):
        if path in de_pages:
            out.extend(align_page(en_pages[path], de_pages[path]))
        else:
            out.skipped[missing] += 1
    return out


@dataclass(frozen=True)
class Source:
    """A source: its name, the packages it is read from, their licence, and its extractor."""

    name: str
    packages: tuple[str, ...]
    licence: str
    extract: Callable[[Mapping[str, Deb]], Extracted]


def normalise(text: str) -> str:
    """NFC, and every run of whitespace (newlines, tabs, no-break spaces) made one space."""
    return " ".join(unicodedata.normalize("NFC", text).split())

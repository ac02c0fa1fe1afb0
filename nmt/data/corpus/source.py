"""What every source of parallel text offers the recipe, and the one text normalisation."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

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

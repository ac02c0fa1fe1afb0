"""Ding, the German–English dictionary of TU Chemnitz: its example sentences.

A line reads ``DE | DE | … :: EN | EN | …``: the ``|`` parts correspond one to one (a headword,
its inflections, then examples of use), ``;`` separates alternatives within a part, and ``{f}``,
``[ugs.]``, ``<…>`` and ``/ABBR/`` are annotations. Only parts that are whole sentences on both
sides (capital start, final ``.``, ``!`` or ``?``) are kept: headwords and phrases are not.
Alternatives pair up by position where both sides have as many; otherwise the first with the
first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

from nmt.data.corpus import debian
from nmt.data.corpus.debian import Deb
from nmt.data.corpus.source import Extracted, Pair, Source, normalise
from nmt.errors import NmtError

log = logging.getLogger(__name__)

PACKAGE = "trans-de-en"
DICTIONARY = "usr/share/trans/de-en"

ANNOTATION = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|<[^<>]*>|(?<!\S)/[^/\s]+/(?!\S)")
SENTENCE = re.compile(r"""["'„“‘‚]?[A-ZÄÖÜ0-9].*[.!?]["'“”’]?""")
# Slash alternatives ("rise to/meet"), optional words in parentheses and gaps ("…") make poor
# references: dev and test take only sentences without them.
NOT_PLAIN = re.compile(r"[/()…]|\.\.\.")


def strip_annotations(text: str) -> str:
    """``Siehste! [ugs.]`` → ``Siehste!``; ``Herzindex {m} /HI/`` → ``Herzindex``."""
    return normalise(ANNOTATION.sub(" ", text))


def is_sentence(text: str) -> bool:
    """Capital (or digit, or opening quote) first, ``.``, ``!`` or ``?`` last."""
    return SENTENCE.fullmatch(text) is not None


def is_plain(pair: Pair) -> bool:
    """Neither side has slash alternatives, parentheses or gaps."""
    return not any(NOT_PLAIN.search(side) for side in pair)


def line_pairs(line: str) -> Extracted:
    """The sentence pairs of one dictionary line."""
    out = Extracted()
    if line.startswith("#") or " :: " not in line:
        return out
    de_part, _, en_part = line.partition(" :: ")
    de_entries, en_entries = de_part.split(" | "), en_part.split(" | ")
    if len(de_entries) != len(en_entries):
        out.skipped["lines: parts differ in number"] += 1
        return out
    for de_entry, en_entry in zip(de_entries, en_entries, strict=True):
        de_alternatives = _alternatives(de_entry)
        en_alternatives = _alternatives(en_entry)
        if not de_alternatives or not en_alternatives:
            continue
        if not all(map(is_sentence, de_alternatives + en_alternatives)):
            continue
        if len(de_alternatives) == len(en_alternatives):
            out.pairs.extend(zip(en_alternatives, de_alternatives, strict=True))
        else:
            out.pairs.append((en_alternatives[0], de_alternatives[0]))
            out.skipped["alternatives: unequal in number, only the first kept"] += (
                len(en_alternatives) + len(de_alternatives) - 2
            )
    return out


def _alternatives(entry: str) -> list[str]:
    stripped = (strip_annotations(alternative) for alternative in entry.split(";"))
    return [alternative for alternative in stripped if alternative]


def dictionary_pairs(lines: Iterable[str]) -> Extracted:
    """The sentence pairs of every line, in the dictionary's order."""
    out = Extracted()
    for line in lines:
        out.extend(line_pairs(line))
    return out


def extract(debs: Mapping[str, Deb]) -> Extracted:
    """The sentence pairs of the dictionary file."""
    deb = debs[PACKAGE]
    files = debian.read_files(deb.path, lambda p: p == DICTIONARY)
    if DICTIONARY not in files:
        raise NmtError(f"{deb.path}: has no {DICTIONARY}; has the package changed its layout?")
    out = dictionary_pairs(files[DICTIONARY].decode("utf-8").splitlines())
    log.info("Ding: %d sentence pairs", len(out.pairs))
    return out


SOURCE = Source(
    name="Ding example sentences",
    packages=(PACKAGE,),
    licence="GPL-2.0-or-later",
    extract=extract,
)

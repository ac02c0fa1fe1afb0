"""Glossaries: which target terms a sentence's translation must contain.

A glossary is a list of (source term, target term) pairs. In a file (``terms.tsv``) each line
holds a source term, a tab, the target term, and optionally a tab and a note for people (never
read by the search); blank lines and lines starting with ``#`` are skipped.

Matching, on the source sentence as given (detokenized text, not subwords):

- case-insensitive (``Dog`` matches ``dog``);
- whole words: a match is neither preceded nor followed by a letter, digit or underscore, so
  ``cat`` matches in ``the cat.`` and ``cat-like`` but not in ``category``; inside a term of
  several words any run of whitespace matches the term's space;
- inflection: the term's last word may carry an English plural or possessive ending (``s``,
  ``es``, ``'s``, ``'``, with ``'`` or ``’``), so ``dog`` matches ``dogs`` and ``dog's``. The
  target term is produced as written, uninflected: a glossary for a language whose nouns
  inflect should list the forms it wants as separate terms;
- a term counts once per sentence however often it occurs; where two terms' matches overlap,
  the longer match wins (``New York`` over ``York``), then the one listed first.

The target side becomes token ids with the model's own tokenizer (``encode_target``), as a
word of its own: SentencePiece marks a word start with ``▁`` and cuts each word apart from its
neighbours, so the ids of ``Hund`` alone are the ids of ``Hund`` inside ``der Hund bellt``.
A term attached to a neighbour without a space (``(Hund``, or inside a compound) would be cut
differently and is not what the search looks for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nmt.errors import NmtError

# The English plural and possessive endings a source term's last word may carry.
INFLECTION = r"(?:e?s|['’]s|['’])?"


@dataclass(frozen=True)
class Term:
    source: str
    target: str
    note: str = ""


def check_term(source: str, target: str) -> None:
    """A ValueError saying what is wrong with a term pair whose side is empty or blank."""
    for side, text in (("source", source), ("target", target)):
        if not text.strip():
            what = "empty" if not text else "only whitespace"
            raise ValueError(f"the {side} term is {what} (source {source!r}, target {target!r})")


def check_pairs(pairs: Sequence[tuple[str, str]]) -> None:
    """A ValueError naming the first pair (counting from 1) with an empty or blank term."""
    for number, (source, target) in enumerate(pairs, start=1):
        try:
            check_term(source, target)
        except ValueError as exc:
            raise ValueError(f"term {number}: {exc}") from None


def read_glossary(path: Path) -> list[Term]:
    """The terms of a TSV file (see the module docstring); bad lines are an NmtError naming the
    file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NmtError(f"{path}: glossary not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NmtError(f"{path}: cannot read the glossary ({exc})") from None
    terms = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        columns = line.split("\t")
        if len(columns) not in (2, 3):
            raise NmtError(
                f"{path}:{number}: {len(columns)} tab-separated columns, expected 2 or 3 "
                "(source term, target term, optional note)"
            )
        try:
            check_term(columns[0], columns[1])
        except ValueError as exc:
            raise NmtError(f"{path}:{number}: {exc}") from None
        terms.append(Term(columns[0].strip(), columns[1].strip(), *columns[2:]))
    return terms


def glossary_pairs(path: Path) -> list[tuple[str, str]]:
    """A TSV glossary as DecodingConfig's ``glossary`` holds it: (source, target) pairs."""
    return [(term.source, term.target) for term in read_glossary(path)]


def term_pattern(source: str) -> re.Pattern[str]:
    """The regular expression that finds ``source`` in a sentence (the module's policy)."""
    words = [re.escape(word) for word in source.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + INFLECTION + r"(?!\w)", re.IGNORECASE)


def find_terms(sentence: str, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs whose source term occurs in ``sentence``, in the order of their matches."""
    matches = []  # (start, end, listed, pair)
    for listed, pair in enumerate(pairs):
        for match in term_pattern(pair[0]).finditer(sentence):
            matches.append((match.start(), match.end(), listed, pair))
    # Longest match first (then the one listed first), each taking its characters for itself.
    matches.sort(key=lambda m: (m[0] - m[1], m[2]))
    taken: list[tuple[int, int]] = []
    found: dict[tuple[str, str], int] = {}
    for start, end, _, pair in matches:
        if any(start < t_end and t_start < end for t_start, t_end in taken):
            continue
        taken.append((start, end))
        found[pair] = min(found.get(pair, start), start)
    return sorted(found, key=found.__getitem__)


class TargetEncoder(Protocol):
    unk_id: int

    def encode_target(self, text: str) -> list[int]: ...


def target_ids(tokenizer: TargetEncoder, target: str) -> list[int]:
    """The ids the search must produce for ``target`` (see the module docstring)."""
    ids = tokenizer.encode_target(target.strip())
    if tokenizer.unk_id in ids:
        raise NmtError(
            f"glossary target term {target!r} holds characters the model's vocabulary lacks"
        )
    return ids


def contains(tokens: Sequence[int], phrase: Sequence[int]) -> bool:
    """Do ``tokens`` hold ``phrase`` as a contiguous run?"""
    n = len(phrase)
    return any(list(tokens[i : i + n]) == list(phrase) for i in range(len(tokens) - n + 1))

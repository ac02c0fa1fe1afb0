"""Glossaries: which target terms a sentence's translation must contain.

A glossary is a list of (source term, target term) pairs: DecodingConfig's ``glossary``
(nmt.config.GlossaryTerm), so it reaches search from the CLI (``--glossary terms.tsv``),
Python and the server's JSON alike. In a file (``terms.tsv``) each line
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

Each sentence's target terms become its constraints for beam search (nmt.decoding.constraints:
dynamic beam allocation). A sentence whose terms together need more tokens than its output may
have (``max_len_a``, ``max_len_b``, the model's positions) is an error naming the line; one whose
search reaches the limit before producing them all is translated without them, with a warning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

import torch
from torch import Tensor

from nmt.decoding.constraints import ConstrainedSelector
from nmt.decoding.search import max_lengths
from nmt.errors import NmtError

if TYPE_CHECKING:
    from nmt.config import DecodingConfig

log = logging.getLogger(__name__)
T = TypeVar("T", bound="TermLike")

# The English plural and possessive endings a source term's last word may carry.
INFLECTION = r"(?:e?s|['’]s|['’])?"


class TermLike(Protocol):
    """A glossary entry: this module's Term, or nmt.config.GlossaryTerm (the options' form)."""

    @property
    def source(self) -> str: ...

    @property
    def target(self) -> str: ...


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


def glossary_option(path: Path) -> list[dict[str, str]]:
    """A TSV glossary as DecodingConfig's ``glossary`` takes it (notes left out)."""
    return [{"source": term.source, "target": term.target} for term in read_glossary(path)]


def term_pattern(source: str) -> re.Pattern[str]:
    """The regular expression that finds ``source`` in a sentence (the module's policy)."""
    words = [re.escape(word) for word in source.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + INFLECTION + r"(?!\w)", re.IGNORECASE)


def find_terms(sentence: str, terms: Iterable[T]) -> list[T]:
    """The terms whose source occurs in ``sentence``, in the order of their first matches."""
    matches = []  # (start, end, listed, term)
    for listed, term in enumerate(terms):
        for match in term_pattern(term.source).finditer(sentence):
            matches.append((match.start(), match.end(), listed, term))
    # Longest match first (then the one listed first), each taking its characters for itself.
    matches.sort(key=lambda m: (m[0] - m[1], m[2]))
    taken: list[tuple[int, int]] = []
    first: dict[int, tuple[int, T]] = {}  # listed → (first start, term)
    for start, end, listed, term in matches:
        if any(start < t_end and t_start < end for t_start, t_end in taken):
            continue
        taken.append((start, end))
        if listed not in first or start < first[listed][0]:
            first[listed] = (start, term)
    return [term for _, term in sorted(first.values(), key=lambda found: found[0])]


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


@dataclass
class SentenceTerms:
    """The glossary terms found in one sentence, with the ids its translation must contain."""

    terms: list[TermLike]
    phrases: list[list[int]]
    limit: int | None = None
    """The most tokens the sentence's translation may have, once known."""


def sentence_terms(
    sentences: Sequence[str], terms: Sequence[TermLike], tokenizer: TargetEncoder
) -> list[SentenceTerms]:
    """Per sentence: the terms whose source it contains and their targets' ids."""
    ids: dict[str, list[int]] = {}
    found = []
    for sentence in sentences:
        matched = find_terms(sentence, terms) if sentence.strip() else []
        for term in matched:
            if term.target not in ids:
                ids[term.target] = target_ids(tokenizer, term.target)
        found.append(SentenceTerms(matched, [ids[term.target] for term in matched]))
    return found


def check_fits(terms: SentenceTerms, limit: int, line: int) -> None:
    """An NmtError if the terms cannot fit in an output of ``limit`` tokens."""
    for term, phrase in zip(terms.terms, terms.phrases, strict=True):
        if len(phrase) > limit:
            raise NmtError(
                f"line {line}: glossary term {term.source!r} → {term.target!r} takes "
                f"{len(phrase)} tokens, "
                f"more than the {limit} this line's translation may have (max_len_a, max_len_b)"
            )
    total = sum(len(phrase) for phrase in terms.phrases)
    if total > limit:
        raise NmtError(
            f"line {line}: its {len(terms.terms)} glossary terms take {total} tokens together, "
            f"more than the {limit} its translation may have (max_len_a, max_len_b)"
        )


def missing_targets(terms: SentenceTerms, tokens: Sequence[int]) -> list[str]:
    """The target terms whose ids ``tokens`` lack."""
    return [
        term.target
        for term, phrase in zip(terms.terms, terms.phrases, strict=True)
        if not contains(tokens, phrase)
    ]


def glossary_terms(
    sentences: Sequence[str],
    source_lengths: Sequence[int],
    options: DecodingConfig,
    tokenizer: TargetEncoder,
    *,
    max_len_cap: int | None,
    first_line: int,
) -> list[SentenceTerms] | None:
    """Per sentence, the terms of ``options.glossary`` it contains (None without a glossary),
    checked against each sentence's length limit (``source_lengths``: its source tokens,
    without EOS) before anything is translated: an NmtError names the first line they do not
    fit."""
    if not options.glossary:
        return None
    terms = sentence_terms(sentences, options.glossary, tokenizer)
    lengths = torch.tensor(source_lengths, dtype=torch.long)
    # max_lengths reads |X| from a source mask that holds the EOS too.
    src_mask = torch.arange(max(source_lengths, default=0) + 1) < (lengths + 1)[:, None]
    limits = max_lengths(src_mask, options.max_len_a, options.max_len_b, max_len_cap).tolist()
    for number, (found, limit) in enumerate(zip(terms, limits, strict=True)):
        found.limit = limit
        if found.phrases:
            check_fits(found, limit, first_line + number)
    return terms


def glossary_selector(
    terms: Sequence[SentenceTerms], eos: int, continuations: Tensor
) -> ConstrainedSelector | None:
    """Beam search's selector for a batch whose sentences have these ``terms``; None where none
    has any (plain beam search is faster). ``continuations``: the target pieces that continue a
    word (nmt.decoding.constraints.word_continuations), so that each term ends a word."""
    if not any(found.phrases for found in terms):
        return None
    limits = [found.limit for found in terms]
    assert None not in limits, "glossary_terms sets every limit"
    phrases = [found.phrases for found in terms]
    return ConstrainedSelector(phrases, cast(list[int], limits), eos, continuations)


def warn_missing(
    terms: Sequence[SentenceTerms], outputs: Sequence[Sequence[int]], first_line: int
) -> None:
    """Log each output (ids, one per sentence) that lacks a target term of its sentence: its
    search reached the length limit first."""
    for number, (found, tokens) in enumerate(zip(terms, outputs, strict=True)):
        if missing := missing_targets(found, tokens):
            log.warning(
                "line %d: the translation reached the length limit without the glossary's %s",
                first_line + number,
                ", ".join(repr(target) for target in missing),
            )

"""Sentences in, sentences out: where a text's sentences are, and how one too long is cut.

Sentences are found by sentencex (Wikimedia's splitter: rules and abbreviation lists for ~300
languages, maintained; pysbd's last release is from 2021), in the model's source language.
Only spans are returned: the whitespace between sentences, line breaks and blank lines stay in
the text, so that rejoining the translations in the same places keeps them.

A sentence the model cannot take whole (``fits`` says no) is cut after a clause boundary
(``,`` ``;`` ``:`` or a dash), as few times as needed; a clause still too long is cut between
words, and a word still too long between characters. Every piece is translated: nothing is
dropped or silently truncated.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

from sentencex import segment

Fits = Callable[[str], bool]

# Cut after a clause boundary, else after a word.
_BOUNDARIES = (re.compile(r"[,;:](?=\s)|\s[—–-](?=\s)"), re.compile(r"\S(?=\s)"))


def sentence_spans(text: str, *, language: str, split_lines: bool) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence in ``text``, in order, without surrounding whitespace.

    ``split_lines``: every line break also ends a sentence (plain text, where lines are kept
    as they are; in HTML a line break is only whitespace).
    """
    spans = []
    blocks = _line_spans(text) if split_lines else [(0, len(text))]
    for block_start, block_end in blocks:
        at = block_start
        # sentencex returns the text's own characters, in order: their lengths give the spans.
        for sentence in segment(language, text[block_start:block_end]):
            start, end = at, at + len(sentence)
            at = end
            stripped = sentence.strip()
            if stripped:
                lead = len(sentence) - len(sentence.lstrip())
                spans.append((start + lead, start + lead + len(stripped)))
        assert at == block_end, "sentencex changed the text"
    return spans


def _line_spans(text: str) -> list[tuple[int, int]]:
    spans, at = [], 0
    for line in text.splitlines(keepends=True):
        spans.append((at, at + len(line.rstrip("\r\n"))))
        at += len(line)
    return spans


def cut_to_fit(text: str, fits: Fits) -> list[int]:
    """Where to cut ``text`` (offsets, ascending) so that every piece fits; [] if it does.

    Pieces end after clause boundaries where possible; a clause too long is cut between
    words, a word too long between characters. The whitespace at a cut belongs to neither
    piece (see cut_pieces).
    """
    return _cut(text, 0, len(text), fits, level=0)


def _cut(text: str, start: int, end: int, fits: Fits, *, level: int) -> list[int]:
    if fits(text[start:end].strip()) or end - start <= 1:
        return []  # a single character that does not fit is left to the model's truncation
    if level < len(_BOUNDARIES):
        ends = [start + m.end() for m in _BOUNDARIES[level].finditer(text[start:end])]
    else:
        ends = list(range(start + 1, end))
    bounds = [start, *[e for e in ends if start < e < end], end]
    cuts: list[int] = []
    piece_start = start
    for unit_start, unit_end in itertools.pairwise(bounds):
        if fits(text[piece_start:unit_end].strip()):
            continue  # the piece grows by this unit
        if piece_start < unit_start:  # close the piece before this unit
            cuts.append(unit_start)
            piece_start = unit_start
        if not fits(text[unit_start:unit_end].strip()):  # the unit alone is too long
            cuts += _cut(text, unit_start, unit_end, fits, level=level + 1)
            if unit_end < end:
                cuts.append(unit_end)
            piece_start = unit_end
    return cuts


def cut_pieces(text: str, cuts: list[int]) -> list[str]:
    """The pieces of ``text`` between ``cuts``, whitespace at the cuts removed."""
    bounds = [0, *cuts, len(text)]
    pieces = [text[a:b].strip() for a, b in itertools.pairwise(bounds)]
    return [p for p in pieces if p]

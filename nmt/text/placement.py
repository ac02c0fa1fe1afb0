"""Putting tags and protected spans back among the target words, by word alignment.

A sentence's markers (tags, kept spans) cut its source words into slots: marker i lies between
slot i and slot i + 1. The target words are cut into as many slots, in the same order, so that
each target word lands in the slot of the source words it is aligned to, as far as the order
allows (a monotone alignment, solved exactly by dynamic programming over the alignment
weights). Markers never change order, so the output has the same tags nested the same way as
the input; only words move between them.

An accelerator mark (``_File``) is not a marker: it goes right before the target word that is
aligned most to the source word it marked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nmt.decoding.alignment import word_indices


@dataclass
class Marker:
    """Something written between words: ``text``, with the whitespace its source had around it."""

    text: str
    space_before: bool
    space_after: bool


def place(slot_of_word: list[int], num_markers: int, alignment: np.ndarray) -> list[int]:
    """For each marker, the number of target words before it (non-decreasing).

    ``slot_of_word[i]``: the slot of source word i; ``alignment`` (target words, source words).
    """
    num_tgt, num_src = alignment.shape
    num_slots = num_markers + 1
    # Ties (a word aligned nowhere, or nowhere the order allows) go to the slot at the same
    # relative position: a small prior, far below one aligned word.
    weights = alignment + 1e-3 * alignment_matrix(None, [], num_tgt, num_src)
    # gain[j, k]: how much target word j belongs in slot k.
    gain = np.zeros((num_tgt, num_slots))
    for i, slot in enumerate(slot_of_word):
        gain[:, slot] += weights[:, i]
    # best[k, j]: the best total with the first j target words in slots 0..k.
    best = np.full((num_slots, num_tgt + 1), -np.inf)
    best[0] = np.concatenate([[0.0], np.cumsum(gain[:, 0])])
    for k in range(1, num_slots):
        best[k, 0] = best[k - 1, 0]
        for j in range(1, num_tgt + 1):
            best[k, j] = max(best[k - 1, j], best[k, j - 1] + gain[j - 1, k])
    # Walk back: where did each slot begin?
    starts = [0] * num_slots
    j = num_tgt
    for k in range(num_slots - 1, 0, -1):
        while j > 0 and best[k, j] != best[k - 1, j]:
            j -= 1
        starts[k] = j
    return starts[1:]


def render(words: list[str], markers: list[Marker], positions: list[int]) -> str:
    """The target words with each marker before word ``positions[i]`` (at the end if that is
    ``len(words)``): one space between words; a marker glued to a neighbouring word where the
    source glued it to one, and to punctuation that closes (``.``, ``)``) or opens (``(``)."""
    out: list[str] = []
    previous: Marker | str | None = None
    at = 0
    for j in range(len(words) + 1):
        while at < len(markers) and positions[at] == j:
            marker = markers[at]
            if isinstance(previous, str):
                space = marker.space_before and not previous.endswith(_OPENING)
            else:
                space = previous is not None and (previous.space_after or marker.space_before)
            out.append(" " if space else "")
            out.append(marker.text)
            previous, at = marker, at + 1
        if j == len(words):
            break
        if isinstance(previous, Marker):
            out.append(" " if previous.space_after and not words[j].startswith(_CLOSING) else "")
        elif previous is not None:
            out.append(" ")
        out.append(words[j])
        previous = words[j]
    return "".join(out)


_CLOSING = tuple(".,;:!?)]}»”’…")
_OPENING = tuple("([{«“‘¿¡")


def alignment_matrix(
    pairs: list[tuple[int, int]] | None, tgt_pieces: list[str], num_tgt: int, num_src: int
) -> np.ndarray:
    """(target words, source words): 1 where a (source word, target word) pair is aligned
    (nmt.decoding.alignment); None (no attention, e.g. a recurrent model without it): each
    target word to the source word at the same relative position.

    The pairs count the words of the pieces; the detokenized text is split on whitespace into
    ``num_tgt`` words, which is the same count for SentencePiece models, and otherwise mapped
    by relative position.
    """
    matrix = np.zeros((num_tgt, num_src))
    if num_tgt == 0 or num_src == 0:
        return matrix
    if pairs is None:
        for j in range(num_tgt):
            matrix[j, min(int((j + 0.5) * num_src / num_tgt), num_src - 1)] = 1.0
        return matrix
    piece_words = max(word_indices(tgt_pieces), default=-1) + 1
    for src, tgt in pairs:
        row = tgt if piece_words == num_tgt else int((tgt + 0.5) * num_tgt / max(piece_words, 1))
        matrix[min(row, num_tgt - 1), min(src, num_src - 1)] = 1.0
    return matrix

"""Word alignments read off the model's cross-attention.

Which source piece did the decoder look at while writing each target piece? For each target
piece, the source piece with the most attention in the mean of the last decoder layer's heads,
the source's EOS column left out (a decoder parks attention there when no source word fits).
It needs no training and works for every model that has attention (the ensemble: its first
member's). A trained alignment head (Garg et al., 2019: one head supervised with fast_align's
alignments) is more accurate but must be trained for; docs/decoding.md says why nmt reads
attention instead. CTranslate2 returns the same mean when its conversion names every head of
the last layer as alignment heads (nmt.interop.ctranslate2 does).

Pairs are ``(source index, target index)``, 0-based, in Pharaoh order ("0-0 1-2"), first over
SentencePiece pieces, then lifted to whitespace words (a piece starting with "▁" starts a word).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from nmt.decoding.translator import Translation

WORD_START = "\u2581"  # SentencePiece's "▁": this piece begins a new word


def piece_alignment(weights: Tensor, num_src: int, num_tgt: int) -> list[tuple[int, int]]:
    """(source piece, target piece) pairs from attention ``weights`` (T, S) of one head or a
    mean of heads: each of the first ``num_tgt`` rows linked to its strongest of the first
    ``num_src`` columns (the EOS row and column that follow are left out)."""
    if num_src == 0 or num_tgt == 0:
        return []
    best = weights[:num_tgt, :num_src].argmax(dim=1)  # (num_tgt,)
    return [(int(s), t) for t, s in enumerate(best.tolist())]


def alignment_of(translation: Translation) -> list[tuple[int, int]]:
    """A translation's (source piece, target piece) alignment from the attention its model
    computed for it (``return_attention``), or the engine's own (``alignment``)."""
    if translation.alignment is not None:
        return translation.alignment
    if translation.attention is None:
        raise ValueError("no attention to align with: translate with return_alignment=True")
    last_layer = translation.attention[-1].float().mean(dim=0)  # (T, S)
    return piece_alignment(last_layer, len(translation.src_pieces), len(translation.tgt_pieces))


def word_indices(pieces: Sequence[str]) -> list[int]:
    """The whitespace word each piece belongs to (the first piece starts word 0)."""
    words, current = [], -1
    for i, piece in enumerate(pieces):
        if i == 0 or piece.startswith(WORD_START):
            current += 1
        words.append(current)
    return words


def word_alignment(
    pairs: Sequence[tuple[int, int]], src_pieces: Sequence[str], tgt_pieces: Sequence[str]
) -> list[tuple[int, int]]:
    """Piece pairs lifted to (source word, target word) pairs: two words are aligned when any
    of their pieces are. Sorted, without repeats."""
    src_words, tgt_words = word_indices(src_pieces), word_indices(tgt_pieces)
    return sorted({(src_words[s], tgt_words[t]) for s, t in pairs})


def pharaoh(pairs: Sequence[tuple[int, int]]) -> str:
    """Pharaoh format, as fast_align and Moses write it: "0-0 1-2 …"."""
    return " ".join(f"{s}-{t}" for s, t in pairs)


def word_alignment_of(translation: Translation) -> list[tuple[int, int]]:
    """A translation's (source word, target word) alignment (see :func:`alignment_of`)."""
    return word_alignment(alignment_of(translation), translation.src_pieces, translation.tgt_pieces)

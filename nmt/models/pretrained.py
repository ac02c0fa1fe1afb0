"""Embeddings initialised from pretrained word vectors (word2vec, GloVe, fastText text format).

The file (plain text, or gzip when it ends in .gz) is read as a stream, one ``word v1 … vd``
line at a time, after an optional ``count dim`` header (word2vec and fastText write one, GloVe
does not); only the rows of the vocabulary are kept, so a multi-gigabyte file costs no more
memory than the embedding itself, and reading stops once every piece has its exact word.

Vocabulary entries are SentencePiece pieces: a word-initial piece starts with "▁", which is
stripped to look the word up. A piece takes the vector of its exact word, or failing that of
its lowercase form. Rows found nowhere keep their initialisation; the padding row stays zero.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nmt.errors import NmtError

log = logging.getLogger(__name__)

WORD_START = "▁"  # SentencePiece's mark of a word-initial piece


@dataclass(frozen=True)
class PretrainedReport:
    """How much of a vocabulary a vectors file covered."""

    path: Path
    found: int  # rows set from the file
    total: int  # rows that could have been (the vocabulary less the padding row)

    def __str__(self) -> str:
        share = self.found / self.total if self.total else 0.0
        return f"{self.path}: {self.found} of {self.total} pieces found ({share:.1%})"


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a plain or gzip-compressed UTF-8 file, read lazily."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as stream:
            yield from enumerate(stream, start=1)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise NmtError(f"{path}: cannot read word vectors ({exc})") from None


def _is_header(first: str, rest: str) -> bool:
    """word2vec's and fastText's first line: "count dim"."""
    return first.isdigit() and rest.isdigit()


def _embedding_of(module: nn.Module) -> nn.Embedding:
    """``module`` itself if an nn.Embedding, else its one nn.Embedding (a scaling wrapper's)."""
    found = [m for m in module.modules() if isinstance(m, nn.Embedding)]
    if len(found) != 1:
        raise ValueError(f"{type(module).__name__} holds {len(found)} nn.Embedding, expected one")
    return found[0]


def load_pretrained_embeddings(
    embedding: nn.Module, pieces: list[str], path: Path
) -> PretrainedReport:
    """Copy the vectors of ``path`` into the rows of ``embedding`` whose piece (by id) they name.

    ``embedding`` is an nn.Embedding or a module wrapping exactly one (a scaled embedding).
    """
    embedding = _embedding_of(embedding)
    if len(pieces) != embedding.num_embeddings:
        raise ValueError(f"{len(pieces)} pieces for {embedding.num_embeddings} embedding rows")
    dim = embedding.embedding_dim
    # Lookup keys: word → rows, exact first (rank 0), then lowercase (rank 1).
    exact: dict[str, list[int]] = {}
    lower: dict[str, list[int]] = {}
    for row, piece in enumerate(pieces):
        word = piece.removeprefix(WORD_START)
        if row == embedding.padding_idx or not word:
            continue
        exact.setdefault(word, []).append(row)
        if word.lower() != word:
            lower.setdefault(word.lower(), []).append(row)
    total = len(pieces) - (embedding.padding_idx is not None)
    num_lookups = sum(map(len, exact.values()))  # the rows a word can be looked up for

    rank: dict[int, int] = {}  # row → rank of the match that set it
    vectors: dict[int, list[float]] = {}
    num_exact = 0
    dim_checked = False
    for number, line in _lines(path):
        word, _, rest = line.rstrip().partition(" ")
        if number == 1 and _is_header(word, rest):
            if int(rest) != dim:
                raise NmtError(f"{path}:1: vectors have dimension {rest}, the embedding {dim}")
            continue
        # Only the first vector (for its dimension) and the lines of wanted words are split:
        # most of a big file is skipped unread.
        if not word or (dim_checked and word not in exact and word not in lower):
            continue
        fields = rest.split(" ")
        if len(fields) != dim:
            raise NmtError(f"{path}:{number}: {len(fields)} values for {word!r}, expected {dim}")
        dim_checked = True
        try:
            values = [float(field) for field in fields]
        except ValueError as exc:
            raise NmtError(f"{path}:{number}: bad number ({exc})") from None
        for row in exact.get(word, []):
            if rank.get(row) != 0:  # an exact match replaces a lowercase one
                rank[row], vectors[row] = 0, values
                num_exact += 1
        for row in lower.get(word, []):
            if row not in rank:
                rank[row], vectors[row] = 1, values
        if num_exact == num_lookups:
            break  # every piece has its exact word: the rest of the file cannot change a thing

    if vectors:
        rows = torch.tensor(list(vectors), dtype=torch.long)
        table = torch.tensor(list(vectors.values()), dtype=embedding.weight.dtype)
        with torch.no_grad():
            # In place: a tied output layer or a shared embedding sees the same values.
            embedding.weight[rows.to(embedding.weight.device)] = table.to(embedding.weight.device)
    report = PretrainedReport(path=path, found=len(vectors), total=total)
    log.info("pretrained vectors: %s", report)
    return report


def load_pretrained_vectors(
    model: nn.Module, pieces: list[str], *, src_vectors: Path | None, tgt_vectors: Path | None
) -> list[PretrainedReport]:
    """Initialise ``model.src_embed`` / ``model.tgt_embed`` from the files given (any model
    family that has these two attributes). A shared embedding takes one file."""
    src = _embedding_of(model.get_submodule("src_embed"))
    tgt = _embedding_of(model.get_submodule("tgt_embed"))
    if src.weight is tgt.weight:
        if src_vectors and tgt_vectors and src_vectors != tgt_vectors:
            raise NmtError(
                f"source and target share one embedding: give one vectors file, "
                f"not {src_vectors} and {tgt_vectors}"
            )
        path = src_vectors or tgt_vectors
        return [] if path is None else [load_pretrained_embeddings(src, pieces, path)]
    reports = []
    for embedding, path in ((src, src_vectors), (tgt, tgt_vectors)):
        if path is not None:
            reports.append(load_pretrained_embeddings(embedding, pieces, path))
    return reports

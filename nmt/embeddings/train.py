"""`nmt embeddings train`: Word2Vec (skip-gram, CBOW) or FastText vectors with gensim.

Mikolov et al. 2013, *Efficient Estimation of Word Representations in Vector Space* (CBOW and
skip-gram) and Bojanowski et al. 2017, *Enriching Word Vectors with Subword Information*
(FastText: a word is the sum of its character n-grams, so even a word never seen has a vector).

The vectors are written in word2vec's text format (``count dim`` header, then ``word v1 … vd``),
which nmt.models.pretrained reads for ``model.src_vectors`` / ``model.tgt_vectors``. Words are
gensim's tokens (runs of letters, case kept): SentencePiece's word-initial pieces are looked up
by their word, so the two meet on whole words.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gensim.models import FastText, Word2Vec
from gensim.utils import tokenize

from nmt.durable import write_file_atomically
from nmt.embeddings.options import EmbeddingOptions, Method
from nmt.errors import NmtError

log = logging.getLogger(__name__)


def read_sentences(paths: Sequence[Path], *, lowercase: bool) -> list[list[str]]:
    """Every line of ``paths`` as gensim's tokens (letters only); an NmtError naming the file
    and line for a file that is missing or not UTF-8, or when there is no word at all."""
    sentences: list[list[str]] = []
    for path in paths:
        try:
            with open(path, "rb") as stream:  # bytes: a decoding error names its own line
                for number, raw in enumerate(stream, start=1):
                    try:
                        line = raw.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise NmtError(f"{path}:{number}: not UTF-8 ({exc.reason})") from None
                    words = list(tokenize(line, lowercase=lowercase))
                    if words:
                        sentences.append(words)
        except OSError as exc:
            raise NmtError(f"{path}: cannot read ({exc.strerror})") from None
    if not sentences:
        raise NmtError(f"{', '.join(map(str, paths))}: no words to train word vectors on")
    return sentences


def train_vectors(sentences: list[list[str]], options: EmbeddingOptions) -> Word2Vec | FastText:
    """A gensim model trained on ``sentences`` (its ``wv`` holds the vectors)."""
    common = dict(
        vector_size=options.dim,
        window=options.window,
        min_count=options.min_count,
        epochs=options.epochs,
        seed=options.seed,
        workers=options.workers,
        sg=0 if options.method == "cbow" else 1,
    )
    num_words = sum(map(len, sentences))
    most = Counter(word for sentence in sentences for word in sentence).most_common(1)[0][1]
    if most < options.min_count:
        raise NmtError(
            f"--min-count {options.min_count}: no word occurs that often "
            f"({num_words} words, the most frequent {most} times)"
        )
    log.info("training %s vectors (dim %d) on %d words", options.method, options.dim, num_words)
    model_class = FastText if options.method == "fasttext" else Word2Vec
    return model_class(sentences=sentences, **common)


@dataclass(frozen=True)
class EmbeddingsReport:
    output: Path
    num_words: int
    dim: int
    method: Method

    def __str__(self) -> str:
        return (
            f"wrote {self.num_words} {self.method} vectors of dimension {self.dim} to {self.output}"
        )


def train_embeddings(
    paths: Sequence[Path], output: Path, options: EmbeddingOptions
) -> EmbeddingsReport:
    """Train vectors on the text files ``paths`` and write them to ``output`` (word2vec text)."""
    model = train_vectors(read_sentences(paths, lowercase=options.lowercase), options)
    if output.is_dir():
        raise NmtError(f"{output}: is a folder; -o names the vectors file to write")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomically(output, lambda tmp: model.wv.save_word2vec_format(str(tmp)))
    except OSError as exc:
        raise NmtError(f"{output}: cannot write the vectors ({exc.strerror})") from None
    return EmbeddingsReport(output, len(model.wv), options.dim, options.method)

"""What `nmt embeddings train` can be asked for (apart from gensim, so that the CLI's parser
needs no gensim import)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nmt.errors import NmtError

Method = Literal["skipgram", "cbow", "fasttext"]
METHODS: tuple[Method, ...] = ("skipgram", "cbow", "fasttext")


@dataclass(frozen=True)
class EmbeddingOptions:
    """gensim's settings that matter here (its defaults otherwise)."""

    method: Method = "skipgram"
    dim: int = 256
    """Vector size: the model's embedding width (RNN embed_dim, Transformer d_model)."""
    window: int = 5
    min_count: int = 2
    epochs: int = 5
    lowercase: bool = False
    seed: int = 1
    workers: int = 1
    """One worker thread makes a run repeatable (gensim's threads race over the corpus)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise NmtError(f"--method: {self.method!r} is not one of {', '.join(METHODS)}")
        for name in ("dim", "window", "min_count", "epochs", "workers"):
            if getattr(self, name) < 1:
                flag = name.replace("_", "-")
                raise NmtError(f"--{flag}: must be at least 1, not {getattr(self, name)}")

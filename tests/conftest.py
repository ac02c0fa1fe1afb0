"""Shared fixtures: a tiny made-up parallel corpus and a tokenizer trained on it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from nmt.data.tokenizer import Tokenizer

WORDS = [
    "the",
    "a",
    "house",
    "cat",
    "dog",
    "sees",
    "big",
    "small",
    "red",
    "blue",
    "runs",
    "eats",
    "green",
    "tree",
]
GERMAN = dict(
    zip(
        WORDS,
        [
            "das",
            "ein",
            "haus",
            "katze",
            "hund",
            "sieht",
            "gross",
            "klein",
            "rot",
            "blau",
            "rennt",
            "isst",
            "gruen",
            "baum",
        ],
        strict=True,
    )
)


def write_toy_corpus(folder: Path, *, sizes: dict[str, int], seed: int = 0) -> Path:
    """A word-for-word 'English→German' corpus: learnable by a tiny model in seconds."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in sizes.items():
        src_lines, tgt_lines = [], []
        for _ in range(count):
            words = [rng.choice(WORDS) for _ in range(rng.randint(2, 8))]
            src_lines.append(" ".join(words))
            tgt_lines.append(" ".join(GERMAN[w] for w in words))
        (folder / f"{split}.en").write_text("\n".join(src_lines) + "\n", encoding="utf-8")
        (folder / f"{split}.de").write_text("\n".join(tgt_lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_corpus(
        tmp_path_factory.mktemp("toy"), sizes={"train": 2000, "dev": 50, "test": 50}
    )


@pytest.fixture(scope="session")
def toy_tokenizer(toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.model"
    return Tokenizer.train([toy_corpus / "train.en", toy_corpus / "train.de"], path, vocab_size=60)


@pytest.fixture(scope="session")
def trained_model_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A small post-LN Transformer trained on the toy corpus (tests/trained_model.py): a model
    directory shared by every test (and cached across sessions): read it, copy it to change it."""
    from tests.trained_model import cached_test_model

    # No cache with -p no:cacheprovider: then a model for this session only.
    cache = getattr(request.config, "cache", None)
    return cached_test_model(
        cache.mkdir("trained-test-model") if cache else tmp_path_factory.mktemp("trained"),
        write_corpus=lambda folder: write_toy_corpus(
            folder, sizes={"train": 2000, "dev": 50, "test": 50}
        ),
    )


@pytest.fixture
def every_layer_int8(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--int8`` on every linear layer of the small test models: by default layers narrower
    than 512 (all of theirs) stay float32 (nmt.models.quantize.worth_quantizing)."""
    from nmt.models import quantize

    monkeypatch.setattr(quantize, "MIN_WIDTH", 0)

"""A small Transformer trained by nmt's own loop on the toy corpus: the shared trained test model.

Tests that compare two ways of decoding the same weights (nmt against CTranslate2, float32
against int8, nmt against Marian/Hugging Face, the server against the CLI) need a model whose
outputs mean something: a random model's translations are empty or one repeated token, so
"identical outputs" would prove little. This one learns the word-for-word toy language of
tests/conftest.py in a few seconds and then translates it into several pieces per sentence.

The shape is the paper's Transformer (sinusoidal positions, post-LN, tied embeddings) at toy
size; a fixed seed and a fixed number of updates make it the same model on every run of the
same code. It is cached across test sessions (in pytest's cache folder) under a fingerprint of
its recipe (this file, the toy corpus's files, torch's version) and reused while nmt still
loads it: its users compare two decoders of the same weights, so a model trained by a slightly
older training loop serves them as well, and retraining on every change of nmt's code would
cost every test session minutes on a busy machine. A model nmt no longer loads is retrained.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from nmt.config import config_from_dict
from nmt.durable import replace_dir
from nmt.errors import NmtError
from nmt.models.store import load_model_dir
from nmt.training.train import train

# Enough updates for dev BLEU above 80 (with mistakes left, so searches have real choices); about
# 20 s on 2 quiet CPU cores.
TRAIN_STEPS = 200


def trained_model_config(corpus: Path, run_dir: Path) -> dict[str, object]:
    """The config tree of the trained test model (see the module docstring)."""
    return {
        "data": {"dir": str(corpus), "vocab_size": 60, "max_len": 64},
        "model": {
            "arch": "transformer",
            "num_layers": 2,
            "d_model": 64,
            "d_ff": 256,
            "num_heads": 4,
            "dropout": 0.0,
            "positions": "sinusoidal",
            "norm": "post",
            "max_positions": 128,
        },
        "training": {
            "run_dir": str(run_dir),
            "seed": 1,
            "max_tokens": 1000,
            "max_steps": TRAIN_STEPS,
            "schedule": {"kind": "peak", "warmup_steps": 40, "peak_lr": 4e-3},
            "log_every": TRAIN_STEPS,
            "valid_every": TRAIN_STEPS,
            "valid_max_sentences": 10,
            "save_every": TRAIN_STEPS,
            "keep_last": 1,
            "best_metric": "loss",
            "progress": False,
        },
        "decoding": {"beam_size": 4},
    }


def train_test_model(corpus: Path, run_dir: Path) -> Path:
    """Train the test model on ``corpus`` (toy ``{train,dev}.{en,de}``); return its model dir."""
    config = config_from_dict(trained_model_config(corpus, run_dir), source="trained test model")
    train(config)
    return run_dir / "best"


def recipe_fingerprint(corpus: Path) -> str:
    """A digest of the recipe: this file, the corpus's files and torch's version."""
    digest = hashlib.sha256(torch.__version__.encode())
    for path in [Path(__file__), *sorted(corpus.iterdir())]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def loads(model_dir: Path) -> bool:
    """Does today's nmt load this model directory?"""
    try:
        load_model_dir(model_dir)
    except NmtError:
        return False
    return True


def cached_test_model(cache_root: Path, *, write_corpus: Callable[[Path], Path]) -> Path:
    """The trained test model's directory under ``cache_root``, trained first if not cached.

    ``write_corpus(folder)`` writes the toy corpus there and returns it (its files are part of
    the cache key). The directory is shared: treat it as read-only and copy it before changing
    anything in it.
    """
    cache_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_root, prefix=".training-") as tmp:
        corpus = write_corpus(Path(tmp) / "corpus")
        model_dir = cache_root / f"model-{recipe_fingerprint(corpus)}"
        if loads(model_dir):
            return model_dir
        best = train_test_model(corpus, Path(tmp) / "run")
        if model_dir.exists():
            replace_dir(best, model_dir)  # one today's nmt no longer loads
        else:
            try:
                os.rename(best, model_dir)
            except OSError:
                # Another test session finished the same model first: keep that one.
                if not loads(model_dir):
                    raise
    return model_dir

"""What every chapter of the course shares: its mode, its corpus and a small training run.

``NMT_COURSE_FAST=1`` (what ``make test`` sets) runs a chapter in seconds: a synthetic corpus
and a few updates, enough to execute every cell. Without it a chapter uses the real corpus
(``data/de-en``, built by ``nmt data fetch de-en --dir data/de-en``) and training budgets sized
to finish the chapter in about 3 minutes on a 2-core CPU; its outputs are the published ones.

Every model here is trained by nmt's own ``train`` from a config tree, as ``nmt train`` would.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display
from matplotlib.figure import Figure

from nmt.config import config_from_dict
from nmt.data.tokenizer import TOKENIZER_FILE
from nmt.experiments.table3 import install_tokenizer
from nmt.training.train import train

FAST = os.environ.get("NMT_COURSE_FAST") == "1"
ROOT = Path(__file__).resolve().parent.parent
REAL_CORPUS = ROOT / "data" / "de-en"

# The toy language of the tests (tests/conftest.py), larger: English words and their German.
GERMAN = {
    "the": "das",
    "a": "ein",
    "house": "haus",
    "cat": "katze",
    "dog": "hund",
    "sees": "sieht",
    "big": "gross",
    "small": "klein",
    "red": "rot",
    "blue": "blau",
    "runs": "rennt",
    "eats": "isst",
    "green": "gruen",
    "tree": "baum",
    "bird": "vogel",
    "fish": "fisch",
    "car": "auto",
    "road": "strasse",
    "old": "alt",
    "new": "neu",
    "sleeps": "schlaeft",
    "jumps": "springt",
    "near": "nah",
    "far": "fern",
    "river": "fluss",
    "town": "stadt",
}
WORDS = list(GERMAN)


def start(seed: int = 0) -> None:
    """Seed torch and choose its threads: one in fast mode (tests run beside other work, where
    two threads a process contend for the cores: 12x slower a step, measured on a busy 2-core
    machine), else ``NMT_COURSE_THREADS`` or torch's default."""
    torch.manual_seed(seed)
    threads = os.environ.get("NMT_COURSE_THREADS", "1" if FAST else "")
    if threads:
        torch.set_num_threads(int(threads))
    print(f"{'fast' if FAST else 'full'} mode, {torch.get_num_threads()} torch threads")


def show(figure: Figure) -> None:
    """Display a figure in the notebook as a PNG, then close it. (Not plt.show: nmt's training
    switches matplotlib to its file-only backend to plot learning curves, after which the
    notebook no longer draws figures by itself.)"""
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    display(Image(data=png.getvalue(), format="png"))


def workdir(name: str) -> Path:
    """An empty folder for a chapter's runs: under runs/course in full mode (kept for a look
    afterwards), a temporary one in fast mode."""
    if FAST:
        return Path(tempfile.mkdtemp(prefix=f"nmt-course-{name}-"))
    folder = ROOT / "runs" / "course" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def toy_corpus(
    folder: Path,
    *,
    sizes: dict[str, int],
    lengths: tuple[int, int] = (2, 8),
    reverse: bool = False,
    seed: int = 0,
) -> Path:
    """A word-for-word toy 'English→German' corpus (German word order reversed if ``reverse``):
    ``{split}.{en,de}`` for each split of ``sizes``."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in sizes.items():
        src, tgt = [], []
        for _ in range(count):
            words = [rng.choice(WORDS) for _ in range(rng.randint(*lengths))]
            src.append(" ".join(words))
            translated = [GERMAN[w] for w in words]
            tgt.append(" ".join(reversed(translated) if reverse else translated))
        (folder / f"{split}.en").write_text("\n".join(src) + "\n", encoding="utf-8")
        (folder / f"{split}.de").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    return folder


def real_corpus() -> Path:
    """The English–German corpus of ``nmt data fetch de-en``; a clear error when missing."""
    if not (REAL_CORPUS / "train.en").is_file():
        raise FileNotFoundError(
            f"{REAL_CORPUS}: no corpus; build it with `nmt data fetch de-en --dir {REAL_CORPUS}`"
            " or run the course in fast mode (NMT_COURSE_FAST=1)"
        )
    return REAL_CORPUS


def corpus(folder: Path) -> Path:
    """The chapter's parallel corpus: the real one, or in fast mode a toy one in ``folder``."""
    if FAST:
        return toy_corpus(folder / "toy", sizes={"train": 600, "dev": 40, "test": 40})
    return real_corpus()


def train_model(
    run_dir: Path,
    data_dir: Path,
    model: dict[str, Any],
    *,
    steps: int,
    minutes: float | None = None,
    peak_lr: float = 3e-3,
    warmup: int = 50,
    vocab_size: int = 8000,
    max_tokens: int = 2000,
    data: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    tokenizer_from: Path | None = None,
) -> Path:
    """Train ``model`` (a config's model section) on ``data_dir`` with nmt's loop for ``steps``
    updates (or ``minutes`` of training, whichever comes first); return its model directory.
    ``tokenizer_from``: a run folder whose tokenizer this run shares (trained once, as `nmt
    experiment table3` shares one across its cells), instead of training its own."""
    if tokenizer_from is not None:
        install_tokenizer(tokenizer_from / TOKENIZER_FILE, run_dir)
    tree = {
        "data": {"dir": str(data_dir), "vocab_size": vocab_size, "max_len": 100, **(data or {})},
        "model": model,
        "training": {
            "run_dir": str(run_dir),
            "seed": 1,
            "max_tokens": max_tokens,
            "max_steps": steps,
            "max_minutes": minutes,
            "schedule": {"kind": "peak", "warmup_steps": warmup, "peak_lr": peak_lr},
            "clip_norm": 1.0,
            "log_every": max(steps // 4, 1),
            "valid_every": steps,
            "valid_max_sentences": 50,
            "save_every": steps,
            "keep_last": 1,
            "best_metric": "loss",
            "progress": False,
            **(training or {}),
        },
    }
    train(config_from_dict(tree, source=f"course run {run_dir.name}"))
    return run_dir / "best"

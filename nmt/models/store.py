"""Model directories: what it takes to translate, with no pickled code anywhere.

A model directory holds ``config.yaml`` (the resolved config the model was built from),
``tokenizer.model`` (SentencePiece) and ``model.safetensors`` (weights). Every checkpoint of a
run, its best model and the output of ``nmt average`` are model directories.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from nmt.config import Config, load_config
from nmt.data.tokenizer import TOKENIZER_FILE, Tokenizer
from nmt.errors import NmtError
from nmt.models.build import build_model
from nmt.models.interface import TranslationModel

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_weights(model: nn.Module, path: Path) -> None:
    """Weights to safetensors, atomically; tied weights are stored once."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_model(model, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_weights(model: nn.Module, path: Path) -> None:
    """Load safetensors weights into ``model``; refuse a corrupt file or another model's."""
    try:
        load_model(model, str(path), strict=True)
    except FileNotFoundError:
        raise NmtError(f"{path}: weights not found") from None
    except (SafetensorError, OSError) as exc:
        raise NmtError(f"{path}: corrupt or unreadable weights ({exc})") from None
    except RuntimeError as exc:
        raise NmtError(
            f"{path}: weights do not fit the model of its config.yaml "
            f"(from another config?): {str(exc).splitlines()[0]}"
        ) from None


def write_model_dir(
    out_dir: Path, *, config: Config, tokenizer_path: Path, model: nn.Module
) -> None:
    """Write a complete model directory in a temporary sibling, then rename it into place."""
    from nmt.config import config_to_yaml

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        (tmp / CONFIG_FILE).write_text(config_to_yaml(config), encoding="utf-8")
        shutil.copyfile(tokenizer_path, tmp / TOKENIZER_FILE)
        save_model(model, str(tmp / WEIGHTS_FILE))
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(src: Path, dst: Path) -> None:
    """Move a finished directory to ``dst``, replacing an older one (renamed away first)."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@dataclass
class LoadedModel:
    model: TranslationModel
    config: Config
    tokenizer: Tokenizer


def resolve_model_dir(path: Path) -> Path:
    """A model directory, or a run directory (whose best model is then used)."""
    if (path / WEIGHTS_FILE).is_file():
        return path
    if (path / "best" / WEIGHTS_FILE).is_file():
        return path / "best"
    if not path.exists():
        raise NmtError(f"{path}: no such model directory")
    raise NmtError(
        f"{path}: not a model directory (no {WEIGHTS_FILE}) nor a run directory with a best model"
    )


def load_model_dir(path: Path | str, *, device: str = "cpu") -> LoadedModel:
    """Rebuild a model from a directory's config alone and load its weights (eval mode)."""
    path = resolve_model_dir(Path(path))
    config = load_config(path / CONFIG_FILE)
    tokenizer = Tokenizer.load(path / TOKENIZER_FILE)
    model = build_model(config.model, tokenizer.vocab_size)
    load_weights(model, path / WEIGHTS_FILE)
    model.to(torch.device(device)).eval()
    return LoadedModel(model=model, config=config, tokenizer=tokenizer)

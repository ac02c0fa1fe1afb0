"""Model directories: what it takes to translate, with no pickled code anywhere.

A model directory holds ``config.yaml`` (the resolved config the model was built from),
``tokenizer.model`` (SentencePiece; an imported Marian model has ``source.spm``, ``target.spm``
and ``vocab.json`` instead, see nmt.data.tokenizer) and ``model.safetensors`` (weights, whose
metadata carries the architecture they were trained with). Every checkpoint of a run, its best
model and the output of ``nmt average`` are model directories.

Every file and directory is published the same way: written under a temporary name, flushed to
the disk (fsync), renamed into place, and the rename itself flushed (fsync of the parent
directory), so that a kill or a power cut leaves the old version or the new, never half of one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from nmt.config import Config, ModelConfig, config_to_yaml, load_config
from nmt.data.tokenizer import Tokenizer, copy_tokenizer, load_tokenizer
from nmt.device import check_device
from nmt.durable import directory_written_atomically
from nmt.errors import NmtError
from nmt.models.build import build_model
from nmt.models.interface import TranslationModel

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
# A checkpoint is a model directory with the trainer's state beside (nmt.training.checkpoint);
# the server reads the step from it.
TRAINER_FILE = "trainer.json"
# The safetensors metadata key holding the architecture the weights belong to.
ARCHITECTURE_KEY = "nmt.architecture"
# Model-config fields that change no shape and no computation at inference time.
NOT_ARCHITECTURE = frozenset({"preset", "dropout", "src_vectors", "tgt_vectors"})


def architecture(config: ModelConfig) -> dict[str, object]:
    """The model-config fields that fix the weights' meaning (heads, norms, positions, ...)."""
    fields = config.model_dump(mode="json")
    return {k: v for k, v in fields.items() if k not in NOT_ARCHITECTURE}


def save_model_weights(model: nn.Module, path: Path, *, config: ModelConfig) -> None:
    """Weights to safetensors (tied weights stored once), with ``config``'s architecture in the
    metadata, so that a config edited afterwards cannot silently reinterpret them."""
    metadata = {ARCHITECTURE_KEY: json.dumps(architecture(config), sort_keys=True)}
    save_model(model, str(path), metadata=metadata)


def check_architecture(path: Path, config: ModelConfig) -> None:
    """Refuse weights saved for another architecture than ``config``'s (e.g. other num_heads:
    the shapes fit, the function does not). Weights without the record are not checked."""
    try:
        with safe_open(str(path), framework="pt") as f:
            stored_text = (f.metadata() or {}).get(ARCHITECTURE_KEY)
    except FileNotFoundError:
        raise NmtError(f"{path}: weights not found") from None
    except (SafetensorError, OSError) as exc:
        raise NmtError(f"{path}: corrupt or unreadable weights ({exc})") from None
    if stored_text is None:
        return
    stored = json.loads(stored_text)
    current = architecture(config)
    # Fields added to the config after the weights were saved are not in the record.
    differ = [k for k in stored if k in current and stored[k] != current[k]]
    if differ:
        changes = ", ".join(f"{k} {current[k]!r} (trained with {stored[k]!r})" for k in differ)
        raise NmtError(
            f"{path}: config.yaml describes another architecture than these weights: {changes}"
        )


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
    """Write a complete model directory in a temporary sibling, then rename it into place.

    A failed write (a full disk, a file-size limit, no permission) leaves ``out_dir`` as it was
    and nothing temporary behind, and says why in an NmtError.
    """
    if out_dir.exists() and not (
        out_dir.is_dir() and (not any(out_dir.iterdir()) or (out_dir / CONFIG_FILE).is_file())
    ):
        # Replacing it would delete whatever it is: only a model directory is ever replaced.
        raise NmtError(f"{out_dir}: exists and is not a model directory; choose another output")
    with directory_written_atomically(
        out_dir, what="the model directory", write_errors=(OSError, SafetensorError)
    ) as tmp:
        (tmp / CONFIG_FILE).write_text(config_to_yaml(config), encoding="utf-8")
        # The tokenizer's files: tokenizer.model, or an imported model's source/target pair
        # (source.spm, target.spm, vocab.json) found beside ``tokenizer_path``.
        copy_tokenizer(tokenizer_path.parent, tmp)
        save_model_weights(model, tmp / WEIGHTS_FILE, config=config.model)


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
    target = check_device(device)
    path = resolve_model_dir(Path(path))
    config = load_config(path / CONFIG_FILE)
    tokenizer = load_tokenizer(path)
    model = build_model(config.model, tokenizer.vocab_size)
    check_architecture(path / WEIGHTS_FILE, config.model)
    load_weights(model, path / WEIGHTS_FILE)
    model.to(target).eval()
    return LoadedModel(model=model, config=config, tokenizer=tokenizer)

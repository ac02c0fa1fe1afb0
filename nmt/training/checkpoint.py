"""Checkpoints that survive a crash and resume a run exactly.

A checkpoint is a directory ``RUN/checkpoints/step-NNNNNNNN/``: a complete model directory
(config.yaml, tokenizer.model, model.safetensors) plus ``optimizer.safetensors`` (Adam's moments
and the random-number generators' states) and ``trainer.json`` (step, data position, best score,
the optimizer's hyper-parameters). Nothing is pickled. A checkpoint is written into a temporary
directory and renamed into place, so a kill at any moment leaves either the whole checkpoint or
none of it.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file, save_model
from torch import nn

from nmt.config import Config, config_to_yaml
from nmt.data.tokenizer import TOKENIZER_FILE
from nmt.errors import NmtError
from nmt.models.store import CONFIG_FILE, WEIGHTS_FILE, load_weights, replace_dir

log = logging.getLogger(__name__)

OPTIMIZER_FILE = "optimizer.safetensors"
TRAINER_FILE = "trainer.json"
PREFIX = "step-"


@dataclass
class TrainerState:
    """Where training stands: everything besides tensors that resume needs."""

    step: int = 0  # updates done
    epoch: int = 0  # data position: epoch of the next batch …
    batch_in_epoch: int = 0  # … and its index in that epoch's batch order
    elapsed_seconds: float = 0.0  # training time so far, validation excluded
    target_tokens: int = 0
    best_score: float | None = None
    best_step: int | None = None
    validations_without_improvement: int = 0


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Finished checkpoints, oldest first (temporary directories start with a dot)."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and p.is_dir())


def _rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    return tensors


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], Any]:
    state = optimizer.state_dict()
    tensors = {
        f"state.{index}.{name}": value.contiguous()
        for index, entry in state["state"].items()
        for name, value in entry.items()
    }
    return tensors, state["param_groups"]


def save_checkpoint(
    run_dir: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer: TrainerState,
    config: Config,
    keep_last: int,
) -> Path:
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{trainer.step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}."))
    try:
        (tmp / CONFIG_FILE).write_text(config_to_yaml(config), encoding="utf-8")
        shutil.copyfile(run_dir / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        save_model(model, str(tmp / WEIGHTS_FILE))
        tensors, param_groups = _optimizer_tensors(optimizer)
        save_file({**tensors, **_rng_tensors()}, str(tmp / OPTIMIZER_FILE))
        record = {"trainer": asdict(trainer), "param_groups": param_groups}
        (tmp / TRAINER_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in checkpoint_dirs(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer
) -> TrainerState:
    """Restore weights, optimizer and RNG states in place; return the trainer state."""
    load_weights(model, path / WEIGHTS_FILE)
    try:
        record = json.loads((path / TRAINER_FILE).read_text(encoding="utf-8"))
        tensors = load_file(str(path / OPTIMIZER_FILE))
        trainer = TrainerState(**record["trainer"])
    except (OSError, json.JSONDecodeError, SafetensorError, TypeError, KeyError) as exc:
        raise NmtError(f"{path}: corrupt checkpoint ({exc})") from None
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": record["param_groups"]})
    except (ValueError, KeyError) as exc:
        raise NmtError(f"{path}: optimizer state does not fit this model ({exc})") from None
    torch.set_rng_state(tensors["rng.cpu"])
    if torch.cuda.is_available():
        cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
    return trainer

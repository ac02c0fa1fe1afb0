"""Checkpoints that survive a crash and resume a run exactly.

A checkpoint is a directory ``RUN/checkpoints/step-NNNNNNNN/``: a complete model directory
(config.yaml, tokenizer.model, model.safetensors) plus ``optimizer.safetensors`` (Adam's moments,
and the random-number generators' states of every process: ``rng.RANK.cpu``, ``rng.RANK.cuda``, so
that each rank of a multi-process run resumes its own dropout stream) and ``trainer.json`` (step,
data position, best score, the optimizer's hyper-parameters). Nothing is pickled. A checkpoint is
written into a temporary directory, flushed to the disk and renamed into place, so a kill at any
moment leaves either the whole checkpoint or none of it; the temporary directory a kill leaves
behind is removed on the next start (``remove_temporary``). Resuming takes the newest checkpoint
that reads back, setting aside (and naming) any newer one that does not (``resume``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from nmt.config import Config, config_to_yaml
from nmt.data.tokenizer import copy_tokenizer
from nmt.durable import directory_written_atomically, publish, recover_replaced
from nmt.errors import NmtError
from nmt.models.store import (
    CONFIG_FILE,
    TRAINER_FILE,
    WEIGHTS_FILE,
    load_weights,
    save_model_weights,
)
from nmt.training.distributed import Distributed, rank_seed

log = logging.getLogger(__name__)

OPTIMIZER_FILE = "optimizer.safetensors"
PREFIX = "step-"
IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable", "differentiable")  # torch.optim's flags
UNREADABLE_PREFIX = "unreadable-"
# With a time budget, the last keep_last checkpoints (what `nmt average` takes) must cover the end
# of training on any machine: within the budget's last FINAL_SHARE, a checkpoint is also written
# whenever FINAL_SHARE · budget / keep_last of training time has passed since the previous one. On
# a machine where save_every updates come sooner than that, this adds nothing.
FINAL_SHARE = 0.2
# The kill drill (tests/training/test_kill_drill.py) sets this to "POINT@STEP": the first save of
# a step >= STEP stops at POINT and waits to be killed, so that the drill hits that window.
DRILL_PAUSE_ENV = "NMT_DRILL_PAUSE_AT"


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
    # float16 only: updates skipped because their gradients overflowed, and the loss scaler's
    # state (torch.amp.GradScaler.state_dict(): a few numbers), so that resume stays exact.
    skipped_updates: int = 0
    grad_scaler: dict[str, float] | None = None


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Finished checkpoints, oldest first (temporary directories start with a dot)."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and p.is_dir())


def remove_temporary(run_dir: Path) -> list[Path]:
    """Remove what a killed process left half-written: temporary files and directories (their
    names start with a dot) in the run directory and its checkpoints folder."""
    removed = []
    for folder in (run_dir, run_dir / "checkpoints"):
        if not folder.is_dir():
            continue
        for recovered in recover_replaced(folder):
            log.warning("%s: put back the copy a kill left hidden while replacing it", recovered)
        for path in folder.iterdir():
            if not path.name.startswith("."):
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("removed %d temporary files left by an interrupted run", len(removed))
    return removed


def time_save_due(
    *, elapsed_seconds: float, last_saved_seconds: float, max_minutes: float | None, keep_last: int
) -> bool:
    """Whether the end of a time budget calls for a checkpoint now (see FINAL_SHARE)."""
    if max_minutes is None:
        return False
    budget = max_minutes * 60
    if elapsed_seconds < budget * (1 - FINAL_SHARE):
        return False
    return elapsed_seconds - last_saved_seconds >= budget * FINAL_SHARE / keep_last


def _drill_pause(point: str, step: int, weights: Path | None = None) -> None:
    """Stop here until killed, if the kill drill asked for ``point`` at this step; leave the
    weights file half written first, as a kill in the middle of writing it would."""
    name, _, at_step = os.environ.get(DRILL_PAUSE_ENV, "").partition("@")
    if name != point or step < int(at_step or 0):
        return
    if weights is not None:
        size = weights.stat().st_size
        with weights.open("r+b") as f:
            f.truncate(size // 2)
    print(f"nmt-drill: paused at {point}", flush=True)
    while True:
        time.sleep(60)


def rng_states(dist: Distributed) -> dict[str, torch.Tensor]:
    """Every rank's random-number generator states, by rank (a collective: all ranks call it)."""
    local = {"cpu": torch.get_rng_state()}
    if dist.device.type == "cuda":
        local["cuda"] = torch.cuda.get_rng_state(dist.device)
    return {
        f"rng.{rank}.{name}": state
        for name, tensor in local.items()
        for rank, state in enumerate(dist.all_gather(tensor))
    }


def restore_rng(tensors: dict[str, torch.Tensor], dist: Distributed, *, step: int) -> None:
    """This rank's generator states, as saved; a rank the checkpoint has none for (a run resumed
    with more processes) is seeded apart from the others."""
    cpu = tensors.get(f"rng.{dist.rank}.cpu")
    if cpu is None and dist.rank == 0:
        cpu = tensors.get("rng.cpu")  # checkpoints written before states were kept by rank
    if cpu is None:
        log.warning("rank %d: no random state in the checkpoint; seeding it afresh", dist.rank)
        torch.manual_seed(rank_seed(step, dist.rank))
        return
    torch.set_rng_state(cpu)
    if (cuda := tensors.get(f"rng.{dist.rank}.cuda")) is not None and dist.device.type == "cuda":
        torch.cuda.set_rng_state(cuda, dist.device)


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
    rng: dict[str, torch.Tensor],
) -> Path:
    """Write the checkpoint of ``trainer.step`` with ``rng`` (``rng_states``); a failed write (a
    full disk, a file-size limit) raises NmtError and leaves the older checkpoints as they were."""
    root = run_dir / "checkpoints"
    final = root / f"{PREFIX}{trainer.step:08d}"
    with directory_written_atomically(
        final,
        what="the checkpoint",
        write_errors=(OSError, SafetensorError),
        consequence="; the older checkpoints are intact and the run resumes from the newest "
        "of them",
    ) as tmp:
        _drill_pause("temporary-created", trainer.step)
        (tmp / CONFIG_FILE).write_text(config_to_yaml(config), encoding="utf-8")
        copy_tokenizer(run_dir, tmp)
        save_model_weights(model, tmp / WEIGHTS_FILE, config=config.model)
        _drill_pause("weights-half-written", trainer.step, tmp / WEIGHTS_FILE)
        tensors, param_groups = _optimizer_tensors(optimizer)
        save_file({**tensors, **rng}, str(tmp / OPTIMIZER_FILE))
        record = {"trainer": asdict(trainer), "param_groups": param_groups}
        (tmp / TRAINER_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
    for old in checkpoint_dirs(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def resume(
    run_dir: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, dist: Distributed
) -> TrainerState | None:
    """Load the newest checkpoint that reads back (None if the run has none yet).

    A newer one that does not is renamed ``unreadable-step-N`` (by rank 0 alone), so that
    neither this run nor `nmt average` takes it again.
    """
    checkpoints = checkpoint_dirs(run_dir)
    for index in range(len(checkpoints) - 1, -1, -1):
        path = checkpoints[index]
        try:
            trainer = load_checkpoint(path, model=model, optimizer=optimizer, dist=dist)
        except NmtError as exc:
            if index == 0:
                raise NmtError(f"{run_dir}: no checkpoint reads back; the oldest: {exc}") from None
            log.warning(
                "%s; falling back to the previous checkpoint, %s", exc, checkpoints[index - 1]
            )
            if dist.is_main:
                publish(path, path.with_name(UNREADABLE_PREFIX + path.name))
            continue
        log.info("resumed from %s (step %d)", path, trainer.step)
        return trainer
    return None


def load_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    dist: Distributed | None = None,
) -> TrainerState:
    """Restore weights, optimizer and (``dist``'s rank's) RNG states in place; return the trainer
    state.

    The optimizer's hyper-parameters (Adam's betas and eps) stay those ``optimizer`` was built
    with, i.e. the config's: a changed value is honoured from here on, and logged.
    """
    load_weights(model, path / WEIGHTS_FILE)
    try:
        record = json.loads((path / TRAINER_FILE).read_text(encoding="utf-8"))
        tensors = load_file(str(path / OPTIMIZER_FILE))
        trainer = TrainerState(**record["trainer"])
    except (OSError, UnicodeDecodeError, ValueError, SafetensorError, TypeError, KeyError) as exc:
        raise NmtError(f"{path}: corrupt checkpoint ({exc})") from None
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    configured = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    try:
        saved_groups = record["param_groups"]
        if len(saved_groups) == len(configured):
            # How the update is computed is this optimizer's choice, not the checkpoint's: a
            # checkpoint of an unfused Adam resumes into a fused one, whose step counts torch
            # then places beside the parameters, as the fused kernel needs.
            saved_groups = [
                {**saved, **{key: group[key] for key in IMPLEMENTATION_KEYS if key in group}}
                for saved, group in zip(saved_groups, configured, strict=True)
            ]
        optimizer.load_state_dict({"state": state, "param_groups": saved_groups})
    except (ValueError, KeyError, TypeError) as exc:
        raise NmtError(f"{path}: optimizer state does not fit this model ({exc})") from None
    for group, wanted in zip(optimizer.param_groups, configured, strict=True):
        for key, value in wanted.items():
            # The learning rate is set before every update; everything else comes from the config.
            saved = group.get(key)
            if key != "lr" and json.dumps(saved) != json.dumps(value):
                log.info("optimizer %s: %s in %s, now %s (the config's)", key, saved, path, value)
                group[key] = value
    restore_rng(tensors, dist or Distributed(), step=trainer.step)
    return trainer

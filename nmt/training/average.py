"""`nmt average`: the mean of the last N checkpoints' weights (the paper, section 6.1)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from nmt.config import load_config
from nmt.data.tokenizer import TOKENIZER_FILE, load_tokenizer
from nmt.errors import NmtError
from nmt.models.build import build_model
from nmt.models.store import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    check_architecture,
    load_weights,
    write_model_dir,
)
from nmt.training.checkpoint import checkpoint_dirs

log = logging.getLogger(__name__)


def average_checkpoints(run_dir: Path, *, last: int, out_dir: Path) -> list[Path]:
    """Average the weights of the run's last ``last`` checkpoints into a model directory.

    A run with fewer checkpoints (a time budget that ended early on a slow machine) has all of
    them averaged, and a warning says so: a short run still ends with a model.
    """
    if last < 1:
        raise NmtError(f"--last {last}: the number of checkpoints to average must be at least 1")
    available = checkpoint_dirs(run_dir)
    if not available:
        raise NmtError(f"{run_dir}: no checkpoints to average")
    if last > len(available):
        log.warning(
            "%s: asked to average %d checkpoints, %d available: averaging those %d "
            "(training.keep_last sets how many a run keeps)",
            run_dir,
            last,
            len(available),
            len(available),
        )
    chosen = available[-last:]
    mean = mean_weights(chosen)
    newest = chosen[-1]
    config = load_config(newest / CONFIG_FILE)
    model = build_model(config.model, load_tokenizer(newest).vocab_size)
    check_architecture(newest / WEIGHTS_FILE, config.model)
    load_weights(model, newest / WEIGHTS_FILE)
    load_mean(model, mean)
    write_model_dir(out_dir, config=config, tokenizer_path=newest / TOKENIZER_FILE, model=model)
    log.info("averaged %s into %s", ", ".join(p.name for p in chosen), out_dir)
    return chosen


@torch.no_grad()
def load_mean(model: torch.nn.Module, mean: dict[str, torch.Tensor]) -> None:
    """Copy ``mean_weights``' result into ``model``, in the model's own dtypes."""
    # Through load_state_dict, so that the model's load hooks (old checkpoints' separate q/k/v
    # projections) apply; tied weights are stored under one name, hence not strict about missing
    # names, and load_state_dict copies into the model's own dtypes.
    unexpected = model.load_state_dict(mean, strict=False).unexpected_keys
    if unexpected:
        raise NmtError(f"averaged weights have names the model lacks: {', '.join(unexpected)}")


def mean_weights(checkpoints: list[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the checkpoints' weights, summed in float64."""
    total: dict[str, torch.Tensor] = {}
    for path in checkpoints:
        try:
            weights = load_file(str(path / WEIGHTS_FILE))
        except (SafetensorError, OSError) as exc:
            raise NmtError(f"{path / WEIGHTS_FILE}: corrupt or unreadable ({exc})") from None
        if total and weights.keys() != total.keys():
            raise NmtError(f"{path}: its weights differ in names from {checkpoints[0]}")
        for name, tensor in weights.items():
            total[name] = total.get(name, 0) + tensor.double()
    return {name: summed / len(checkpoints) for name, summed in total.items()}

"""Setting up a run before its first update: the run folder, the tokenizer, the data, the model
and optimizer, and the point to resume from (nanoGPT's train.py does all this before its loop)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from nmt.config import (
    Config,
    RNNConfig,
    TransformerConfig,
    config_from_dict,
    config_to_yaml,
    load_config,
)
from nmt.data.batching import TokenBudgetSampler
from nmt.data.dataset import EncodedPairs
from nmt.data.parallel import check_corpus, check_tokenizer_data
from nmt.data.splits import load_split
from nmt.data.tokenizer import TOKENIZER_FILE, VOCAB_FILE, Tokenizer, copy_tokenizer, load_tokenizer
from nmt.durable import atomic_write_text
from nmt.errors import NmtError
from nmt.models.build import build_model, count_parameters
from nmt.models.interface import TranslationModel
from nmt.models.store import CONFIG_FILE, WEIGHTS_FILE, load_weights, resolve_model_dir
from nmt.training.checkpoint import TrainerState, remove_temporary, resume
from nmt.training.distributed import Distributed, rank_seed
from nmt.training.metrics import METRICS_FILE, truncate_metrics
from nmt.training.precision import forward_loss, grad_scaler
from nmt.training.scheduled_sampling import ScheduledSampling

log = logging.getLogger(__name__)


def fine_tuning_config(config: Config, model_dir: Path) -> Config:
    """``config`` with the model section of ``model_dir`` (and its run's vocabulary size): what
    `nmt train --init-from MODEL_DIR` trains, starting from that directory's weights."""
    stored = load_config(resolve_model_dir(model_dir) / CONFIG_FILE)
    tree = config.model_dump(mode="json")
    tree["model"] = stored.model.model_dump(mode="json")
    tree["data"]["vocab_size"] = stored.data.vocab_size
    return config_from_dict(tree, source=f"the config with the model of {model_dir}")


def prepare_run_dir(config: Config, dist: Distributed) -> None:
    """Create the run directory, or check that an existing one belongs to this config."""
    run_dir = config.training.run_dir
    stored_path = run_dir / CONFIG_FILE
    if stored_path.is_file():
        stored = load_config(stored_path)
        for section in ("model", "data"):
            if getattr(stored, section) != getattr(config, section):
                raise NmtError(
                    f"{run_dir} holds a run with another '{section}' configuration; "
                    f"choose another training.run_dir or remove {run_dir}"
                )
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_temporary(run_dir)
        atomic_write_text(stored_path, config_to_yaml(config))


def prepare_tokenizer(
    config: Config, dist: Distributed, init_from: Path | None = None
) -> Tokenizer:
    """The run's joint BPE model: trained once from the training files (by rank 0, while the
    others wait), then reused. With ``init_from`` the run keeps that model directory's
    tokenizer (either kind) instead."""
    path = config.training.run_dir / TOKENIZER_FILE
    files = check_corpus(config.data)  # every data file, before any work is spent on them
    if init_from is not None:
        run_dir = config.training.run_dir
        if dist.is_main and not (path.is_file() or (run_dir / VOCAB_FILE).is_file()):
            copy_tokenizer(resolve_model_dir(init_from), run_dir)
        dist.wait_for_main()
        return load_tokenizer(run_dir)
    trained_now = not path.is_file() and dist.is_main
    if trained_now:
        Tokenizer.train(files, path, vocab_size=config.data.vocab_size)
    if dist.is_main:
        check_tokenizer_data(path.with_suffix(".data.json"), files, trained_now=trained_now)
    dist.wait_for_main()
    return Tokenizer.load(path)


def prepare_data(config: Config) -> list[tuple[str, Path, int]]:
    """`nmt data prepare`: the run's tokenizer and the encoded train and dev sets, made ahead of
    `nmt train` (which would make them the same way); (split, cache folder, pairs) of each."""
    dist = Distributed()
    prepare_run_dir(config, dist)
    tokenizer = prepare_tokenizer(config, dist)
    prepared = []
    for split in ("train", "dev"):
        pairs = load_split(config, tokenizer, split)
        mapped = cast(np.memmap, pairs.src_offsets)  # the cache's arrays are memory maps
        prepared.append((split, Path(str(mapped.filename)).parent, len(pairs)))
    return prepared


def model_width(config: Config) -> int:
    """The d_model of the schedule's d_model^-0.5 factor (a recurrent model's hidden size)."""
    match config.model:
        case TransformerConfig():
            return config.model.d_model
        case RNNConfig():
            return config.model.hidden_size
    raise AssertionError(type(config.model))


def init_pretrained(model: TranslationModel, config: Config, tokenizer: Tokenizer) -> None:
    """Initialise embeddings from pretrained word vectors, where the config names any."""
    from nmt.models.pretrained import load_pretrained_vectors

    if config.model.src_vectors is None and config.model.tgt_vectors is None:
        return
    load_pretrained_vectors(
        model,
        tokenizer.pieces(),
        src_vectors=config.model.src_vectors,
        tgt_vectors=config.model.tgt_vectors,
    )


@dataclass
class Run:
    """Everything the training loop works with, set up."""

    config: Config
    dist: Distributed
    tokenizer: Tokenizer
    train_data: EncodedPairs
    dev_data: EncodedPairs
    sampler: TokenBudgetSampler
    model: TranslationModel  # the module itself, whose weights are saved
    ddp_model: nn.Module  # the same module, wrapped for several processes where there are
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loss_of_step: ScheduledSampling
    trainer: TrainerState

    @property
    def device(self) -> torch.device:
        return self.dist.device


def training_loss(
    model: TranslationModel, config: Config, dist: Distributed
) -> tuple[nn.Module, ScheduledSampling]:
    """The model as the step runs it (wrapped for several processes), and its loss function."""
    device = dist.device
    ddp_model = (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if dist.enabled
        else model
    )
    loss_of = forward_loss(
        ddp_model,
        device_type=device.type,
        precision=config.training.precision,
        label_smoothing=config.training.label_smoothing,
        pad_id=model.pad_id,
        compile=config.training.compile,
        output_layer=getattr(model, "output_layer", None),  # the Transformer's
    )
    # training.teacher_forcing < 1: scheduled sampling (at 1, loss_of itself runs).
    loss_of_step = ScheduledSampling(
        model,
        loss_of,
        config,
        pad_id=model.pad_id,
        device_type=device.type,
        distributed=dist.enabled,
    )
    return ddp_model, loss_of_step


def set_up(config: Config, dist: Distributed, init_from: Path | None = None) -> Run:
    """The run of ``config`` ready for its next update: from scratch, from ``init_from``'s
    weights, or from the run's newest checkpoint."""
    training, run_dir, device = config.training, config.training.run_dir, dist.device
    prepare_run_dir(config, dist)
    tokenizer = prepare_tokenizer(config, dist, init_from)
    torch.manual_seed(training.seed)  # the same initial weights on every rank

    train_data = load_split(config, tokenizer, "train")
    if not len(train_data):
        raise NmtError(f"{config.data.dir}: no training pairs left after filtering")
    dev_data = load_split(config, tokenizer, "dev")
    sampler = TokenBudgetSampler(
        train_data.src_lengths,
        train_data.tgt_lengths,
        max_tokens=training.max_tokens,
        seed=training.seed,
    )
    model = build_model(config.model, tokenizer.vocab_size)
    init_pretrained(model, config, tokenizer)
    if init_from is not None:  # a checkpoint of this run, if any, replaces them below
        load_weights(model, resolve_model_dir(init_from) / WEIGHTS_FILE)
    model.to(device)
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=0.0,
        betas=(training.adam_beta1, training.adam_beta2),
        eps=training.adam_eps,
        # One kernel per parameter tensor instead of a dozen small ones: the same arithmetic,
        # 2.4x faster on the CPU (quickstart: 14 → 6 ms an update; benchmarks/optimizer_step.py).
        fused=True,
    )
    trainer = resume(run_dir, model=model, optimizer=optimizer, dist=dist)
    if trainer is None:
        trainer = TrainerState()
        if dist.enabled:  # dropout masks of their own (a resumed rank restored its stream)
            torch.manual_seed(rank_seed(training.seed, dist.rank))
    if dist.is_main:
        truncate_metrics(run_dir / METRICS_FILE, after_step=trainer.step)
        log.info(
            "%s: %d training pairs, %d dev pairs, %d parameters, %d batches per epoch",
            run_dir,
            len(train_data),
            len(dev_data),
            count_parameters(model),
            len(sampler),
        )
    ddp_model, loss_of_step = training_loss(model, config, dist)
    scaler = grad_scaler(device, training.precision)
    if trainer.grad_scaler:
        scaler.load_state_dict(trainer.grad_scaler)
    return Run(
        config=config,
        dist=dist,
        tokenizer=tokenizer,
        train_data=train_data,
        dev_data=dev_data,
        sampler=sampler,
        model=model,
        ddp_model=ddp_model,
        optimizer=optimizer,
        scaler=scaler,
        loss_of_step=loss_of_step,
        trainer=trainer,
    )

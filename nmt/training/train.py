"""`nmt train`: one explicit training loop, the recipe of the paper's section 5.

set up (device, processes, run directory, tokenizer, data, model, optimizer, resume) → loop
(learning rate, forward, loss, backward, clip, step, log) → validate → checkpoint.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from nmt.config import Config, RNNConfig, TransformerConfig, config_to_yaml, load_config
from nmt.data.batching import TokenBudgetSampler
from nmt.data.cache import default_cache_root, load_or_encode, tokenizer_fingerprint
from nmt.data.dataset import EncodedPairs
from nmt.data.parallel import check_corpus, check_tokenizer_data, iter_lines
from nmt.data.tokenizer import (
    TOKENIZER_FILE,
    VOCAB_FILE,
    Tokenizer,
    copy_tokenizer,
    load_tokenizer,
)
from nmt.errors import NmtError
from nmt.evaluation.perplexity import reference_loss
from nmt.models.build import build_model, count_parameters
from nmt.models.interface import TranslationModel
from nmt.models.store import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    atomic_write_text,
    fine_tuning_config,
    load_weights,
    resolve_model_dir,
    write_model_dir,
)
from nmt.training.checkpoint import (
    TrainerState,
    remove_temporary,
    resume,
    save_checkpoint,
    time_save_due,
)
from nmt.training.distributed import Distributed, setup_distributed, teardown_distributed
from nmt.training.interrupt import StopSignals
from nmt.training.metrics import (
    METRICS_FILE,
    PLOT_FILE,
    append_metrics,
    plot_metrics,
    truncate_metrics,
)
from nmt.training.precision import (
    configure_matmul_precision,
    forward_loss,
    grad_scaler,
    optimizer_step,
)
from nmt.training.schedule import learning_rate
from nmt.training.scheduled_sampling import ScheduledSampling

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    stopped_because: str
    best_score: float | None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise NmtError("training.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def model_width(config: Config) -> int:
    """The d_model of the schedule's d_model^-0.5 factor (a recurrent model's hidden size)."""
    match config.model:
        case TransformerConfig():
            return config.model.d_model
        case RNNConfig():
            return config.model.hidden_size
    raise AssertionError(type(config.model))


def describe_model(config: Config, vocab_size: int) -> str:
    """Parameter count and shape summary, for `nmt train --dry-run`."""
    model = build_model(config.model, vocab_size)
    lines = [f"{type(model).__name__} ({config.model.arch}), joint vocabulary {vocab_size}"]
    for name, child in model.named_children():
        params = count_parameters(child)
        if params:
            lines.append(f"  {name:<16} {params:>13,}  {type(child).__name__}")
    lines.append("  shapes of one layer / embedding:")
    seen: set[str] = set()
    for name, param in model.named_parameters():
        generic = ".".join("N" if part.isdigit() else part for part in name.split("."))
        if generic not in seen and (".0." in name or "." not in name.rsplit(".", 1)[0]):
            seen.add(generic)
            lines.append(f"    {generic:<48} {tuple(param.shape)}")
    lines.append(f"parameters: {count_parameters(model):,} ({count_parameters(model) / 1e6:.1f} M)")
    return "\n".join(lines)


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
    """The run's joint BPE model: trained once from the training files, then reused. With
    ``init_from`` the run keeps that model directory's tokenizer (either kind) instead."""
    path = config.training.run_dir / TOKENIZER_FILE
    files = check_corpus(config.data)  # every data file, before any work is spent on them
    if init_from is not None:
        run_dir = config.training.run_dir
        if dist.is_main and not (path.is_file() or (run_dir / VOCAB_FILE).is_file()):
            copy_tokenizer(resolve_model_dir(init_from), run_dir)
        dist.barrier()
        return load_tokenizer(run_dir)
    trained_now = not path.is_file() and dist.is_main
    if trained_now:
        Tokenizer.train(files, path, vocab_size=config.data.vocab_size)
    if dist.is_main:
        check_tokenizer_data(path.with_suffix(".data.json"), files, trained_now=trained_now)
    dist.barrier()
    return Tokenizer.load(path)


def load_split(config: Config, tokenizer: Tokenizer, split: str, max_len: int) -> EncodedPairs:
    """A split's encoded pairs, memory-mapped from the cache (encoded on first use only)."""
    data, run_dir = config.data, config.training.run_dir
    src, tgt = data.dir / f"{split}.{data.src_lang}", data.dir / f"{split}.{data.tgt_lang}"
    return load_or_encode(
        tokenizer,
        src,
        tgt,
        max_len=max_len,
        tokenizer_sha256="+".join(tokenizer_fingerprint(run_dir / f) for f in tokenizer.files),
        cache_root=default_cache_root(data.dir, run_dir),
    )


def split_max_len(config: Config, split: str) -> int:
    """Training pairs obey data.max_len; dev pairs need only fit the model's positions."""
    return config.data.max_len if split == "train" else config.model.max_positions - 1


def prepare_data(config: Config) -> list[tuple[str, Path, int]]:
    """`nmt data prepare`: the run's tokenizer and the encoded train and dev sets, made ahead of
    `nmt train` (which would make them the same way); (split, cache folder, pairs) of each."""
    dist = Distributed()
    prepare_run_dir(config, dist)
    tokenizer = prepare_tokenizer(config, dist)
    prepared = []
    for split in ("train", "dev"):
        pairs = load_split(config, tokenizer, split, split_max_len(config, split))
        mapped = cast(np.memmap, pairs.src_offsets)  # the cache's arrays are memory maps
        prepared.append((split, Path(str(mapped.filename)).parent, len(pairs)))
    return prepared


def batch_stream(
    sampler: TokenBudgetSampler, epoch: int, index: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Batches from (epoch, index) on, across epochs: yields (epoch, next index, pair indices)."""
    while True:
        batches = sampler.epoch_batches(epoch)
        for i in range(index, len(batches)):
            yield epoch, i + 1, batches[i]
        epoch, index = epoch + 1, 0


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


def validate(
    model: TranslationModel,
    tokenizer: Tokenizer,
    dev: EncodedPairs,
    config: Config,
    device: torch.device,
) -> dict[str, float | str]:
    """Dev cross-entropy, perplexity, and sacreBLEU/chrF of greedy translations."""
    from nmt.decoding.translator import Translator
    from nmt.evaluation.scoring import score

    nll = reference_loss(model, dev, max_tokens=config.training.max_tokens, device=device).nll
    data = config.data
    limit = config.training.valid_max_sentences
    src_lines = list(iter_lines(data.dir / f"dev.{data.src_lang}"))[:limit]
    ref_lines = list(iter_lines(data.dir / f"dev.{data.tgt_lang}"))[:limit]
    translator = Translator(
        model, tokenizer, device=str(device), max_positions=config.model.max_positions
    )
    hyps = translator.translate(src_lines, config.decoding.model_copy(update={"beam_size": 1}))
    scores = score(hyps, ref_lines)
    return {
        "nll": nll,
        "ppl": math.exp(min(nll, 50.0)),
        "bleu": scores.bleu,
        "chrf": scores.chrf,
        "bleu_signature": scores.bleu_signature,
    }


def train(config: Config, *, init_from: Path | None = None) -> TrainResult:
    """Train (or resume) the run of ``config``. ``init_from``: a model directory to fine-tune,
    whose model config, tokenizer and weights replace the config's model and the fresh start."""
    if init_from is not None:
        config = fine_tuning_config(config, init_from)
    tc = config.training
    dist = setup_distributed(resolve_device(tc.device).type)
    device = dist.device
    configure_matmul_precision(device, tc.precision)
    try:
        with StopSignals() as stop_signals:
            return _train(config, device, dist, stop_signals, init_from)
    finally:
        teardown_distributed(dist)


def _train(
    config: Config,
    device: torch.device,
    dist: Distributed,
    stop_signals: StopSignals,
    init_from: Path | None = None,
) -> TrainResult:
    tc, run_dir = config.training, config.training.run_dir
    prepare_run_dir(config, dist)
    tokenizer = prepare_tokenizer(config, dist, init_from)
    torch.manual_seed(tc.seed)

    train_data = load_split(config, tokenizer, "train", split_max_len(config, "train"))
    if not len(train_data):
        raise NmtError(f"{config.data.dir}: no training pairs left after filtering")
    dev_data = load_split(config, tokenizer, "dev", split_max_len(config, "dev"))
    sampler = TokenBudgetSampler(
        train_data.src_lengths, train_data.tgt_lengths, max_tokens=tc.max_tokens, seed=tc.seed
    )
    tgt_lengths = train_data.tgt_lengths + 1  # target tokens a pair adds to the loss (EOS too)

    model = build_model(config.model, tokenizer.vocab_size)
    init_pretrained(model, config, tokenizer)
    if init_from is not None:  # a checkpoint of this run, if any, replaces them below
        load_weights(model, resolve_model_dir(init_from) / WEIGHTS_FILE)
    model.to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=0.0, betas=(tc.adam_beta1, tc.adam_beta2), eps=tc.adam_eps
    )
    trainer = resume(run_dir, model=model, optimizer=optimizer, set_aside=dist.is_main)
    trainer = trainer or TrainerState()
    metrics_path = run_dir / METRICS_FILE
    if dist.is_main:
        truncate_metrics(metrics_path, after_step=trainer.step)
        log.info(
            "%s: %d training pairs, %d dev pairs, %d parameters, %d batches per epoch",
            run_dir,
            len(train_data),
            len(dev_data),
            count_parameters(model),
            len(sampler),
        )
    ddp_model = (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if dist.enabled
        else model
    )
    loss_of = forward_loss(
        ddp_model,
        device_type=device.type,
        precision=tc.precision,
        label_smoothing=tc.label_smoothing,
        pad_id=model.pad_id,
        compile=tc.compile,
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
    special_ids = {"pad_id": model.pad_id, "bos_id": model.bos_id, "eos_id": model.eos_id}
    scaler = grad_scaler(device, tc.precision)
    if trainer.grad_scaler:
        scaler.load_state_dict(trainer.grad_scaler)
    stream = batch_stream(sampler, trainer.epoch, trainer.batch_in_epoch)
    batches_per_update = tc.accumulate * dist.world_size
    mine = slice(dist.rank * tc.accumulate, (dist.rank + 1) * tc.accumulate)
    width = model_width(config)

    # With a time budget the bar counts training seconds, so that "time left" is true.
    by_time = tc.max_minutes is not None
    progress = tqdm(
        total=tc.max_minutes * 60 if tc.max_minutes is not None else tc.max_steps,
        initial=round(trainer.elapsed_seconds) if by_time else trainer.step,
        disable=not (dist.is_main and tc.progress),
        unit="s" if by_time else "step",
        dynamic_ncols=True,
        bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
    )
    save = partial(
        save_checkpoint,
        run_dir,
        model=model,
        optimizer=optimizer,
        trainer=trainer,
        config=config,
        keep_last=tc.keep_last,
    )
    last_saved, last_saved_seconds = trainer.step, trainer.elapsed_seconds
    stop_signals.arm()  # from here a signal ends the update, saves it, then stops
    window_tokens, window_seconds = 0, 0.0
    stopped_because = "max_steps"
    while True:
        if tc.max_steps is not None and trainer.step >= tc.max_steps:
            break
        if tc.max_minutes is not None and trainer.elapsed_seconds >= tc.max_minutes * 60:
            stopped_because = "max_minutes"
            break
        started = time.perf_counter()
        update = [next(stream) for _ in range(batches_per_update)]
        trainer.epoch, trainer.batch_in_epoch = update[-1][0], update[-1][1]
        update_tokens = int(sum(tgt_lengths[indices].sum() for _, _, indices in update))
        lr = learning_rate(trainer.step + 1, d_model=width, config=tc.schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr

        model.train()
        optimizer.zero_grad(set_to_none=True)
        smoothed_sum = nll_sum = 0.0
        my_batches = update[mine]
        for i, (_, _, indices) in enumerate(my_batches):
            batch = train_data.batch(indices, **special_ids).to(device)
            last = i == len(my_batches) - 1
            # DDP averages gradients over ranks: scaling by world / tokens makes the update the
            # gradient of the mean loss per target token of the whole global batch.
            sync = nullcontext() if last or not dist.enabled else ddp_model.no_sync()  # type: ignore[operator]
            with sync:
                sums = loss_of_step(
                    batch.src, batch.src_mask, batch.tgt_in, batch.tgt_out, step=trainer.step
                )
                scaler.scale(sums.smoothed * (dist.world_size / update_tokens)).backward()
            smoothed_sum += float(sums.smoothed.detach())
            nll_sum += float(sums.nll)
        if tc.clip_norm is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the float16-scaled ones
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip_norm)
        skipped = optimizer_step(optimizer, scaler)
        trainer.skipped_updates += skipped
        trainer.grad_scaler = scaler.state_dict() or None

        # Ranks' clocks differ; their mean step time keeps every time-based decision (max_minutes,
        # the *_every_minutes periods) the same on all ranks, so none waits on a collective alone.
        smoothed_sum, nll_sum, seconds_sum, signalled = dist.all_sum(
            [smoothed_sum, nll_sum, time.perf_counter() - started, stop_signals.requested]
        )
        seconds = seconds_sum / dist.world_size
        trainer.step += 1
        trainer.elapsed_seconds += seconds
        trainer.target_tokens += update_tokens
        window_tokens += update_tokens
        window_seconds += seconds
        loss, nll = smoothed_sum / update_tokens, nll_sum / update_tokens
        if not math.isfinite(loss) and not skipped:  # float16 overflows are skipped, not fatal
            raise NmtError(
                f"training diverged at step {trainer.step} (loss {loss}); lower the learning rate"
            )
        progress.update(seconds if by_time else 1)
        if dist.is_main and trainer.step % tc.log_every == 0:
            tokens_per_second = window_tokens / max(window_seconds, 1e-9)
            progress.set_postfix(
                step=trainer.step,
                loss=f"{loss:.3f}",
                lr=f"{lr:.2e}",
                tok_s=f"{tokens_per_second:.0f}",
            )
            append_metrics(
                metrics_path,
                {
                    "split": "train",
                    "step": trainer.step,
                    "epoch": trainer.epoch,
                    "loss": loss,
                    "nll": nll,
                    "ppl": math.exp(min(nll, 50.0)),
                    "lr": lr,
                    "tokens_per_second": tokens_per_second,
                    "skipped_updates": trainer.skipped_updates,
                    "elapsed_seconds": trainer.elapsed_seconds,
                },
            )
            window_tokens, window_seconds = 0, 0.0

        stop = False
        if trainer.step % tc.valid_every == 0 or period_crossed(
            tc.valid_every_minutes, trainer.elapsed_seconds, seconds
        ):
            if dist.is_main:
                stop = _validate_and_keep_best(model, tokenizer, dev_data, config, device, trainer)
            stop = dist.broadcast_flag(stop)
        save_due = (tc.save_every is not None and trainer.step % tc.save_every == 0) or (
            period_crossed(tc.save_every_minutes, trainer.elapsed_seconds, seconds)
        )
        save_due = save_due or time_save_due(
            elapsed_seconds=trainer.elapsed_seconds,
            last_saved_seconds=last_saved_seconds,
            max_minutes=tc.max_minutes,
            keep_last=tc.keep_last,
        )
        if dist.is_main and (save_due or stop or signalled):
            save()
            last_saved, last_saved_seconds = trainer.step, trainer.elapsed_seconds
        if signalled:
            raise stop_signals.interrupted(f"checkpoint step {trainer.step}")
        if stop:
            stopped_because = "early stopping"
            break
    progress.close()
    if dist.is_main and trainer.step != last_saved:
        save()
    if dist.is_main and not (run_dir / "best").is_dir() and trainer.step > 0:
        _validate_and_keep_best(model, tokenizer, dev_data, config, device, trainer)
    dist.barrier()
    return TrainResult(run_dir, trainer.step, stopped_because, trainer.best_score)


def period_crossed(
    every_minutes: float | None, elapsed_seconds: float, step_seconds: float
) -> bool:
    """True when the step that took ``step_seconds`` and ended at ``elapsed_seconds`` of training
    time crossed a multiple of ``every_minutes`` (None: never)."""
    if every_minutes is None:
        return False
    period = every_minutes * 60
    return int(elapsed_seconds // period) > int((elapsed_seconds - step_seconds) // period)


def _validate_and_keep_best(
    model: TranslationModel,
    tokenizer: Tokenizer,
    dev: EncodedPairs,
    config: Config,
    device: torch.device,
    trainer: TrainerState,
) -> bool:
    """Validate, write the best model, and say whether patience has run out."""
    tc, run_dir = config.training, config.training.run_dir
    result = validate(model, tokenizer, dev, config, device)
    record = {"split": "dev", "step": trainer.step, "elapsed_seconds": trainer.elapsed_seconds}
    append_metrics(run_dir / METRICS_FILE, {**record, **result})
    plot_metrics(run_dir / METRICS_FILE, run_dir / PLOT_FILE)
    log.info(
        "step %d: dev ppl %.2f, BLEU %.2f, chrF %.2f",
        trainer.step,
        result["ppl"],
        result["bleu"],
        result["chrf"],
    )
    # Higher is better for BLEU; for loss compare the negated cross-entropy.
    current = float(result["bleu"]) if tc.best_metric == "bleu" else -float(result["nll"])
    if trainer.best_score is None or current > trainer.best_score:
        trainer.best_score, trainer.best_step = current, trainer.step
        trainer.validations_without_improvement = 0
        write_model_dir(
            run_dir / "best", config=config, tokenizer_path=run_dir / TOKENIZER_FILE, model=model
        )
    else:
        trainer.validations_without_improvement += 1
    return tc.patience is not None and trainer.validations_without_improvement >= tc.patience

"""`nmt train`: one explicit training loop, the recipe of the paper's section 5.

set up (nmt.training.setup: device, processes, run directory, tokenizer, data, model, optimizer,
resume) → loop: the step (learning rate, forward, loss, backward, clip, step) → what follows a
step (log, validate, save, budgets, signals).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nmt.config import Config, TrainingConfig
from nmt.data.batching import TokenBudgetSampler
from nmt.data.parallel import iter_lines
from nmt.data.tokenizer import TOKENIZER_FILE
from nmt.device import resolve_device
from nmt.errors import NmtError
from nmt.evaluation.perplexity import reference_loss
from nmt.models.build import build_model, count_parameters
from nmt.models.store import write_model_dir
from nmt.training.checkpoint import TrainerState, rng_states, save_checkpoint, time_save_due
from nmt.training.distributed import setup_distributed, teardown_distributed
from nmt.training.interrupt import StopSignals
from nmt.training.memory import give_back_freed_memory, limit_onednn_cache
from nmt.training.metrics import METRICS_FILE, PLOT_FILE, append_metrics, plot_metrics_apart
from nmt.training.precision import configure_matmul_precision, optimizer_step
from nmt.training.schedule import learning_rate
from nmt.training.setup import Run, fine_tuning_config, model_width, set_up

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    stopped_because: str
    best_score: float | None


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


def train(config: Config, *, init_from: Path | None = None) -> TrainResult:
    """Train (or resume) the run of ``config``. ``init_from``: a model directory to fine-tune,
    whose model config, tokenizer and weights replace the config's model and the fresh start."""
    limit_onednn_cache()
    if init_from is not None:
        config = fine_tuning_config(config, init_from)
    dist = setup_distributed(resolve_device(config.training.device).type)
    configure_matmul_precision(dist.device, config.training.precision)
    try:
        with StopSignals() as stop_signals:
            run = set_up(config, dist, init_from)
            give_back_freed_memory()  # the tokenizer's training and the corpus's encoding
            return training_loop(run, stop_signals)
    finally:
        teardown_distributed(dist)


# -- the loop ------------------------------------------------------------------------------------


@dataclass
class Step:
    """What one update did, the same on every rank."""

    lr: float
    loss: float  # label-smoothed cross-entropy per target token of the whole update
    nll: float  # plain cross-entropy per target token
    target_tokens: int
    seconds: float  # the ranks' mean time for it
    signalled: bool  # a stop signal reached some rank during it


@dataclass
class Throughput:
    """Target tokens and training time since the last log line."""

    tokens: int = 0
    seconds: float = 0.0


@dataclass
class LastSave:
    step: int
    elapsed_seconds: float


def training_loop(run: Run, stop_signals: StopSignals) -> TrainResult:
    training, trainer = run.config.training, run.trainer
    stream = batch_stream(run.sampler, trainer.epoch, trainer.batch_in_epoch)
    batches_per_update = training.accumulate * run.dist.world_size
    progress = progress_bar(training, trainer, show=run.dist.is_main)
    throughput = Throughput()
    last_save = LastSave(trainer.step, trainer.elapsed_seconds)
    stop_signals.arm()  # from here a signal ends the update, saves it, then stops
    while (stopped_because := budget_spent(training, trainer)) is None:
        step = take_step(run, [next(stream) for _ in range(batches_per_update)], stop_signals)
        progress.update(step.seconds if training.max_minutes is not None else 1)
        log_step(run, step, progress, throughput)
        stop = validate_if_due(run, step)
        if save_due(training, trainer, step, last_save) or stop or step.signalled:
            save(run, last_save)
        if step.signalled:
            raise stop_signals.interrupted(f"checkpoint step {trainer.step}")
        if stop:
            stopped_because = "early stopping"
            break
    progress.close()
    if trainer.step != last_save.step:
        save(run, last_save)
    best_missing = not (training.run_dir / "best").is_dir()
    if run.dist.is_main and validates(training) and best_missing and trainer.step > 0:
        validate_and_keep_best(run)
    run.dist.wait_for_main()
    return TrainResult(training.run_dir, trainer.step, stopped_because, trainer.best_score)


def batch_stream(
    sampler: TokenBudgetSampler, epoch: int, index: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Batches from (epoch, index) on, across epochs: yields (epoch, next index, pair indices)."""
    while True:
        batches = sampler.epoch_batches(epoch)
        for i in range(index, len(batches)):
            yield epoch, i + 1, batches[i]
        epoch, index = epoch + 1, 0


def progress_bar(training: TrainingConfig, trainer: TrainerState, *, show: bool) -> tqdm:
    """With a time budget the bar counts training seconds, so that "time left" is true."""
    by_time = training.max_minutes is not None
    return tqdm(
        total=training.max_minutes * 60 if training.max_minutes is not None else training.max_steps,
        initial=round(trainer.elapsed_seconds) if by_time else trainer.step,
        disable=not (show and training.progress),
        unit="s" if by_time else "step",
        dynamic_ncols=True,
        bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
    )


def budget_spent(training: TrainingConfig, trainer: TrainerState) -> str | None:
    """Which budget the run has used up ("max_steps", "max_minutes"), if any."""
    if training.max_steps is not None and trainer.step >= training.max_steps:
        return "max_steps"
    if training.max_minutes is not None and trainer.elapsed_seconds >= training.max_minutes * 60:
        return "max_minutes"
    return None


# -- the step ------------------------------------------------------------------------------------


def take_step(
    run: Run, update: list[tuple[int, int, np.ndarray]], stop_signals: StopSignals
) -> Step:
    """One update from the global batch ``update`` (every rank's batches); this rank takes its
    share, and the ranks' gradients are averaged."""
    training, trainer, dist = run.config.training, run.trainer, run.dist
    started = time.perf_counter()
    trainer.epoch, trainer.batch_in_epoch = update[-1][0], update[-1][1]
    # The target tokens a pair adds to the loss: its own and EOS.
    tgt_lengths = run.train_data.tgt_lengths
    update_tokens = int(sum(tgt_lengths[indices].sum() + len(indices) for _, _, indices in update))
    lr = learning_rate(trainer.step + 1, d_model=model_width(run.config), config=training.schedule)
    for group in run.optimizer.param_groups:
        group["lr"] = lr

    run.model.train()
    run.optimizer.zero_grad(set_to_none=True)
    smoothed_sum = nll_sum = 0.0
    rank_batches = update[dist.rank * training.accumulate : (dist.rank + 1) * training.accumulate]
    model = run.model
    special_ids = {"pad_id": model.pad_id, "bos_id": model.bos_id, "eos_id": model.eos_id}
    for i, (_, _, indices) in enumerate(rank_batches):
        batch = run.train_data.batch(indices, **special_ids).to(run.device)
        last = i == len(rank_batches) - 1
        # DDP averages gradients over ranks: scaling by world / tokens makes the update the
        # gradient of the mean loss per target token of the whole global batch.
        sync = nullcontext() if last or not dist.enabled else run.ddp_model.no_sync()  # type: ignore[operator]
        with sync:
            sums = run.loss_of_step(
                batch.src, batch.src_mask, batch.tgt_in, batch.tgt_out, step=trainer.step
            )
            run.scaler.scale(sums.smoothed * (dist.world_size / update_tokens)).backward()
        smoothed_sum += float(sums.smoothed.detach())
        nll_sum += float(sums.nll)
    if training.clip_norm is not None:
        run.scaler.unscale_(run.optimizer)  # clip the true gradients, not the float16-scaled ones
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), training.clip_norm)
    skipped = optimizer_step(run.optimizer, run.scaler)
    trainer.skipped_updates += skipped
    trainer.grad_scaler = run.scaler.state_dict() or None

    # Ranks' clocks differ; their mean step time keeps every time-based decision (max_minutes,
    # the *_every_minutes periods) the same on all ranks, so none waits on a collective alone.
    smoothed_sum, nll_sum, seconds_sum, signalled = dist.all_sum(
        [smoothed_sum, nll_sum, time.perf_counter() - started, stop_signals.requested]
    )
    step = Step(
        lr=lr,
        loss=smoothed_sum / update_tokens,
        nll=nll_sum / update_tokens,
        target_tokens=update_tokens,
        seconds=seconds_sum / dist.world_size,
        signalled=bool(signalled),
    )
    trainer.step += 1
    trainer.elapsed_seconds += step.seconds
    trainer.target_tokens += update_tokens
    if not math.isfinite(step.loss) and not skipped:  # float16 overflows are skipped, not fatal
        raise NmtError(
            f"training diverged at step {trainer.step} (loss {step.loss}); lower the learning rate"
        )
    return step


# -- what follows a step -------------------------------------------------------------------------


def log_step(run: Run, step: Step, progress: tqdm, throughput: Throughput) -> None:
    """Every log_every steps: the progress bar's figures and a metrics line (rank 0)."""
    trainer, metrics_path = run.trainer, run.config.training.run_dir / METRICS_FILE
    throughput.tokens += step.target_tokens
    throughput.seconds += step.seconds
    if not run.dist.is_main or trainer.step % run.config.training.log_every != 0:
        return
    tokens_per_second = throughput.tokens / max(throughput.seconds, 1e-9)
    progress.set_postfix(
        step=trainer.step,
        loss=f"{step.loss:.3f}",
        lr=f"{step.lr:.2e}",
        tok_s=f"{tokens_per_second:.0f}",
    )
    append_metrics(
        metrics_path,
        {
            "split": "train",
            "step": trainer.step,
            "epoch": trainer.epoch,
            "loss": step.loss,
            "nll": step.nll,
            "ppl": math.exp(min(step.nll, 50.0)),
            "lr": step.lr,
            "tokens_per_second": tokens_per_second,
            "skipped_updates": trainer.skipped_updates,
            "elapsed_seconds": trainer.elapsed_seconds,
        },
    )
    throughput.tokens, throughput.seconds = 0, 0.0


def validates(training: TrainingConfig) -> bool:
    """Whether the run validates at all (Table 3's cells do not: they are scored afterwards)."""
    return training.valid_every is not None or training.valid_every_minutes is not None


def validate_if_due(run: Run, step: Step) -> bool:
    """Validate when a period ends (rank 0, while the others wait); say whether patience has
    run out."""
    training, trainer = run.config.training, run.trainer
    due = (training.valid_every is not None and trainer.step % training.valid_every == 0) or (
        period_crossed(training.valid_every_minutes, trainer.elapsed_seconds, step.seconds)
    )
    return validate_between_updates(run) if due else False


def validate_between_updates(run: Run) -> bool:
    """Validate (rank 0, while the others wait) and say whether patience has run out, with the
    allocator's free memory given back around it."""
    # The steps' freed blocks before, the search's over the dev set after: otherwise the
    # validation's tensors land on top of what the steps freed (the peak of a quickstart run).
    give_back_freed_memory()
    stop = validate_and_keep_best(run) if run.dist.is_main else False
    give_back_freed_memory()
    run.dist.wait_for_main()
    return run.dist.broadcast_flag(stop)


def save_due(
    training: TrainingConfig, trainer: TrainerState, step: Step, last_save: LastSave
) -> bool:
    """Whether a checkpoint is due after ``step``: by updates, by training time, or because the
    time budget's end is near (see nmt.training.checkpoint.FINAL_SHARE)."""
    if training.save_every is not None and trainer.step % training.save_every == 0:
        return True
    if period_crossed(training.save_every_minutes, trainer.elapsed_seconds, step.seconds):
        return True
    return time_save_due(
        elapsed_seconds=trainer.elapsed_seconds,
        last_saved_seconds=last_save.elapsed_seconds,
        max_minutes=training.max_minutes,
        keep_last=training.keep_last,
    )


def save(run: Run, last_save: LastSave) -> None:
    """Write a checkpoint: every rank hands over its random state, rank 0 writes."""
    training, trainer = run.config.training, run.trainer
    rng = rng_states(run.dist)
    if run.dist.is_main:
        save_checkpoint(
            training.run_dir,
            model=run.model,
            optimizer=run.optimizer,
            trainer=trainer,
            config=run.config,
            keep_last=training.keep_last,
            rng=rng,
        )
    run.dist.wait_for_main()
    last_save.step, last_save.elapsed_seconds = trainer.step, trainer.elapsed_seconds


def period_crossed(
    every_minutes: float | None, elapsed_seconds: float, step_seconds: float
) -> bool:
    """True when the step that took ``step_seconds`` and ended at ``elapsed_seconds`` of training
    time crossed a multiple of ``every_minutes`` (None: never)."""
    if every_minutes is None:
        return False
    period = every_minutes * 60
    return int(elapsed_seconds // period) > int((elapsed_seconds - step_seconds) // period)


def validate(run: Run) -> dict[str, float | str]:
    """Dev cross-entropy, perplexity, and sacreBLEU/chrF of greedy translations."""
    from nmt.decoding.translator import Translator
    from nmt.evaluation.scoring import score

    config, device = run.config, run.device
    nll = reference_loss(
        run.model, run.dev_data, max_tokens=config.training.max_tokens, device=device
    ).nll
    data = config.data
    limit = config.training.valid_max_sentences
    src_lines = list(iter_lines(data.dir / f"dev.{data.src_lang}"))[:limit]
    ref_lines = list(iter_lines(data.dir / f"dev.{data.tgt_lang}"))[:limit]
    translator = Translator(
        run.model, run.tokenizer, device=str(device), max_positions=config.model.max_positions
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


def validate_and_keep_best(run: Run) -> bool:
    """Validate, write the best model, and say whether patience has run out."""
    config, trainer = run.config, run.trainer
    training, run_dir = config.training, config.training.run_dir
    result = validate(run)
    record = {"split": "dev", "step": trainer.step, "elapsed_seconds": trainer.elapsed_seconds}
    append_metrics(run_dir / METRICS_FILE, {**record, **result})
    plot_metrics_apart(run_dir / METRICS_FILE, run_dir / PLOT_FILE)
    log.info(
        "step %d: dev ppl %.2f, BLEU %.2f, chrF %.2f",
        trainer.step,
        result["ppl"],
        result["bleu"],
        result["chrf"],
    )
    # Higher is better for BLEU; for loss compare the negated cross-entropy.
    current = float(result["bleu"]) if training.best_metric == "bleu" else -float(result["nll"])
    if trainer.best_score is None or current > trainer.best_score:
        trainer.best_score, trainer.best_step = current, trainer.step
        trainer.validations_without_improvement = 0
        write_model_dir(
            run_dir / "best",
            config=config,
            tokenizer_path=run_dir / TOKENIZER_FILE,
            model=run.model,
        )
    else:
        trainer.validations_without_improvement += 1
    return (
        training.patience is not None
        and trainer.validations_without_improvement >= training.patience
    )

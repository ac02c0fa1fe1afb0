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

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from nmt.config import Config, RNNConfig, TransformerConfig, config_to_yaml, load_config
from nmt.data.batching import TokenBudgetSampler
from nmt.data.dataset import EncodedPairs, encode_parallel
from nmt.data.parallel import iter_lines
from nmt.data.tokenizer import TOKENIZER_FILE, Tokenizer
from nmt.errors import NmtError
from nmt.evaluation.perplexity import reference_loss
from nmt.models.build import build_model, count_parameters
from nmt.models.interface import TranslationModel
from nmt.models.store import CONFIG_FILE, atomic_write_text, write_model_dir
from nmt.training.checkpoint import TrainerState, checkpoint_dirs, load_checkpoint, save_checkpoint
from nmt.training.distributed import Distributed, setup_distributed, teardown_distributed
from nmt.training.loss import label_smoothed_loss
from nmt.training.metrics import (
    METRICS_FILE,
    PLOT_FILE,
    append_metrics,
    plot_metrics,
    truncate_metrics,
)
from nmt.training.schedule import learning_rate

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
        atomic_write_text(stored_path, config_to_yaml(config))


def prepare_tokenizer(config: Config, dist: Distributed) -> Tokenizer:
    """The run's joint BPE model: trained once from the training files, then reused."""
    path = config.training.run_dir / TOKENIZER_FILE
    if not path.is_file() and dist.is_main:
        data = config.data
        files = [data.dir / f"train.{data.src_lang}", data.dir / f"train.{data.tgt_lang}"]
        for f in files:
            if not f.is_file():
                raise NmtError(f"{f}: training file not found (see data.dir in the config)")
        Tokenizer.train(files, path, vocab_size=data.vocab_size)
    dist.barrier()
    return Tokenizer.load(path)


def load_split(config: Config, tokenizer: Tokenizer, split: str, max_len: int) -> EncodedPairs:
    data = config.data
    src, tgt = data.dir / f"{split}.{data.src_lang}", data.dir / f"{split}.{data.tgt_lang}"
    return encode_parallel(tokenizer, src, tgt, max_len=max_len)


def batch_stream(
    sampler: TokenBudgetSampler, epoch: int, index: int
) -> Iterator[tuple[int, int, list[int]]]:
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
    hyps = translator.translate(src_lines, beam_size=1, max_tokens=config.decoding.max_tokens)
    scores = score(hyps, ref_lines)
    return {
        "nll": nll,
        "ppl": math.exp(min(nll, 50.0)),
        "bleu": scores.bleu,
        "chrf": scores.chrf,
        "bleu_signature": scores.bleu_signature,
    }


def train(config: Config) -> TrainResult:
    tc = config.training
    device = resolve_device(tc.device)
    dist = setup_distributed(device)
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    try:
        return _train(config, device, dist)
    finally:
        teardown_distributed(dist)


def _train(config: Config, device: torch.device, dist: Distributed) -> TrainResult:
    tc, run_dir = config.training, config.training.run_dir
    prepare_run_dir(config, dist)
    tokenizer = prepare_tokenizer(config, dist)
    torch.manual_seed(tc.seed)

    train_data = load_split(config, tokenizer, "train", config.data.max_len)
    if not len(train_data):
        raise NmtError(f"{config.data.dir}: no training pairs left after filtering")
    dev_data = load_split(config, tokenizer, "dev", config.model.max_positions - 1)
    sampler = TokenBudgetSampler(
        train_data.src_lengths, train_data.tgt_lengths, max_tokens=tc.max_tokens, seed=tc.seed
    )
    tgt_lengths = train_data.tgt_lengths + 1  # target tokens a pair adds to the loss (EOS too)

    model = build_model(config.model, tokenizer.vocab_size)
    init_pretrained(model, config, tokenizer)
    model.to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=0.0, betas=(tc.adam_beta1, tc.adam_beta2), eps=tc.adam_eps
    )
    trainer = TrainerState()
    if checkpoints := checkpoint_dirs(run_dir):
        trainer = load_checkpoint(checkpoints[-1], model=model, optimizer=optimizer)
        log.info("resumed from %s (step %d)", checkpoints[-1], trainer.step)
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
    ddp_model = DistributedDataParallel(model) if dist.enabled else model
    stream = batch_stream(sampler, trainer.epoch, trainer.batch_in_epoch)
    batches_per_update = tc.accumulate * dist.world_size
    mine = slice(dist.rank * tc.accumulate, (dist.rank + 1) * tc.accumulate)
    width = model_width(config)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.precision == "bfloat16")

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
    last_saved = trainer.step
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
            batch = train_data.batch(indices).to(device)
            last = i == len(my_batches) - 1
            # DDP averages gradients over ranks: scaling by world / tokens makes the update the
            # gradient of the mean loss per target token of the whole global batch.
            sync = nullcontext() if last or not dist.enabled else ddp_model.no_sync()  # type: ignore[operator]
            with sync:
                with autocast:
                    logits = ddp_model(batch.src, batch.src_mask, batch.tgt_in)
                sums = label_smoothed_loss(logits, batch.tgt_out, epsilon=tc.label_smoothing)
                (sums.smoothed * (dist.world_size / update_tokens)).backward()
            smoothed_sum += float(sums.smoothed.detach())
            nll_sum += float(sums.nll)
        if tc.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip_norm)
        optimizer.step()

        # Ranks' clocks differ; their mean step time keeps every time-based decision (max_minutes,
        # the *_every_minutes periods) the same on all ranks, so none waits on a collective alone.
        smoothed_sum, nll_sum, seconds_sum = dist.all_sum(
            [smoothed_sum, nll_sum, time.perf_counter() - started]
        )
        seconds = seconds_sum / dist.world_size
        trainer.step += 1
        trainer.elapsed_seconds += seconds
        trainer.target_tokens += update_tokens
        window_tokens += update_tokens
        window_seconds += seconds
        loss, nll = smoothed_sum / update_tokens, nll_sum / update_tokens
        if not math.isfinite(loss):
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
        if dist.is_main and (save_due or stop):
            save()
            last_saved = trainer.step
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

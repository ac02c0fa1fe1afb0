"""What a training update keeps in memory, and what its resident size and time are over a run.

Sets up a run of a config as `nmt train` does (its tokenizer and data cache; a fresh run folder
in a temporary directory, with the tokenizer copied from ``--tokenizer-from``), then:

1. among the first ``--scan`` batches of epoch 0, takes the one with the most tokens and the one
   with the most attention (sentences × (S² + T² + S·T)), runs the training's forward (autocast,
   attention path) on each and walks the autograd graph: the distinct storages its nodes saved
   for the backward, weights left out, by node and tensor kind;
2. with ``--updates N``, takes N updates through ``nmt.training.train.take_step`` on the epoch's
   batches in order (validating every ``--validate-every`` as `nmt train` does: greedy dev BLEU,
   perplexity, the curves) and prints the median update time (the first 10 left out), the
   process's peak resident memory, and the least resident size between updates before the first
   validation and after it.

Like `nmt train` it re-executes itself with mimalloc preloaded (NMT_ALLOCATOR=system keeps
glibc's malloc), turns MKL's buffer cache off (as `nmt train` does in bfloat16;
``--keep-mkl-cache`` leaves it on), caps oneDNN's caches, and gives set-up's freed memory back
before updating, so that allocator settings passed in the environment (MIMALLOC_PURGE_DELAY=250,
…) are measured as `nmt train` would run them:

    .venv/bin/python benchmarks/update_memory.py --tokenizer-from runs/quickstart --updates 200
"""

from __future__ import annotations

import argparse
import collections
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from nmt.training.memory import (
    allocator_in_use,
    give_back_freed_memory,
    keep_no_mkl_buffers,
    limit_onednn_cache,
    mkl_buffer_cache,
    run_with_mimalloc,
)

if TYPE_CHECKING:
    import torch


def resident_mib(field: str) -> int:
    status = Path("/proc/self/status").read_text(encoding="utf-8")
    return next(
        int(line.split()[1]) // 1024 for line in status.splitlines() if line.startswith(field)
    )


def saved_for_backward(loss: torch.Tensor, skip: set[int]) -> collections.Counter[str]:
    """Bytes of the distinct storages the graph behind ``loss`` saved, by node and dtype."""
    import torch  # loaded by now: main() sets the environment up before it

    counted, total = set(skip), collections.Counter[str]()
    nodes, seen = [loss.grad_fn], set()
    while nodes:
        node = nodes.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        for name in dir(node):
            if not name.startswith("_saved_"):
                continue
            try:
                value = getattr(node, name)
            except RuntimeError:  # freed, or not a tensor
                continue
            for tensor in value if isinstance(value, (list, tuple)) else [value]:
                if not isinstance(tensor, torch.Tensor):
                    continue
                storage = tensor.untyped_storage()
                if storage.data_ptr() in counted:
                    continue
                counted.add(storage.data_ptr())
                kind = f"{type(node).__name__}.{name.removeprefix('_saved_')} {tensor.dtype}"
                total[kind] += storage.nbytes()
        nodes.extend(next_node for next_node, _ in node.next_functions)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("configs/quickstart.yaml"))
    parser.add_argument("--data", type=Path, default=Path("data/de-en"))
    parser.add_argument("--tokenizer-from", type=Path, required=True, help="a run folder")
    parser.add_argument(
        "--scan", type=int, default=900, help="batches searched for the largest (0: none)"
    )
    parser.add_argument("--updates", type=int, default=0)
    parser.add_argument("--validate-every", type=int, default=0, help="updates (0: never)")
    parser.add_argument(
        "--keep-mkl-cache", action="store_true", help="leave MKL's buffer cache on (its default)"
    )
    args = parser.parse_args()
    if not args.keep_mkl_cache:
        keep_no_mkl_buffers()  # as `nmt train` sets itself up in bfloat16, before torch loads
    run_with_mimalloc()
    limit_onednn_cache()
    from nmt.config import load_config
    from nmt.machine import describe
    from nmt.training.distributed import setup_distributed
    from nmt.training.interrupt import StopSignals
    from nmt.training.setup import set_up
    from nmt.training.train import batch_stream, take_step, validate_between_updates

    print(describe())
    print(f"allocator: {allocator_in_use()}; MKL's buffer cache {mkl_buffer_cache()}")
    with tempfile.TemporaryDirectory() as folder, StopSignals() as stop_signals:
        run_dir = Path(folder) / "run"
        run_dir.mkdir()
        for file in args.tokenizer_from.glob("tokenizer.*"):
            shutil.copy(file, run_dir)
        overrides = [f"data.dir={args.data}", f"training.run_dir={run_dir}"]
        config = load_config(args.config, [*overrides, "training.progress=false"])
        run = set_up(config, setup_distributed(config.training.device))
        model, data = run.model, run.train_data
        ids = {"pad_id": model.pad_id, "bos_id": model.bos_id, "eos_id": model.eos_id}
        batches = run.sampler.epoch_batches(0)[: args.scan]
        shapes = [
            (len(b), int(data.src_lengths[b].max()) + 1, int(data.tgt_lengths[b].max()) + 1)
            for b in batches
        ]

        def tokens(shape: tuple[int, int, int]) -> int:
            n, s, t = shape
            return n * (s + t)

        def attention(shape: tuple[int, int, int]) -> int:
            n, s, t = shape
            return n * (s * s + t * t + s * t)

        weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
        largest = (("most tokens", tokens), ("most attention", attention)) if batches else ()
        for label, size in largest:
            pick = max(range(len(batches)), key=lambda i: size(shapes[i]))
            batch = data.batch(batches[pick], **ids)
            sums = run.loss_of_step(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_out, step=0)
            saved = saved_for_backward(sums.smoothed, weights)
            (n, s), t = batch.src.shape, batch.tgt_in.size(1)
            print(
                f"\n{label} of the first {len(batches)} batches: {n} sentences × {s} / {t} "
                f"pieces; saved for the backward {sum(saved.values()) / 2**20:.1f} MiB:"
            )
            for kind, size in saved.most_common():
                if size >= 2**18:
                    print(f"  {size / 2**20:7.1f} MiB  {kind}")
            del sums, saved
        if args.updates:
            give_back_freed_memory()
            stream = batch_stream(run.sampler, 0, 0)
            seconds, floors = [], [10**9, 10**9]  # least resident size before / after validating
            for update in range(1, args.updates + 1):
                seconds.append(take_step(run, [next(stream)], stop_signals).seconds)
                validated = int(0 < args.validate_every < update)
                floors[validated] = min(floors[validated], resident_mib("VmRSS"))
                if args.validate_every and update % args.validate_every == 0:
                    validate_between_updates(run)
            floor = f"least between updates {floors[0]} MiB"
            if args.validate_every:
                floor += f" before validating, {floors[1]} after"
            print(
                f"\n{args.updates} updates: median {statistics.median(seconds[10:]) * 1000:.0f} ms "
                f"(first 10 left out), peak resident {resident_mib('VmHWM')} MiB; {floor}"
            )


if __name__ == "__main__":
    main()

"""Where a quickstart training update's time goes: attention, feed-forward, the loss over the
vocabulary, backward, the optimizer, autocast's casts, and what is left (Python, small ops).

nmt's Transformer at the quickstart's shape (preset small, pre-LN, 8,000 pieces) on the
quickstart's token-budget batches of the real corpus, bfloat16 autocast as `make demo` trains,
the same loss and Adam as benchmarks/train_throughput.py. torch.profiler records ``--steps``
updates after a warm-up; forward hooks label each sublayer, so the forward pass splits by
sublayer; the backward pass (autograd's own thread) and the optimizer are labelled as wholes.

    .venv/bin/python benchmarks/train_profile.py --tokenizer runs/quickstart/tokenizer.model
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile, record_function
from train_throughput import corpus_tokenizer  # its sibling: run as benchmarks/train_profile.py

from nmt.config import TransformerConfig
from nmt.data.batching import TokenBudgetSampler
from nmt.data.dataset import encode_parallel
from nmt.machine import describe
from nmt.models.transformer import (
    CrossAttention,
    PositionwiseFeedForward,
    SelfAttention,
    Transformer,
)
from nmt.training.loss import label_smoothed_loss

SUBLAYERS: dict[type[nn.Module], str] = {
    SelfAttention: "forward: self-attention",
    CrossAttention: "forward: cross-attention",
    PositionwiseFeedForward: "forward: feed-forward",
}


def label_sublayers(model: Transformer) -> None:
    """Forward hooks that open a profiler range at each sublayer's call and close it after."""
    open_ranges: list[Any] = []

    def enter(name: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            scope = record_function(name)
            scope.__enter__()
            open_ranges.append(scope)

        return hook

    def leave(*_: Any) -> None:
        open_ranges.pop().__exit__(None, None, None)

    for module in model.modules():
        name = SUBLAYERS.get(type(module))
        if module is model.generator:
            name = "forward: output projection"
        if name is not None:
            module.register_forward_pre_hook(enter(name))
            module.register_forward_hook(leave)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/de-en"))
    parser.add_argument("--tokenizer", type=Path, help="a trained tokenizer.model to reuse")
    parser.add_argument("--max-tokens", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--sdpa",
        choices=["default", "math"],
        default="default",
        help="math: F.scaled_dot_product_attention's explicit softmax(QKᵀ/√d)·V path",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tokenizer = corpus_tokenizer(args.data, args.tokenizer, vocab_size=8000)
    pairs = encode_parallel(tokenizer, args.data / "train.en", args.data / "train.de", max_len=100)
    sampler = TokenBudgetSampler(
        pairs.src_lengths, pairs.tgt_lengths, max_tokens=args.max_tokens, seed=0
    )
    batches = [pairs.batch(b) for b in sampler.epoch_batches(0)[: args.steps + 1]]
    model = Transformer(TransformerConfig(preset="small", norm="pre"), tokenizer.vocab_size)
    model.train()
    label_sublayers(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)

    backends = (
        [SDPBackend.MATH] if args.sdpa == "math" else [SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]
    )

    def update(batch: Any) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16), sdpa_kernel(backends):
            logits = model(batch.src, batch.src_mask, batch.tgt_in)
        with record_function("loss over the vocabulary"):
            sums = label_smoothed_loss(logits, batch.tgt_out, epsilon=0.1)
            loss = sums.smoothed / sums.num_tokens
        with record_function("backward"), sdpa_kernel(backends):
            loss.backward()
        with record_function("optimizer"):
            optimizer.step()

    update(batches[0])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches[1:]:
            with record_function("update"):
                update(batch)
    events = prof.key_averages()
    total = next(e.cpu_time_total for e in events if e.key == "update")
    print(f"machine: {describe()}")
    print(
        f"{args.steps} updates, {total / args.steps / 1e3:.0f} ms each (profiled), sdpa {args.sdpa}"
    )
    ranges = [
        *SUBLAYERS.values(),
        "forward: output projection",
        "loss over the vocabulary",
        "backward",
        "optimizer",
    ]
    shares: dict[str, float] = defaultdict(float)
    for event in events:
        if event.key in ranges:
            shares[event.key] += event.cpu_time_total
    casts = sum(e.self_cpu_time_total for e in events if e.key in ("aten::_to_copy", "aten::copy_"))
    shares["rest of forward (embeddings, norms, residuals, Python)"] = total - sum(shares.values())
    for name, micros in shares.items():
        print(f"{name:<55} {micros / total:6.1%}")
    print(f"{'of all: casts and copies (aten::_to_copy, copy_)':<55} {casts / total:6.1%}")
    print(events.table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()

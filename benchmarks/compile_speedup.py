"""torch.compile's speed-up of a training step: the same model, batches and optimizer, eager
against compiled, steps alternating so that both meet the same machine noise.

Prints compilation time, then target tokens per second of each (medians) and their ratio.

    .venv/bin/python benchmarks/compile_speedup.py --data data/de-en --steps 20
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from nmt.config import TransformerConfig
from nmt.data.batching import TokenBudgetSampler
from nmt.data.dataset import encode_parallel
from nmt.data.tokenizer import Tokenizer
from nmt.models.build import build_model
from nmt.training.precision import forward_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, help="a trained tokenizer.model (else trained)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="steps per model not timed")
    parser.add_argument("--max-tokens", type=int, default=3000)
    parser.add_argument("--precision", default="bfloat16", choices=["float32", "bfloat16"])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        files = [args.data / "dev.en", args.data / "dev.de"]
        tokenizer = (
            Tokenizer.load(args.tokenizer)
            if args.tokenizer
            else Tokenizer.train(files, Path(tmp) / "t.model", vocab_size=8000)
        )
    pairs = encode_parallel(tokenizer, args.data / "train.en", args.data / "train.de", max_len=100)
    sampler = TokenBudgetSampler(
        pairs.src_lengths, pairs.tgt_lengths, max_tokens=args.max_tokens, seed=0
    )
    batches = [pairs.batch(b) for b in sampler.epoch_batches(0)[: args.warmup + args.steps]]

    torch.manual_seed(0)
    eager_model = build_model(TransformerConfig(preset="small", norm="pre"), tokenizer.vocab_size)
    compiled_model = copy.deepcopy(eager_model)
    steps = {}
    for name, model, compile in (("eager", eager_model, False), ("compiled", compiled_model, True)):
        loss_of = forward_loss(
            model,
            device_type="cpu",
            precision=args.precision,
            label_smoothing=0.1,
            pad_id=model.pad_id,
            compile=compile,
        )
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        steps[name] = (loss_of, optimizer)

    def step(name: str, i: int) -> float:
        loss_of, optimizer = steps[name]
        batch = batches[i]
        started = time.perf_counter()
        optimizer.zero_grad()
        sums = loss_of(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_out)
        (sums.smoothed / sums.num_tokens).backward()
        optimizer.step()
        return time.perf_counter() - started

    started = time.perf_counter()
    step("compiled", 0)
    print(f"first compiled step (compilation): {time.perf_counter() - started:.0f} s")
    for i in range(1, args.warmup):  # later shapes may compile once more each
        step("compiled", i)
        step("eager", i)
    rates: dict[str, list[float]] = {"eager": [], "compiled": []}
    for i in range(args.warmup, args.warmup + args.steps):
        for name in ("eager", "compiled") if i % 2 else ("compiled", "eager"):
            rates[name].append(batches[i].num_tgt_tokens / step(name, i))
    eager, compiled = statistics.median(rates["eager"]), statistics.median(rates["compiled"])
    print(
        f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{args.precision}: eager {eager:,.0f} target tokens/s, compiled {compiled:,.0f}; "
        f"compiled / eager = {compiled / eager:.2f}"
    )


if __name__ == "__main__":
    main()

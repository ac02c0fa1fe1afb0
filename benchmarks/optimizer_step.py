"""Adam's update on a model's parameters: the implementation `nmt train` uses against the others.

torch.optim.Adam has three implementations: a Python loop over the parameters (the CPU's default:
a dozen small operations per parameter tensor), ``foreach`` (the same operations batched across
tensors; CUDA's default) and ``fused`` (one kernel per tensor, on the CPU too). `nmt train` builds
the fused one (nmt.training.setup). This times one update of each on the same parameters and
gradients, alternating, and prints the medians and their ratios to the fused one.

    .venv/bin/python benchmarks/optimizer_step.py                      # the quickstart's model
    .venv/bin/python benchmarks/optimizer_step.py --preset base --vocab-size 37000
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nmt.config import TransformerConfig
from nmt.machine import describe
from nmt.models.transformer import Transformer

IMPLEMENTATIONS = {
    "loop": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small", help="TRANSFORMER_PRESETS name (small)")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    print(describe())
    torch.manual_seed(0)
    models = {
        name: Transformer(TransformerConfig(preset=args.preset), args.vocab_size)
        for name in IMPLEMENTATIONS
    }
    optimizers = {}
    for name, model in models.items():
        for parameter in model.parameters():
            parameter.grad = torch.randn_like(parameter)
        optimizers[name] = torch.optim.Adam(
            model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9, **IMPLEMENTATIONS[name]
        )
    count = sum(p.numel() for p in models["fused"].parameters())
    times: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
    for repeat in range(args.repeats + 3):
        for name, optimizer in optimizers.items():
            start = time.perf_counter()
            optimizer.step()
            if repeat >= 3:  # the first steps create Adam's moments
                times[name].append(time.perf_counter() - start)
    fused = statistics.median(times["fused"])
    print(f"Adam update of {count:,} parameters, median of {args.repeats}:")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"  {name:8s} {median * 1000:7.2f} ms   {median / fused:5.2f}x fused")


if __name__ == "__main__":
    main()

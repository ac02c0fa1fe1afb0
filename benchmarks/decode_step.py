"""Where one decoding step's time goes at batch 1 on an OPUS-MT-shaped model, and what
torch.compile of the step does to it.

Builds nmt's Transformer with opus-mt-en-de's shape in memory (d_model 512, 6 + 6 layers, 8
heads, d_ff 2048, swish, 58,101 pieces, output bias; random weights: a step's cost does not
depend on the values), encodes one 16-piece source for 4 beams, and times ``decode_step`` at
position 10 to 40 of a cache, as beam search at batch 1 calls it. Prints:

- the median step time, eager float32 (plain ``nn.Linear``), float32 with the linear layers
  packed for oneDNN (nmt.models.packed: what ``Translator.load`` runs), eager int8
  (nmt.models.quantize: per-row scales), the per-tensor int8 of
  ``torch.ao.quantization.quantize_dynamic`` that nmt used before (fbgemm; its outputs depend
  on the batch) and, with ``--compile``, float32 with the decoder stack torch.compile'd
  (inductor, dynamic shapes, frozen weights), and how long its first call took;
- torch.profiler's table of operators by self CPU time for the packed float32 step.

    .venv/bin/python benchmarks/decode_step.py --rows 4 --steps 30
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import cast

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from nmt.config import TransformerConfig
from nmt.machine import describe
from nmt.models.interface import EncodeOptions
from nmt.models.packed import pack_linear_layers
from nmt.models.quantize import quantize_int8
from nmt.models.transformer import Transformer

VOCAB = 58101


def opus_mt_shaped() -> Transformer:
    config = TransformerConfig(
        num_layers=6, d_model=512, d_ff=2048, num_heads=8, dropout=0.0, activation="swish",
        position_layout="concatenated", output_bias=True, max_positions=512,
    )  # fmt: skip
    torch.manual_seed(0)
    return Transformer(config, VOCAB, pad_id=VOCAB - 1, bos_id=VOCAB - 1, eos_id=0).eval()


def time_steps(model: Transformer, rows: int, steps: int) -> list[float]:
    """Seconds of each of ``steps`` decode steps after 10 warm-up steps, ``rows`` rows over one
    sentence of 16 pieces."""
    src = torch.randint(1, VOCAB - 1, (1, 16))
    src_mask = torch.ones_like(src, dtype=torch.bool)
    times = []
    with torch.inference_mode():
        state = model.encode(src, src_mask, EncodeOptions(max_steps=10 + steps + 1))
        state.select(torch.zeros(rows, dtype=torch.long))
        prev = torch.randint(1, VOCAB - 1, (rows,))
        for step in range(10 + steps):
            started = time.perf_counter()
            log_probs, state = model.decode_step(prev, state)
            if step >= 10:
                times.append(time.perf_counter() - started)
            prev = log_probs.argmax(-1)
    return times


def profile_step(model: Transformer, rows: int, steps: int) -> str:
    src = torch.randint(1, VOCAB - 1, (1, 16))
    with torch.inference_mode():
        state = model.encode(
            src, torch.ones_like(src, dtype=torch.bool), EncodeOptions(max_steps=steps + 11)
        )
        state.select(torch.zeros(rows, dtype=torch.long))
        prev = torch.randint(1, VOCAB - 1, (rows,))
        for _ in range(10):
            _, state = model.decode_step(prev, state)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                _, state = model.decode_step(prev, state)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4, help="beams × sentences (default 4)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--compile", action="store_true", help="also torch.compile the step")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-profile", action="store_true", help="the timings only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {describe()}")
    print("(a machine shared with other jobs: compare within this run only)")
    packed = pack_linear_layers(opus_mt_shaped())  # what Translator.load runs
    if not args.no_profile:
        print(profile_step(cast(Transformer, packed), args.rows, args.steps))
    variants: dict[str, nn.Module] = {"eager float32": opus_mt_shaped(), "packed float32": packed}
    if args.compile:
        # Inductor's freezing treats the weights as constants and packs them for oneDNN itself
        # (nmt's PackedLinear holds an opaque oneDNN tensor, which inductor does not lower).
        # Set globally: passed as torch.compile(options=...) it measured no faster than without.
        torch._inductor.config.freezing = True
        compiled = opus_mt_shaped()
        compiled.decoder = torch.compile(compiled.decoder, dynamic=True)  # type: ignore[method-assign]
        variants["compiled float32"] = compiled
        started = time.perf_counter()
        time_steps(compiled, args.rows, 1)  # compiles, for every shape a search meets early
        print(f"torch.compile: the first 11 steps took {time.perf_counter() - started:.1f} s")
    variants["eager int8"] = quantize_int8(opus_mt_shaped())
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notices
        warnings.simplefilter("ignore")
        # nmt's int8 before 2026-12: fbgemm, one activation scale per tensor (batch-dependent).
        variants["int8 per-tensor"] = torch.ao.quantization.quantize_dynamic(
            opus_mt_shaped(), {nn.Linear}, dtype=torch.qint8
        )
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(3):  # rounds, alternating, so all meet the same machine noise
        for name, variant in variants.items():
            results[name] += time_steps(cast(Transformer, variant), args.rows, args.steps)
    base = statistics.median(results["eager float32"])
    for name, times in results.items():
        median = statistics.median(times)
        print(f"{name:<18} {median * 1e3:7.2f} ms per step ({base / median:.2f}× eager float32)")


if __name__ == "__main__":
    main()

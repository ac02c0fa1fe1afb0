"""Training throughput: nmt's Transformer against torch.nn.Transformer, same run, same batches.

Both models have the same size, see the same token-budget batches of the real corpus, use the
same label-smoothed loss and the same Adam; their steps alternate so that both meet the same
machine noise. Prints target tokens per second (medians), the ratio nmt / reference, nmt's
achieved FLOP/s as a share of this machine's measured float32 matmul peak, and the process's peak
resident memory.

    .venv/bin/python benchmarks/train_throughput.py --data data/de-en --steps 20

``--models nmt --precision bfloat16`` trains nmt's model alone under bfloat16 autocast, as the
quickstart does, so that the peak resident memory printed is the training step's own; run it
with and without glibc's allocator settings (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``) to
see what the allocator holds (docs/performance.md).
"""

from __future__ import annotations

import argparse
import ctypes
import math
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from nmt.config import TransformerConfig
from nmt.data.batching import Batch, TokenBudgetSampler
from nmt.data.dataset import encode_parallel
from nmt.data.tokenizer import PAD_ID, Tokenizer
from nmt.models.transformer import Transformer, sinusoidal_positions
from nmt.training.loss import label_smoothed_loss
from nmt.training.precision import training_attention


class ReferenceTransformer(nn.Module):
    """The same model built from torch.nn.Transformer: shared embeddings, sinusoids, post-LN."""

    positions: Tensor

    def __init__(self, config: TransformerConfig, vocab_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, config.d_model, padding_idx=PAD_ID)
        self.register_buffer(
            "positions", sinusoidal_positions(config.max_positions, config.d_model)
        )
        self.transformer = nn.Transformer(
            d_model=config.d_model,
            nhead=config.num_heads,
            num_encoder_layers=config.num_layers,
            num_decoder_layers=config.num_layers,
            dim_feedforward=config.d_ff,
            dropout=config.dropout,
            batch_first=True,
        )
        self.generator = nn.Linear(config.d_model, vocab_size, bias=False)
        self.generator.weight = self.embed.weight
        self.dropout = nn.Dropout(config.dropout)
        self.scale = math.sqrt(config.d_model)

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        def embed(tokens: Tensor) -> Tensor:
            return self.dropout(self.embed(tokens) * self.scale + self.positions[: tokens.size(1)])

        causal = nn.Transformer.generate_square_subsequent_mask(tgt_in.size(1))
        out = self.transformer(
            embed(src),
            embed(tgt_in),
            tgt_mask=causal,
            tgt_is_causal=True,
            src_key_padding_mask=~src_mask,
            memory_key_padding_mask=~src_mask,
        )
        return self.generator(out)


def resident_mib(field: str = "VmHWM") -> float:
    """This process's peak (VmHWM) or current (VmRSS) resident memory, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_resident() -> None:
    """Start VmHWM again from the current resident size (Linux's clear_refs, value 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, *, bfloat16: bool = False
) -> float:
    """One update; returns its wall time in seconds."""
    started = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    # The attention kernel nmt's training picks (its explicit path on the CPU), for both models.
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16), training_attention("cpu"):
        logits = model(batch.src, batch.src_mask, batch.tgt_in)
    sums = label_smoothed_loss(logits, batch.tgt_out, epsilon=0.1)
    (sums.smoothed / sums.num_tokens).backward()
    optimizer.step()
    return time.perf_counter() - started


def matmul_peak_flops(size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times)


def step_flops(model: nn.Module, batch: Batch) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        logits = model(batch.src, batch.src_mask, batch.tgt_in)
        label_smoothed_loss(logits, batch.tgt_out, epsilon=0.1).smoothed.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def corpus_tokenizer(data: Path, saved: Path | None, *, vocab_size: int) -> Tokenizer:
    """The tokenizer at ``saved``, or one trained now on the corpus in ``data`` (not kept)."""
    if saved is not None:
        return Tokenizer.load(saved)
    with tempfile.TemporaryDirectory() as tmp:
        return Tokenizer.train(
            [data / "train.en", data / "train.de"],
            Path(tmp) / "tokenizer.model",
            vocab_size=vocab_size,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/de-en"))
    parser.add_argument("--preset", default="small", choices=["small", "base", "big"])
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--max-tokens", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=20, help="measured steps per model")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["nmt", "reference"])
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--tokenizer", type=Path, help="a trained tokenizer.model to reuse")
    parser.add_argument(
        "--malloc-trim", action="store_true", help="glibc malloc_trim(0) after every step"
    )
    args = parser.parse_args()

    torch.manual_seed(0)
    tokenizer = corpus_tokenizer(args.data, args.tokenizer, vocab_size=args.vocab_size)
    pairs = encode_parallel(tokenizer, args.data / "train.en", args.data / "train.de", max_len=100)
    sampler = TokenBudgetSampler(
        pairs.src_lengths, pairs.tgt_lengths, max_tokens=args.max_tokens, seed=0
    )
    batches = [pairs.batch(b) for b in sampler.epoch_batches(0)[: args.warmup + args.steps]]

    config = TransformerConfig(preset=args.preset)
    builders = {"nmt": Transformer, "reference": ReferenceTransformer}
    models: dict[str, nn.Module] = {
        name: builders[name](config, tokenizer.vocab_size) for name in args.models
    }
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    optimizers = {
        name: torch.optim.Adam(m.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
        for name, m in models.items()
    }
    for model in models.values():
        model.train()
    times: dict[str, list[float]] = {name: [] for name in models}
    tokens: list[int] = []
    libc = ctypes.CDLL("libc.so.6") if args.malloc_trim else None
    # The tokenizer's training (SentencePiece's C++ heap) peaks before: leave it out.
    setup_peak, setup_rss = resident_mib("VmHWM"), resident_mib("VmRSS")
    reset_peak_resident()
    for i, batch in enumerate(batches):
        for name in args.models if i % 2 else reversed(args.models):
            seconds = train_step(
                models[name], optimizers[name], batch, bfloat16=args.precision == "bfloat16"
            )
            if i >= args.warmup:
                times[name].append(seconds)
            if libc is not None:
                libc.malloc_trim(0)
        if i >= args.warmup:
            tokens.append(batch.num_tgt_tokens)

    loop_peak, loop_end = resident_mib("VmHWM"), resident_mib("VmRSS")
    # Per-token time: batches differ in size, so compare seconds per target token.
    rates = {
        name: statistics.median(tok / sec for tok, sec in zip(tokens, ts, strict=True))
        for name, ts in times.items()
    }
    flops_per_token = statistics.median(
        step_flops(models["nmt"], b) / b.num_tgt_tokens for b in batches[args.warmup :][:5]
    )
    peak = matmul_peak_flops()
    achieved = flops_per_token * rates["nmt"]
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(
        f"model: Transformer {args.preset}, vocab {tokenizer.vocab_size}, "
        f"max_tokens {args.max_tokens}, {args.steps} steps each"
    )
    print("parameters: " + ", ".join(f"{name} {count:,}" for name, count in params.items()))
    for name in models:
        print(f"{name:>10}: {rates[name]:8.0f} target tokens/s (median)")
    if "reference" in rates:
        print(f"ratio nmt / reference: {rates['nmt'] / rates['reference']:.3f}")
    print(
        f"nmt achieved {achieved / 1e9:.1f} GFLOP/s "
        f"({flops_per_token / 1e6:.1f} MFLOP per target token); "
        f"matmul peak {peak / 1e9:.1f} GFLOP/s; share {achieved / peak:.1%}"
    )
    print(
        f"resident memory, {args.precision}, models {', '.join(args.models)}: peak during the "
        f"steps {loop_peak:.0f} MiB, after them {loop_end:.0f} MiB; before the steps "
        f"{setup_rss:.0f} MiB (set-up peak {setup_peak:.0f} MiB)"
    )


if __name__ == "__main__":
    main()

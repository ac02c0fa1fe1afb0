"""Decoding speed: beam search with the key/value cache against the same search without it.

Without the cache every step re-runs the decoder over the whole prefix (as JoeyNMT does), so a
step costs the prefix length instead of one position. Both searches are the same
``beam_search`` on the same batches of the real test set with the same trained model, in the
same run; their outputs are checked to be identical. Prints sentences and target tokens per
second at batch 1 and batch 32, and the speed-up.

    .venv/bin/python benchmarks/decode.py --model runs/quickstart/averaged --src data/de-en/test.en
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from nmt.config import DecodingConfig
from nmt.data.batching import pad_sequences
from nmt.data.parallel import iter_lines
from nmt.data.tokenizer import EOS_ID, PAD_ID
from nmt.decoding.search import beam_search
from nmt.models.interface import DEFAULT_ENCODE_OPTIONS, DecoderState, EncodeOptions
from nmt.models.store import load_model_dir
from nmt.models.transformer import Transformer


@dataclass
class PrefixState:
    """The uncached state: the encoder output and every token fed so far."""

    memory: Tensor  # (B, S, D)
    src_mask: Tensor  # (B, S)
    prefix: Tensor  # (B, t)
    attention: Tensor | None = None  # never recorded here

    def select(self, indices: Tensor) -> PrefixState:
        return PrefixState(
            self.memory.index_select(0, indices),
            self.src_mask.index_select(0, indices),
            self.prefix.index_select(0, indices),
        )


class UncachedTransformer:
    """The model contract without incremental state: each step decodes the whole prefix."""

    def __init__(self, model: Transformer) -> None:
        self.model = model
        self.pad_id, self.bos_id, self.eos_id = model.pad_id, model.bos_id, model.eos_id

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        return self.model(src, src_mask, tgt_in)

    def encode(
        self, src: Tensor, src_mask: Tensor, options: EncodeOptions = DEFAULT_ENCODE_OPTIONS
    ) -> PrefixState:
        empty = torch.empty(src.size(0), 0, dtype=torch.long)
        return PrefixState(self.model.encoder(src, src_mask), src_mask, empty)

    def decode_step(self, prev_tokens: Tensor, state: DecoderState) -> tuple[Tensor, PrefixState]:
        assert isinstance(state, PrefixState)
        prefix = torch.cat([state.prefix, prev_tokens[:, None]], dim=1)
        memory = self.model.memory_keys_values(state.memory)
        logits = self.model.decoder(prefix, memory, state.src_mask[:, None, None, :])[0][:, -1]
        return F.log_softmax(logits, dim=-1), PrefixState(state.memory, state.src_mask, prefix)

    def cross_attention(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor | None:
        return self.model.cross_attention(src, src_mask, tgt_in)


def batches_of(ids: list[list[int]], size: int) -> list[list[list[int]]]:
    """Sentences sorted by length, cut into batches of ``size`` (as a translator would)."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    return [[ids[i] for i in order[start : start + size]] for start in range(0, len(ids), size)]


def run(
    model: object, batches: list[list[list[int]]], options: DecodingConfig
) -> tuple[float, int, list]:
    """Seconds, target tokens produced and the outputs of beam search over all batches."""
    outputs, tokens = [], 0
    started = time.perf_counter()
    for batch in batches:
        src = pad_sequences(batch, suffix=EOS_ID)
        hyps = beam_search(model, src, src != PAD_ID, options)  # type: ignore[arg-type]
        for nbest in hyps:
            outputs.append(nbest[0].tokens)
            tokens += len(nbest[0].tokens) + 1  # + EOS
    return time.perf_counter() - started, tokens, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("runs/quickstart/averaged"))
    parser.add_argument("--src", type=Path, default=Path("data/de-en/test.en"))
    parser.add_argument("--sentences", type=int, default=320, help="test sentences decoded")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="median over this many runs")
    args = parser.parse_args()

    loaded = load_model_dir(args.model)
    if not isinstance(loaded.model, Transformer):
        raise SystemExit("the decode benchmark compares Transformer key/value caching")
    lines = [line for line in iter_lines(args.src) if line.strip()][: args.sentences]
    ids = loaded.tokenizer.encode_batch(lines)
    options = DecodingConfig(beam_size=args.beam, length_penalty=0.6)
    models = {"cached": loaded.model, "uncached": UncachedTransformer(loaded.model)}
    threads = torch.get_num_threads()
    print(f"machine: {platform.machine()}, {threads} threads, torch {torch.__version__}")
    print(f"model: {args.model}, {len(ids)} sentences of {args.src}, beam {args.beam}, α 0.6")
    with torch.inference_mode():
        for batch_size in (1, 32):
            batches = batches_of(ids, batch_size)
            rates: dict[str, tuple[float, float]] = {}
            outputs = {}
            for name, model in models.items():
                runs = [run(model, batches, options) for _ in range(args.repeats)]
                seconds = statistics.median(r[0] for r in runs)
                rates[name] = (len(ids) / seconds, runs[0][1] / seconds)
                outputs[name] = runs[0][2]
            same = outputs["cached"] == outputs["uncached"]
            for name, (sentences, tokens) in rates.items():
                print(
                    f"batch {batch_size:>2} {name:>8}: "
                    f"{sentences:7.1f} sentences/s {tokens:8.0f} tokens/s"
                )
            speedup = rates["cached"][0] / rates["uncached"][0]
            print(
                f"batch {batch_size:>2} speed-up cached / uncached: {speedup:.2f}x "
                f"(identical output: {same})"
            )


if __name__ == "__main__":
    main()

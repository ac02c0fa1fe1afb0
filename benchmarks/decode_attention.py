"""Decoding's encoder–decoder attention on the CPU: the step attention nmt runs (two batched
matmuls over a StepMemory, nmt.models.transformer) against PyTorch's fused kernel, timed call by
call inside a real translation, the two alternating (which goes first flips each call, so cache
warmth favours neither), on the same queries and keys. Prints each one's total time and the
ratio, per batch size, with the machine's line. End-to-end rounds on a machine whose speed
moves by ±10 % within a minute cannot show a 5 % change; this can.

    .venv/bin/python benchmarks/decode_attention.py runs/quickstart/averaged
    .venv/bin/python benchmarks/decode_attention.py /tmp/opus-mt-shape/nmt --int8 --max-len-b 12
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import Tensor

from nmt.config import DecodingConfig
from nmt.data.parallel import iter_lines
from nmt.decoding.engines import load_engine
from nmt.machine import describe
from nmt.models import transformer
from nmt.models.transformer import StepMemory


class Alternating:
    """Stands in for ``step_attention``: runs it and the fused kernel on each call's inputs,
    in alternating order, and keeps the step attention's result."""

    def __init__(self) -> None:
        self.step_attention = transformer.step_attention
        self.seconds = {"fused": 0.0, "step": 0.0}
        self.calls = 0

    def __call__(self, query: Tensor, memory: StepMemory) -> tuple[Tensor, Tensor]:
        key = memory.keys_t.transpose(-2, -1)  # the keys (M, H, S, K), as a view
        mask = memory.bias[:, :1] == 0  # (M, 1, 1, S): True where attention is allowed

        def fused() -> None:
            transformer.scaled_dot_product_attention(query, key, memory.values, mask)

        def step() -> None:
            nonlocal result
            result = self.step_attention(query, memory)

        result: tuple[Tensor, Tensor] | None = None
        order = [("fused", fused), ("step", step)]
        if self.calls % 2:
            order.reverse()
        for name, run in order:
            started = time.perf_counter()
            run()
            self.seconds[name] += time.perf_counter() - started
        self.calls += 1
        assert result is not None
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--src", type=Path, default=Path("data/de-en/test.en"))
    parser.add_argument("--sentences", type=int, default=320, help="at batch 32 (a tenth at 1)")
    parser.add_argument("--int8", action="store_true")
    parser.add_argument("--max-len-b", type=int, default=200, help="12 for the OPUS-MT shape")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print(describe())
    translator = load_engine([args.model], int8=args.int8)
    sentences = [s for s in iter_lines(args.src) if s.strip()][: args.sentences]
    options = DecodingConfig(
        beam_size=4, length_penalty=0.0, max_len_a=0.0, max_len_b=args.max_len_b
    )
    for batch, count in ((32, len(sentences)), (1, max(1, len(sentences) // 10))):
        timer = Alternating()
        transformer.step_attention = timer  # type: ignore[assignment]
        try:
            for i in range(0, count, batch):
                translator.translate_nbest(sentences[i : min(i + batch, count)], options)
        finally:
            transformer.step_attention = timer.step_attention
        fused, step = timer.seconds["fused"], timer.seconds["step"]
        print(
            f"batch {batch}, {count} sentences, {timer.calls} calls: fused kernel {fused * 1e3:.0f}"
            f" ms, step attention {step * 1e3:.0f} ms: step / fused {step / fused:.2f}"
        )


if __name__ == "__main__":
    main()

"""nmt float32 on the CPU with its linear layers as Translator.load packs them for oneDNN
(nmt.models.packed) against all of them plain, on the same sentences in one process: one
sentence a call (interactive use) and 32 a call, alternating the two models, medians of
``--repeats``. Prints sentences/s, the ratio, how many outputs differ, and which layers are
packed.

    .venv/bin/python benchmarks/packed_layers.py runs/quickstart/averaged --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from nmt.data.parallel import iter_lines
from nmt.decoding.engines import load_engine
from nmt.decoding.translator import Translator
from nmt.machine import describe
from nmt.models.packed import PackedLinear


def rate(translator: Translator, sentences: list[str], batch: int) -> tuple[float, list[str]]:
    started = time.perf_counter()
    outputs = []
    for i in range(0, len(sentences), batch):
        outputs += translator.translate(sentences[i : i + batch])
    return len(sentences) / (time.perf_counter() - started), outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--src", type=Path, default=Path("data/de-en/test.en"))
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sentences = [s for s in iter_lines(args.src) if s.strip()][: args.sentences]
    models: dict[str, Callable[[], Translator]] = {
        "packed": lambda: load_engine([args.model]),
        "plain": lambda: load_engine([args.model], packed=False),
    }
    translators = {name: load() for name, load in models.items()}
    packed = [
        name
        for name, module in translators["packed"].model.named_modules()  # type: ignore[attr-defined]
        if isinstance(module, PackedLinear)
    ]
    print(describe())
    shown = ", ".join(packed[:4]) + (", …" if len(packed) > 4 else "")
    print(f"{args.model}: {len(packed)} layers packed ({shown})")
    for batch in (1, 32):
        rates: dict[str, list[float]] = {name: [] for name in translators}
        outputs: dict[str, list[str]] = {}
        for translator in translators.values():  # warm-up
            translator.translate(sentences[:batch])
        for _ in range(args.repeats):
            for name, translator in translators.items():
                value, outputs[name] = rate(translator, sentences, batch)
                rates[name].append(value)
        packed_rate, plain_rate = (statistics.median(rates[n]) for n in ("packed", "plain"))
        differ = sum(a != b for a, b in zip(outputs["packed"], outputs["plain"], strict=True))
        print(
            f"batch {batch}: packed {packed_rate:.1f} sentences/s, plain {plain_rate:.1f} "
            f"({packed_rate / plain_rate:.2f}x); outputs differing {differ} of {len(sentences)}"
        )


if __name__ == "__main__":
    main()

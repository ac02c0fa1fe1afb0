"""The same weights through five engines: nmt float32, bfloat16 and int8, CTranslate2 float32
and int8 — speed, BLEU, and how often each agrees with nmt float32.

Every engine translates the same test sentences (in file order) with the same search options
(the model's ``decoding`` section with beam 4) in batches of 32 sentences and one at a time;
each measurement is the median of 3 runs in this one process. torch and CTranslate2 use the same
number of threads. Prints the machine (CPU model, threads, versions and a measured float32
matmul rate) first, so that numbers from different machines are not compared blindly.

    .venv/bin/python benchmarks/engines.py --model runs/quickstart/averaged \\
        --src data/de-en/test.en --ref data/de-en/test.de

The length limit is one for all sentences by default (a = 0, b = 200, capped by the model's
positions): CTranslate2 takes one limit per call, so nmt's per-sentence a·|X| + b would cost it
one call per distinct limit in a batch (nmt.decoding.engines), a handicap nmt's search does not
have; with early stopping the limit decides no output of a trained model here.

CTranslate2 divides log P by |Y|^α where nmt uses GNMT's ((5 + |Y|) / 6)^α, so with α > 0 a
share of outputs differs by design (see nmt.decoding.engines); ``--length-penalty 0`` makes the
two searches the same algorithm.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
from train_throughput import matmul_peak_flops

from nmt.config import DecodingConfig
from nmt.data.parallel import iter_lines
from nmt.decoding.engines import CTranslate2Translator, load_translator
from nmt.decoding.translator import Translation, Translator
from nmt.evaluation.scoring import score


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def engines(model_dir: Path, threads: int) -> dict[str, Translator]:
    bfloat16 = load_translator([model_dir])
    bfloat16.model.to(torch.bfloat16)  # type: ignore[attr-defined]
    return {
        "nmt float32": load_translator([model_dir]),
        "nmt bfloat16": bfloat16,
        "nmt int8": load_translator([model_dir], int8=True),
        "ct2 float32": CTranslate2Translator.load(model_dir, threads=threads),
        "ct2 int8": CTranslate2Translator.load(model_dir, int8=True, threads=threads),
    }


def run(
    translator: Translator, chunks: list[list[str]], options: DecodingConfig
) -> tuple[float, list[Translation]]:
    """Seconds to translate every chunk (one call each), and the best translations."""
    outputs: list[Translation] = []
    started = time.perf_counter()
    with torch.inference_mode():
        for chunk in chunks:
            outputs.extend(best[0] for best in translator.translate_nbest(chunk, options))
    return time.perf_counter() - started, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("runs/quickstart/averaged"))
    parser.add_argument("--src", type=Path, default=Path("data/de-en/test.en"))
    parser.add_argument("--ref", type=Path, help="references: BLEU per engine")
    parser.add_argument("--sentences", type=int, default=1000, help="the first N (default 1000)")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--length-penalty", type=float, help="α (default: the model's)")
    parser.add_argument("--max-len-a", type=float, default=0.0, help="length limit a·|X| + b")
    parser.add_argument("--max-len-b", type=int, default=200, help="(default: 200 for all)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 1])
    parser.add_argument("--repeats", type=int, default=3, help="median over this many runs")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()

    import ctranslate2

    torch.set_num_threads(args.threads)
    src = list(iter_lines(args.src))[: args.sentences]
    ref = list(iter_lines(args.ref))[: args.sentences] if args.ref else None
    translators = engines(args.model, args.threads)
    reference = translators["nmt float32"]
    options = reference.default_options.updated(
        beam_size=args.beam,
        length_penalty=args.length_penalty,
        max_len_a=args.max_len_a,
        max_len_b=args.max_len_b,
        max_tokens=1_000_000,  # one batch per chunk
    )
    print(
        f"machine: {cpu_model()}, {args.threads} threads, torch {torch.__version__}, "
        f"ctranslate2 {ctranslate2.__version__}, float32 matmul "
        f"{matmul_peak_flops() / 1e9:.0f} GFLOP/s"
    )
    print(
        f"model: {args.model}; {len(src)} sentences of {args.src}; beam {options.beam_size}, "
        f"α {options.length_penalty}, stopping {options.stopping}; "
        f"median of {args.repeats} runs"
    )
    for batch_size in args.batch_sizes:
        chunks = [src[i : i + batch_size] for i in range(0, len(src), batch_size)]
        baseline: list[str] | None = None
        print(f"\nbatch {batch_size}")
        header = f"{'engine':<14}{'sent/s':>9}{'tok/s':>9}{'same as nmt f32':>17}"
        print(header + (f"{'BLEU':>7}" if ref else ""))
        for name, translator in translators.items():
            runs = [run(translator, chunks, options) for _ in range(args.repeats)]
            seconds = statistics.median(r[0] for r in runs)
            outputs = runs[0][1]
            texts = [t.text for t in outputs]
            tokens = sum(len(t.tokens) for t in outputs)
            if baseline is None:
                baseline = texts
            same = sum(a == b for a, b in zip(texts, baseline, strict=True)) / len(texts)
            line = f"{name:<14}{len(src) / seconds:9.1f}{tokens / seconds:9.0f}{same:17.1%}"
            if ref is not None:
                line += f"{score(texts, ref).bleu:7.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()

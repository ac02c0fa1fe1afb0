"""The same weights through several engines: nmt float32, bfloat16 and int8, CTranslate2 float32
and int8 (and transformers, for an OPUS-MT-shaped model) — speed, output tokens, BLEU, how often
each agrees with nmt float32, and each engine's speed as a ratio of CTranslate2's.

Every engine translates the same test sentences (in file order) with the same search options
(the model's ``decoding`` section with beam 4) in batches of 32 sentences and one at a time;
each measurement is the median of 3 runs in this one process. torch and CTranslate2 use the same
number of threads. Prints the machine (CPU model, threads, versions and a measured float32
matmul rate) first, so that numbers from different machines are not compared blindly.

    .venv/bin/python benchmarks/engines.py --model runs/quickstart/averaged \\
        --src data/de-en/test.en --ref data/de-en/test.de

On an OPUS-MT-shaped model (opus-mt-en-de's configuration, random weights shaped to translate
at realistic lengths; benchmarks/opus_mt_shape.py builds it, offline, on first use):

    .venv/bin/python benchmarks/engines.py --opus-mt /tmp/opus-mt-shape --sentences 200 \\
        --length-penalty 0

adds transformers' MarianMTModel.generate on the Marian folder itself (beam 4, its own
tokenizer), and leaves bfloat16 out. Every engine prints how many output tokens it generated, so
unequal work is visible beside its tokens/s. Its outputs all run to one length limit, set to
the references' mean length in target pieces (see opus_mt_shape.py for why and how).

The length limit is one for all sentences by default (a = 0, b = 200, capped by the model's
positions): CTranslate2 takes one limit per call, so nmt's per-sentence a·|X| + b would cost it
one call per distinct limit in a batch (nmt.decoding.engines), a handicap nmt's search does not
have; with early stopping the limit decides no output of a trained model here.

While a CTranslate2 translator that has run is alive in a process, PyTorch runs slower in it:
nmt float32 at batch 1 on the quickstart model fell from 47 to 17 sentences/s after CTranslate2
had translated 5 sentences, and came back to 46 once that translator was deleted (its two
threads gone; OMP_WAIT_POLICY and GOMP_SPINCOUNT did not change it). So each engine is loaded
when its turn comes and deleted after it, every PyTorch engine first, CTranslate2 last.

``--rounds R`` runs every engine R times in turn, each loaded afresh, and prints each ratio per
round and their median: this machine's speed drifts by 10 % within minutes, and engines measured
in the same round share the drift (``--engines`` keeps only the named ones).

CTranslate2 divides log P by |Y|^α where nmt uses GNMT's ((5 + |Y|) / 6)^α, so with α > 0 a
share of outputs differs by design (see nmt.decoding.engines); ``--length-penalty 0`` makes the
two searches the same algorithm.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from nmt.config import DecodingConfig
from nmt.data.parallel import iter_lines
from nmt.decoding.translator import Translation, Translator
from nmt.evaluation.scoring import score
from nmt.machine import describe


class TransformersMarian:
    """transformers' MarianMTModel.generate with the search options nmt uses (beam, α, limit)."""

    def __init__(self, marian_dir: Path) -> None:
        from transformers import MarianMTModel, MarianTokenizer

        self.model = MarianMTModel.from_pretrained(marian_dir).eval()
        self.tokenizer = MarianTokenizer.from_pretrained(marian_dir)

    def translate_nbest(
        self, sentences: list[str], options: DecodingConfig
    ) -> list[list[Translation]]:
        inputs = self.tokenizer(sentences, return_tensors="pt", padding=True)
        out = self.model.generate(
            **inputs,
            num_beams=options.beam_size,
            length_penalty=options.length_penalty,
            early_stopping=options.stopping == "early",
            max_new_tokens=options.max_len_b + 1,  # + EOS
        )
        special = {self.tokenizer.pad_token_id, self.tokenizer.eos_token_id}
        found = []
        for row in out.tolist():
            tokens = [t for t in row[1:] if t not in special]
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            found.append([Translation(text=text, tokens=tokens, score=0.0)])
        return found


def engines(
    model_dir: Path, threads: int, *, marian_dir: Path | None = None
) -> dict[str, Callable[[], Translator | TransformersMarian]]:
    """How to load every engine on the same weights, in the order they are to run: each is
    loaded when its turn comes (after the PyTorch engines have run, for CTranslate2: see the
    docstring). ``marian_dir``: the Marian folder they came from, which adds transformers and
    leaves out bfloat16 (no engine to compare it with)."""

    def bfloat16() -> Translator:
        translator = Translator.load(model_dir)
        translator.model.to(torch.bfloat16)  # type: ignore[attr-defined]
        return translator

    found: dict[str, Callable[[], Translator | TransformersMarian]] = {
        "nmt float32": lambda: Translator.load(model_dir),
        "nmt int8": lambda: Translator.load(model_dir, int8=True),
    }
    if marian_dir is not None:
        found["transformers"] = lambda: TransformersMarian(marian_dir)
    else:
        found["nmt bfloat16"] = bfloat16
    found["ct2 float32"] = lambda: Translator.load(model_dir, engine="ctranslate2", threads=threads)
    found["ct2 int8"] = lambda: Translator.load(
        model_dir, engine="ctranslate2", int8=True, threads=threads
    )
    return found


# Whose speed each engine's is divided by.
RATIO_TO = {"nmt float32": "ct2 float32", "nmt int8": "ct2 int8", "nmt bfloat16": "ct2 float32"}


def run(
    translator: Translator | TransformersMarian, chunks: list[list[str]], options: DecodingConfig
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
    parser.add_argument(
        "--opus-mt", type=Path, metavar="DIR", help="build (once) and use an OPUS-MT-shaped model"
    )
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
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every engine this many times in turn, each loaded afresh: ratios per round "
        "and their median (the machine's speed drifts over minutes; rounds share the drift)",
    )
    parser.add_argument(
        "--engines", nargs="+", metavar="NAME", help="only these (e.g. 'nmt float32' 'ct2 float32')"
    )
    args = parser.parse_args()

    import ctranslate2

    torch.set_num_threads(args.threads)
    print(f"machine: {describe()}, ctranslate2 {ctranslate2.__version__}")
    print(f"load average at the start: {os.getloadavg()[0]:.2f} (under load read the ratios)")
    src = list(iter_lines(args.src))[: args.sentences]
    ref = list(iter_lines(args.ref))[: args.sentences] if args.ref else None
    marian_dir = None
    if args.opus_mt is not None:
        from opus_mt_shape import build, mean_reference_length

        data = args.src.parent
        args.model = build(args.opus_mt, train_src=data / "train.en", train_tgt=data / "train.de")
        marian_dir = args.opus_mt / "marian"
        # Its outputs run to the limit (benchmarks/opus_mt_shape.py): a trained model's length.
        references = list(iter_lines(args.ref or args.src.with_suffix(".de")))[: args.sentences]
        args.max_len_a, args.max_len_b = 0.0, mean_reference_length(marian_dir, references)
    loaders = engines(args.model, args.threads, marian_dir=marian_dir)
    if args.engines:
        unknown = set(args.engines) - set(loaders)
        if unknown:
            parser.error(f"unknown engine(s) {sorted(unknown)}; there are {list(loaders)}")
        loaders = {name: load for name, load in loaders.items() if name in args.engines}
    options = Translator.load(args.model).default_options.updated(
        beam_size=args.beam,
        length_penalty=args.length_penalty,
        max_len_a=args.max_len_a,
        max_len_b=args.max_len_b,
        max_tokens=1_000_000,  # one batch per chunk
    )
    print(
        f"model: {args.model}; {len(src)} sentences of {args.src}; beam {options.beam_size}, "
        f"α {options.length_penalty}, stopping {options.stopping}; "
        f"median of {args.repeats} runs"
    )
    # Every batch size of one engine before the next engine, so that no PyTorch engine runs
    # after CTranslate2 has (see the docstring); the tables are printed at the end.
    seconds: dict[int, dict[str, list[float]]] = {}  # batch size → engine → one per round
    outputs: dict[int, dict[str, list[Translation]]] = {}  # the first run's
    for round_ in range(args.rounds):
        for name, load in loaders.items():
            translator = load()
            for batch_size in args.batch_sizes:
                chunks = [src[i : i + batch_size] for i in range(0, len(src), batch_size)]
                runs = [run(translator, chunks, options) for _ in range(args.repeats)]
                median = statistics.median(r[0] for r in runs)
                seconds.setdefault(batch_size, {}).setdefault(name, []).append(median)
                outputs.setdefault(batch_size, {}).setdefault(name, runs[0][1])
                label = f"round {round_ + 1}, " if args.rounds > 1 else ""
                print(f"  {label}{name}, batch {batch_size}: {median:.1f} s", flush=True)
            del translator  # one model in memory at a time
    for batch_size, by_engine in outputs.items():
        baseline: list[str] | None = None
        print(
            f"\nbatch {batch_size}"
            + (f" (medians of {args.rounds} rounds)" if args.rounds > 1 else "")
        )
        header = f"{'engine':<14}{'sent/s':>9}{'tok/s':>9}{'tokens':>8}{'same as nmt f32':>17}"
        print(header + (f"{'BLEU':>7}" if ref else ""))
        speeds: dict[str, list[float]] = {}  # tokens/s, one per round
        for name, translations in by_engine.items():
            texts = [t.text for t in translations]
            tokens = sum(len(t.tokens) for t in translations)
            if baseline is None:
                baseline = texts
            same = sum(a == b for a, b in zip(texts, baseline, strict=True)) / len(texts)
            speeds[name] = [tokens / s for s in seconds[batch_size][name]]
            median = statistics.median(seconds[batch_size][name])
            line = f"{name:<14}{len(src) / median:9.1f}{tokens / median:9.0f}{tokens:8d}"
            line += f"{same:17.1%}"
            if ref is not None:
                line += f"{score(texts, ref).bleu:7.2f}"
            print(line, flush=True)
        for name, speed in speeds.items():
            other = RATIO_TO.get(name, "ct2 float32")
            if name.startswith("ct2") or other not in speeds:
                continue
            ratios = [a / b for a, b in zip(speed, speeds[other], strict=True)]
            each = f" (rounds: {', '.join(f'{r:.2f}' for r in ratios)})" if len(ratios) > 1 else ""
            print(f"  {name} / {other}: {statistics.median(ratios):.2f}×{each}")


if __name__ == "__main__":
    main()

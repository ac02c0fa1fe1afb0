"""Why `nmt serve` runs one single-threaded model thread per core: one batch on all cores
against as many one-thread batches side by side, in this process, with no HTTP.

The same Translator translates the same sentences ``--window`` at a time (the batches a server
forms when that many clients each have one sentence in flight): first one batch at a time on
``--cores`` threads (PyTorch's intra-op parallelism), then one batch at a time on one thread,
then ``--cores`` threads each translating its own batches on one thread (what `nmt serve
--workers --no-model-processes` does), then ``--cores`` threads each handing its batches to a
one-thread model process of its own (what `nmt serve --workers` does, nmt.decoding.processes).
Prints sentences/s (medians of ``--repeats``) and the ratios.

More rows show what the windows' mixed lengths cost, the loss continuous batching would win
back (docs/serve.md): the same sentences sorted by length before they are cut into windows (a
window's sentences then end at about the same step), in the model processes and on one thread,
and all of them in one call on one thread (the Translator sorts them and cuts batches of
``max_tokens``, as offline translation does). The last two rows are offline translation: all
sentences in one call on ``--cores`` threads (what `nmt translate` does), and a share of them
in one call in each model process.

    .venv/bin/python benchmarks/parallel_batches.py runs/quickstart/averaged
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from nmt.data.parallel import iter_lines
from nmt.decoding.processes import ModelProcess
from nmt.decoding.translator import Translator
from nmt.machine import describe
from nmt.serve.worker import NbestTranslator


def sentences_per_second(engines: Sequence[NbestTranslator], windows: list[list[str]]) -> float:
    """One Python thread per engine takes the next window until none is left."""
    remaining = iter(windows)
    lock = threading.Lock()

    def work(engine: NbestTranslator) -> None:
        while True:
            with lock:
                window = next(remaining, None)
            if window is None:
                return
            engine.translate_nbest(window)

    started = time.perf_counter()
    if len(engines) == 1:
        # In this thread: PyTorch's intra-op threads in another Python thread, once this one
        # has run parallel work, ran about a quarter slower (2 threads, all sentences in one
        # call: 203.9 sentences/s against 265, 2026-12-06): OpenMP's teams of the two threads
        # outnumber the cores and sleep between operators (benchmarks/intra_op_threads.py).
        work(engines[0])
        return sum(len(w) for w in windows) / (time.perf_counter() - started)
    workers = [threading.Thread(target=work, args=(engine,)) for engine in engines]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(len(w) for w in windows) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model directory")
    parser.add_argument("--src", type=Path, default=Path("data/de-en/test.en"))
    parser.add_argument("--sentences", type=int, default=600, help="first N lines of --src")
    parser.add_argument("--window", type=int, default=25, help="sentences a call")
    parser.add_argument("--cores", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sentences = [s for s in iter_lines(args.src) if s.strip()][: args.sentences]
    windows = [sentences[i : i + args.window] for i in range(0, len(sentences), args.window)]
    by_length = sorted(sentences, key=len)  # characters: near enough to pieces for this
    sorted_windows = [by_length[i : i + args.window] for i in range(0, len(by_length), args.window)]
    print(describe())
    translator = Translator.load(args.model)
    translator.translate(sentences[:32])  # warm-up
    children = [ModelProcess(translator, threads=1, name=f"model-{i}") for i in range(args.cores)]
    for child in children:
        child.launch()
    for child in children:
        child.connect()
        child.translate_nbest(sentences[:32])  # warm-up

    one: list[NbestTranslator] = [translator]
    side_by_side: list[NbestTranslator] = [translator] * args.cores
    setups: dict[str, tuple[int, list[NbestTranslator], list[list[str]]]] = {
        # name: (intra-op threads in this process, engines, one thread each; windows)
        f"one batch at a time on {args.cores} threads": (args.cores, one, windows),
        "one batch at a time on 1 thread": (1, one, windows),
        f"{args.cores} one-thread batches side by side": (1, side_by_side, windows),
        f"{args.cores} one-thread model processes side by side": (1, [*children], windows),
        f"{args.cores} model processes, length-sorted windows": (1, [*children], sorted_windows),
        "1 thread, windows of length-sorted sentences": (1, one, sorted_windows),
        "1 thread, all sentences in one call": (1, one, [sentences]),
        # Offline translation as `nmt translate` runs it, and split between the processes.
        f"{args.cores} threads, all sentences in one call": (args.cores, one, [sentences]),
        f"{args.cores} model processes, a share each in one call": (
            1,
            [*children],
            [sentences[i :: args.cores] for i in range(args.cores)],
        ),
    }
    rates: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(args.repeats):  # alternating, so that a slow spell hits every setup
        for name, (intra, engines, calls) in setups.items():
            torch.set_num_threads(intra)
            rates[name].append(sentences_per_second(engines, calls))
    for child in children:
        child.stop()
    medians = {name: statistics.median(r) for name, r in rates.items()}
    reference = medians[f"one batch at a time on {args.cores} threads"]
    print(
        f"{len(sentences)} sentences of {args.src}, {args.window} a call; sentences/s, "
        f"medians of {args.repeats}:"
    )
    for name, rate in medians.items():
        print(f"  {name:48} {rate:7.1f}   ×{rate / reference:.2f}")


if __name__ == "__main__":
    main()

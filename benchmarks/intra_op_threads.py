"""PyTorch's intra-op threads from the main thread and from another Python thread, before and
after the main thread has run a parallel operator: a LayerNorm over 200×512 and a 200×512 by
512×512 matmul, microseconds per call (medians of 7 runs of 500), at PyTorch's thread count.

Run each case in a fresh process (an OpenMP thread pool, once made, stays for the process):

    for case in main thread main-then-thread main-at-one-then-thread; do
        .venv/bin/python benchmarks/intra_op_threads.py $case
    done
    GOMP_SPINCOUNT=10000000 .venv/bin/python benchmarks/intra_op_threads.py main-then-thread

What it shows (docs/serve.md, "Two intra-op threads from a thread other than the main one"):
libgomp keeps a thread pool per thread that starts parallel regions, and once their threads
outnumber the cores it throttles their spinning, so each region wakes its team from sleep.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

import torch

from nmt.machine import describe

CASES = ("main", "thread", "main-then-thread", "main-at-one-then-thread")


def per_call_us(operation: Callable[[], object], repeats: int = 7, calls: int = 500) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            operation()
        times.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(times)


def measure(where: str) -> None:
    x, weight = torch.randn(200, 512), torch.randn(512, 512)
    norm = torch.nn.LayerNorm(512)
    with torch.inference_mode():
        for _ in range(200):  # warm-up: the pool starts here
            norm(x)
        layer_norm = per_call_us(lambda: norm(x))
        matmul = per_call_us(lambda: x @ weight)
    print(
        f"{where}: {torch.get_num_threads()} intra-op threads, LayerNorm {layer_norm:.1f} µs, "
        f"matmul {matmul:.1f} µs",
        flush=True,
    )


def in_thread(where: str) -> None:
    thread = threading.Thread(target=measure, args=(where,))
    thread.start()
    thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=CASES)
    case = parser.parse_args().case
    if case == "main":
        measure("main thread")
    elif case == "thread":
        in_thread("another thread, the main one never parallel")
    elif case == "main-then-thread":
        measure("main thread")
        in_thread("another thread, after the main one")
    else:  # what nmt serve does: the main thread at one, the model thread at its own number
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        measure("main thread")

        def at_own_number() -> None:
            torch.set_num_threads(threads)
            measure("another thread, at its own number after the main one at one")

        thread = threading.Thread(target=at_own_number)
        thread.start()
        thread.join()
    # Last: measuring the machine runs parallel matmuls in the main thread, which is the case.
    print(describe())


if __name__ == "__main__":
    main()

"""What a timed figure needs printed beside it: the machine and its measured matmul speed.

Machines here differ twenty-fold in speed; a throughput without the machine's own speed beside
it cannot be compared with anyone else's.
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import torch


def matmul_gflops(size: int = 512, repeats: int = 7) -> float:
    """float32 matmul speed of this process's threads: the median of ``repeats`` timings."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up: thread pool and allocator
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        rates.append(10 * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def cpuinfo() -> str:
    """/proc/cpuinfo's text; empty where there is none (not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return ""


def cpuinfo_values(text: str, key: str) -> list[str]:
    """The values of ``key`` (``model name``, ``vendor_id``) in cpuinfo ``text``, one per
    processor."""
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(key)]


def describe() -> str:
    """One line: processor, threads, torch, and the measured float32 matmul speed."""
    cpu = platform.processor() or platform.machine()
    names = cpuinfo_values(cpuinfo(), "model name")
    if names:
        cpu = names[0]
    return (
        f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"float32 matmul {matmul_gflops():.0f} GFLOP/s (512×512, median of 7)"
    )

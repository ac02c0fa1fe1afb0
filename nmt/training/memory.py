"""Resident memory with glibc: what one-off work freed goes back to the system.

On a CPU, PyTorch allocates tensors with malloc, and glibc keeps much of what is freed in its
heap, which shrinks only down to its highest block in use. Work done once at the start of a run
(SentencePiece's training, encoding the corpus) and now and then during it (validation's beam
search over the dev set) leaves freed blocks there that the steps never reuse in full.
``malloc_trim`` hands the heap's free pages back; it is called after such work, never per step:
giving a step's memory back costs the next step the page faults of taking it again (docs/
performance.md, "Training memory": a fixed mmap threshold, which gives back every large tensor
when freed, cut the quickstart's peak from 2.9 to 2.0 GB but its speed by a quarter).
Without glibc (macOS, musl) this does nothing.

The other holder is oneDNN, which runs PyTorch's bfloat16 matmuls on the CPU: it caches a
compiled primitive, with its buffers, per matmul shape, up to 1,024 of them. Token-budget
batches change shape from step to step, so under bfloat16 autocast the cache filled with
hundreds of shapes and the resident size grew by about 600 MiB over the quickstart's first 100
updates. ``limit_onednn_cache`` caps it (docs/performance.md, "Training memory").
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

ONEDNN_CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
ONEDNN_CACHE_CAPACITY = 64


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # a Linux without glibc
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def give_back_freed_memory() -> None:
    """Return the heap's free pages to the system (after work that freed much memory)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def limit_onednn_cache() -> None:
    """Cap oneDNN's primitive cache at ``ONEDNN_CACHE_CAPACITY`` shapes unless the environment
    sets its own. oneDNN reads the variable when it first builds a primitive, so this must run
    before the process's first bfloat16 matmul on the CPU (``nmt train`` calls it first)."""
    os.environ.setdefault(ONEDNN_CACHE_ENV, str(ONEDNN_CACHE_CAPACITY))

"""Resident memory of training: the allocator, what one-off work freed, oneDNN's caches.

On a CPU, PyTorch allocates tensors with malloc, and glibc keeps much of what is freed in its
heap, which shrinks only down to its highest block in use. Work done once at the start of a run
(SentencePiece's training, encoding the corpus) and now and then during it (validation's beam
search over the dev set) leaves freed blocks there that the steps never reuse in full.
``malloc_trim`` hands the heap's free pages back (mimalloc's ``mi_collect`` its own, which it
would otherwise keep for its purge delay); they are called around such work, never per step:
giving a step's memory back costs the next step the page faults of taking it again (docs/
performance.md, "Training memory": a fixed mmap threshold, which gives back every large tensor
when freed, cut the quickstart's peak from 2.9 to 2.0 GB but its speed by a quarter).
Without glibc (macOS, musl) this does nothing.

The other holders are the caches of oneDNN, which runs PyTorch's bfloat16 matmuls on the CPU:
oneDNN's own primitive cache and, in front of it, PyTorch's ideep layer's cache of ready
computations, each keeping up to 1,024 entries, one per matmul shape, with their buffers.
Token-budget batches change shape from step to step, so under bfloat16 autocast they filled
with hundreds of shapes: about 600 MiB over the quickstart's first 100 updates for oneDNN's,
about 4 MB an update, all run long, for ideep's. ``limit_onednn_cache`` caps both (docs/
performance.md, "Training memory").
MKL, which runs the float32 matmuls of validation, keeps their working buffers in a cache of its
own; ``keep_no_mkl_buffers`` turns that off for ``nmt train`` in bfloat16 or float16.

Even so, glibc's heap grows through a run: each update allocates about 2 GB in blocks of 1–8 MiB
whose sizes follow the batch's shape, and freed blocks that fit no later request stay resident
(2.3 GB at update 100 of the quickstart, against 318 MiB of tensors live at a step's peak).
mimalloc (Microsoft's allocator, from the cmeel-mimalloc wheel) reuses them by size class at the
same speed (with the caches above capped: about 0.95 GB). It can only replace malloc for a whole
process, before the process starts (``LD_PRELOAD``), so ``nmt train`` re-executes itself once
with it preloaded, as PyTorch's ``torch.backends.xeon.run_cpu`` launcher does for jemalloc;
``NMT_ALLOCATOR=system`` keeps the C library's malloc.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from nmt.errors import NmtError

ONEDNN_CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
ONEDNN_CACHE_CAPACITY = 64
IDEEP_CACHE_ENV = "LRU_CACHE_CAPACITY"  # ideep's name for it (PyTorch's oneDNN bindings)
IDEEP_CACHE_CAPACITY = 16
MKL_FAST_MM_ENV = "MKL_DISABLE_FAST_MM"  # MKL's own buffer cache, read when MKL is loaded
ALLOCATOR_ENV = "NMT_ALLOCATOR"  # mimalloc (the default) or system
MIMALLOC_WHEEL, MIMALLOC_FILE = "cmeel-mimalloc", "cmeel.prefix/lib/libmimalloc.so.3"


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # a Linux without glibc
        return None
    return libc if hasattr(libc, "malloc_trim") else None


@functools.cache
def _mimalloc() -> ctypes.CDLL | None:
    """mimalloc's functions where this process runs on it (preloaded), else None."""
    if allocator_in_use() != "mimalloc":
        return None
    process = ctypes.CDLL(None)  # a preloaded library's symbols are the process's
    return process if hasattr(process, "mi_collect") else None


def give_back_freed_memory() -> None:
    """Return the allocator's free pages to the system now (around work that is not a step:
    set-up, validation). mimalloc would return them only after its purge delay, and a
    validation that comes meanwhile allocates other sizes on top of them."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
    mimalloc = _mimalloc()
    if mimalloc is not None:
        mimalloc.mi_collect(ctypes.c_bool(True))


def limit_onednn_cache() -> None:
    """Cap oneDNN's primitive cache at ``ONEDNN_CACHE_CAPACITY`` shapes and ideep's at
    ``IDEEP_CACHE_CAPACITY``, unless the environment sets its own. Both read their variable when
    first used, so this must run before the process's first bfloat16 matmul on the CPU (``nmt
    train`` calls it first). Shapes seldom repeat across updates, so neither cap costs speed:
    ideep's at 1, 16 and 64 trained equally fast (docs/performance.md)."""
    os.environ.setdefault(ONEDNN_CACHE_ENV, str(ONEDNN_CACHE_CAPACITY))
    os.environ.setdefault(IDEEP_CACHE_ENV, str(IDEEP_CACHE_CAPACITY))


def keep_no_mkl_buffers() -> None:
    """Have MKL free its working buffers after each call, unless the environment says otherwise.

    Validation runs the model in float32, whose matmuls are MKL's; MKL keeps their packing
    buffers in a cache of its own for later calls, where no allocator can give them back, and
    bfloat16 or float16 training (oneDNN's) never calls it again: 78 MB in a test of
    decoding-sized matmuls, ~30 MB of the quickstart's peak (docs/performance.md). float32
    training calls MKL every step and keeps the cache (off, its updates were ~3 % slower for
    15 MiB). MKL reads the setting once, when torch loads it: this must run before torch is
    imported (``nmt train`` calls it first, so that its re-execution with mimalloc inherits it).
    MKL takes any value as "off"."""
    os.environ.setdefault(MKL_FAST_MM_ENV, "1")


def mimalloc_library() -> Path | None:
    """The mimalloc shared library that the cmeel-mimalloc wheel installed, or None."""
    try:
        wheel = importlib.metadata.distribution(MIMALLOC_WHEEL)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(wheel.locate_file(MIMALLOC_FILE)))
    return path if path.is_file() else None


def preloading_environment(
    environ: Mapping[str, str], library: Path | None
) -> dict[str, str] | None:
    """``environ`` with mimalloc ``library`` preloaded, or None where the process should stay as
    it is: no library, not Linux, ``NMT_ALLOCATOR=system``, or ``LD_PRELOAD`` already set (by
    the re-execution itself, or by a user who chose an allocator)."""
    choice = environ.get(ALLOCATOR_ENV, "mimalloc")
    if choice not in ("mimalloc", "system"):
        raise NmtError(f"{ALLOCATOR_ENV} must be mimalloc or system, not {choice!r}")
    if (
        choice == "system"
        or library is None
        or not sys.platform.startswith("linux")
        or environ.get("LD_PRELOAD")
    ):
        return None
    return {**environ, "LD_PRELOAD": str(library)}


def run_with_mimalloc() -> None:
    """Re-execute this process's own command line (``sys.orig_argv``: the interpreter's options
    too) with mimalloc preloaded, as the same process (so signals and launchers such as torchrun
    still reach it); returns only where ``preloading_environment`` says to stay. Call it before
    any work: nothing done before is kept."""
    environment = preloading_environment(os.environ, mimalloc_library())
    if environment is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, environment)


def allocator_in_use() -> str:
    """Which malloc this process runs on, for the log."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "the system's malloc"
    return "mimalloc" if "libmimalloc" in maps else "the system's malloc"


def mkl_buffer_cache() -> str:
    """Whether MKL keeps its buffers ("on", its default) in this process, for the log."""
    return "off" if MKL_FAST_MM_ENV in os.environ else "on"  # MKL takes any value as "off"


def log_allocator() -> None:
    logging.getLogger(__name__).info(
        "memory allocator: %s; MKL's buffer cache %s", allocator_in_use(), mkl_buffer_cache()
    )

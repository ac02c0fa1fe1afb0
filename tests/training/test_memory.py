"""Freed memory goes back to the system (nmt.training.memory), in a fresh process each time so
that glibc's allocator starts from its defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nmt.errors import NmtError
from nmt.training.memory import (
    ALLOCATOR_ENV,
    IDEEP_CACHE_ENV,
    MKL_FAST_MM_ENV,
    ONEDNN_CACHE_ENV,
    _glibc,
    mimalloc_library,
    preloading_environment,
)

from .helpers import write_config
from .test_resume import environment

# One-off work's tensors of changing sizes (about 120 MB), each followed by a small tensor that
# is kept (as the run's state would be: so the freed blocks lie below blocks in use, wherever
# the heap put them), then the work's tensors freed: how many MB stay resident, trimmed or not
# as ``sys.argv[1]`` says.
WORK = """
import sys
import torch
from nmt.training.memory import give_back_freed_memory

def resident_mb():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024

torch.ones(1).add_(1)
warm_up = torch.ones(3_000_000)  # a large free raises glibc's threshold above what follows
del warm_up
before = resident_mb()
work, kept = [], []
for i in range(50):
    work.append(torch.ones(600_000 - 1_000 * i))
    kept.append(torch.ones(5_000))
del work
if sys.argv[1] == "trimmed":
    give_back_freed_memory()
print(resident_mb() - before)
"""


def printed_figure(script: str, *args: str, environment: dict[str, str] | None = None) -> float:
    """Run ``script`` in a fresh interpreter; the number it printed."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout)


def retained_mb(allocator: str, environment: dict[str, str] | None = None) -> float:
    return printed_figure(WORK, allocator, environment=environment)


@pytest.mark.skipif(_glibc() is None, reason="the allocator settings are glibc's")
def test_freed_memory_leaves_the_process_once_trimmed() -> None:
    assert retained_mb("defaults") > 80  # what glibc keeps by default: the problem is real
    assert retained_mb("trimmed") < 15


# What malloc has handed out and not taken back, by glibc's own count (heap blocks and mapped
# blocks in use), so that freed blocks the heap keeps do not count; trimmed first if asked.
# The scripts below start with it; it loads no torch, so they choose what to set up before.
MALLOC_COUNT = """
import ctypes

FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"

class MallInfo(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS.split()]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo

def allocated(trim=False):
    if trim:
        libc.malloc_trim(0)
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd
"""

# bfloat16 matmuls (forward and backward) of 200 shapes never seen before, after 32 others, as
# token-budget batches make them, with nmt train's cache limits: how many MB more malloc hands
# out at the end (MALLOC_COUNT).
NEW_SHAPES = """
import torch
from nmt.training.memory import limit_onednn_cache

limit_onednn_cache()
torch.set_num_threads(1)
layer = torch.nn.Linear(512, 512)

def train_on_shapes(rows):
    for n in rows:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(torch.randn(n, 512))
        out.float().sum().backward()

train_on_shapes(range(8, 40))
before = allocated()
train_on_shapes(range(40, 240))
print((allocated() - before) / 2**20)
"""


def growth_over_new_shapes_mb(**caches: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in (IDEEP_CACHE_ENV, ONEDNN_CACHE_ENV)}
    return printed_figure(MALLOC_COUNT + NEW_SHAPES, environment={**env, **caches})


@pytest.mark.skipif(_glibc() is None, reason="counts glibc's allocations")
def test_bfloat16_matmuls_of_new_shapes_do_not_pile_up_in_onednn_caches() -> None:
    assert growth_over_new_shapes_mb() < 20  # measured 3 MB
    # Either cache left at its default (1,024 shapes) grows by 100 MB or more here.
    assert growth_over_new_shapes_mb(**{IDEEP_CACHE_ENV: "1024"}) > 60
    assert growth_over_new_shapes_mb(**{ONEDNN_CACHE_ENV: "1024"}) > 60


# float32 matmuls of the sizes validation's search makes (beams × a vocabulary of 8,000, and the
# feed-forward), set up as `nmt train` sets its process up unless sys.argv[1] is "defaults":
# how many MB malloc still hands out once they are done and the heap is trimmed.
MKL_WORK = """
import sys
from nmt.training.memory import keep_no_mkl_buffers

if sys.argv[1] != "defaults":
    keep_no_mkl_buffers()
import torch

output_layer, feed_forward = torch.randn(8000, 256), torch.randn(1024, 256)
before = allocated(trim=True)
for rows in range(40, 1200, 37):
    hidden = torch.randn(rows, 256)
    hidden @ output_layer.T
    hidden @ feed_forward.T
print((allocated(trim=True) - before) / 2**20)
"""


@pytest.mark.skipif(
    _glibc() is None or not torch.backends.mkl.is_available(), reason="glibc's count of MKL's"
)
def test_float32_matmuls_leave_no_buffers_behind_in_nmt_train() -> None:
    env = {k: v for k, v in os.environ.items() if k != MKL_FAST_MM_ENV}
    script = MALLOC_COUNT + MKL_WORK
    assert printed_figure(script, "nmt train", environment=env) < 10  # measured 1 MB
    # measured 78 MB on a Xeon, 34 on an AMD EPYC (where MKL runs other kernels)
    assert printed_figure(script, "defaults", environment=env) > 20


@pytest.mark.skipif(mimalloc_library() is None, reason="needs the cmeel-mimalloc wheel")
def test_freed_memory_leaves_a_mimalloc_process_at_once_when_given_back() -> None:
    preloaded = preloading_environment(
        {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", ALLOCATOR_ENV)},
        mimalloc_library(),
    )
    assert retained_mb("defaults", preloaded) > 80  # kept until mimalloc's purge delay
    assert retained_mb("trimmed", preloaded) < 15


def test_train_preloads_mimalloc_once_unless_told_not_to(toy_corpus: Path, tmp_path: Path) -> None:
    logs = {}
    # MKL's buffer cache goes off for low-precision training only (float32 calls MKL each step).
    precisions = {"mimalloc": "bfloat16", "system": "float32"}
    for choice in ("mimalloc", "system"):
        settings = {"max_steps": 2, "save_every": 2, "precision": precisions[choice]}
        config = write_config(
            tmp_path / f"{choice}.yaml", toy_corpus, tmp_path / choice, training=settings
        )
        done = subprocess.run(
            [sys.executable, "-m", "nmt.cli", "train", str(config)],
            env={
                **{
                    k: v
                    for k, v in environment().items()
                    if k not in ("LD_PRELOAD", MKL_FAST_MM_ENV)
                },
                "NMT_ALLOCATOR": choice,
            },
            capture_output=True,
            text=True,
            check=True,
        )
        logs[choice] = done.stderr
    assert "memory allocator: mimalloc" in logs["mimalloc"]
    assert "memory allocator: the system's malloc" in logs["system"]
    assert logs["mimalloc"].count("memory allocator") == 1  # re-executed once, not in a loop
    assert "MKL's buffer cache off" in logs["mimalloc"]
    assert "MKL's buffer cache on" in logs["system"]


def test_preloading_environment_leaves_a_chosen_allocator_alone(tmp_path: Path) -> None:
    library = tmp_path / "libmimalloc.so.3"
    preloaded = preloading_environment({"PATH": "/bin"}, library)
    assert preloaded == {"PATH": "/bin", "LD_PRELOAD": str(library)}
    assert preloading_environment({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, library) is None
    assert preloading_environment({"NMT_ALLOCATOR": "system"}, library) is None
    assert preloading_environment({}, None) is None  # no wheel: the system's malloc
    with pytest.raises(NmtError, match="NMT_ALLOCATOR must be mimalloc or system, not 'fast'"):
        preloading_environment({"NMT_ALLOCATOR": "fast"}, library)

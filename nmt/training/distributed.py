"""Data parallelism over torch.distributed: the same `nmt train` alone or under torchrun.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them nmt runs as one process. Every rank
builds the same batch order and takes its own share of each update; gradients are averaged by
DistributedDataParallel; only rank 0 writes checkpoints, logs and the progress bar.

On GPUs each rank drives the GPU numbered by its LOCAL_RANK, and the process group has NCCL for
CUDA tensors and gloo for CPU ones. NCCL only moves tensors that live on the rank's GPU, so the
few numbers nmt itself sums or broadcasts are put there too.

Every wait has a timeout that fits what is waited for. A training step's collectives wait for
the slowest rank's step (STEP_TIMEOUT). Rank 0 alone trains the tokenizer, validates on the dev
set and writes checkpoints, which can take far longer; the other ranks wait for that in
``wait_for_main``, on a gloo group of its own whose timeout is MAIN_WORK_TIMEOUT.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

# A step's collectives: a rank's share of one update, however slow, takes seconds to minutes.
STEP_TIMEOUT = timedelta(minutes=10)
# Rank 0's own work: SentencePiece on up to 2 M sentences (an hour on one slow core) or a greedy
# decode of a whole dev set on a CPU.
MAIN_WORK_TIMEOUT = timedelta(hours=3)


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    """The rank's device: where its model lives and where its collectives' tensors must be."""
    main_work_group: Any = field(default=None, compare=False)
    """The gloo group ``wait_for_main`` waits on (its timeout is MAIN_WORK_TIMEOUT)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if not self.enabled:
            return
        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])  # NCCL must not guess the GPU
        else:
            dist.barrier()

    def wait_for_main(self) -> None:
        """Wait, up to MAIN_WORK_TIMEOUT, until rank 0 has finished its work alone."""
        if self.enabled:
            dist.barrier(group=self.main_work_group)

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``tensor`` (the same shape on all), by rank, on the CPU."""
        if not self.enabled:
            return [tensor]
        local = tensor.to(self.device)
        gathered = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(gathered, local)
        return [t.cpu() for t in gathered]

    def all_sum(self, values: list[float]) -> list[float]:
        """Sum a few numbers over all ranks (for logging)."""
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's decision (e.g. early stopping), known to every rank."""
        if not self.enabled:
            return flag
        tensor = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(tensor, src=0)
        return bool(tensor.item())


def rank_device(device_type: str, local_rank: int) -> torch.device:
    """The device a rank trains on: its own GPU (LOCAL_RANK) on CUDA, else the CPU."""
    return torch.device("cuda", local_rank) if device_type == "cuda" else torch.device(device_type)


def rank_seed(seed: int, rank: int) -> int:
    """A seed of its own for each rank (else every rank draws the same dropout masks)."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def setup_distributed(
    device_type: str,
    *,
    step_timeout: timedelta = STEP_TIMEOUT,
    main_work_timeout: timedelta = MAIN_WORK_TIMEOUT,
) -> Distributed:
    """Join torchrun's process group (if launched by torchrun) and pick the rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = rank_device(device_type, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size == 1:
        return Distributed(device=device)
    if not dist.is_initialized():
        # gloo beside NCCL: any CPU tensor that reaches a collective still has a backend.
        backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=step_timeout)
    return Distributed(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        device=device,
        main_work_group=dist.new_group(backend="gloo", timeout=main_work_timeout),
    )


def teardown_distributed(info: Distributed) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()

"""Data parallelism over torch.distributed: the same `nmt train` alone or under torchrun.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them nmt runs as one process. Every rank
builds the same batch order and takes its own share of each update; gradients are averaged by
DistributedDataParallel; only rank 0 writes checkpoints, logs and the progress bar.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_sum(self, values: list[float]) -> list[float]:
        """Sum a few numbers over all ranks (for logging)."""
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's decision (e.g. early stopping), known to every rank."""
        if not self.enabled:
            return flag
        tensor = torch.tensor([int(flag)])
        dist.broadcast(tensor, src=0)
        return bool(tensor.item())


def setup_distributed(device: torch.device) -> Distributed:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def teardown_distributed(info: Distributed) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()

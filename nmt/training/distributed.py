"""Data parallelism over torch.distributed: the same `nmt train` alone or under torchrun.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them nmt runs as one process. Every rank
builds the same batch order and takes its own share of each update; gradients are averaged by
DistributedDataParallel; only rank 0 writes checkpoints, logs and the progress bar.

On GPUs each rank drives the GPU numbered by its LOCAL_RANK, and the process group has NCCL for
CUDA tensors and gloo for CPU ones. NCCL only moves tensors that live on the rank's GPU, so the
few numbers nmt itself sums or broadcasts are put there too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    """The rank's device: where its model lives and where its collectives' tensors must be."""

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


def setup_distributed(device_type: str) -> Distributed:
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
        dist.init_process_group(backend=backend)
    return Distributed(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        device=device,
    )


def teardown_distributed(info: Distributed) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()

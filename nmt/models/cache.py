"""Per-step decoding buffers written in place: no step copies what earlier steps stored.

A decoder that kept its past by ``torch.cat`` would copy everything it holds at every step. A
``StepBuffer`` is allocated once for the number of steps decoding may take (gpt-fast's KV cache),
written at each step's position, and read as a view of the steps filled so far. Only beam
search's reordering of rows moves stored steps: one gather of the filled steps into a second
buffer, which then takes the first one's place.
"""

from __future__ import annotations

import torch
from torch import Tensor


class StepBuffer:
    """Values per row and per step: ``data`` (rows on dim 0, steps on ``step_dim``).

    Allocated at the first ``write`` with room for ``capacity`` steps, in the dtype and on the
    device of the values written; doubles (up to ``limit``) if decoding goes beyond. Only the
    first ``rows`` rows are live. Reordering rows gathers straight into a second buffer of the
    same size (``spare``), and the two swap: no allocation and a single copy per reorder.
    """

    def __init__(self, *, step_dim: int, capacity: int, limit: int) -> None:
        self.step_dim = step_dim
        self.capacity = max(1, min(capacity, limit))
        self.limit = limit
        self.data: Tensor | None = None
        self.spare: Tensor | None = None
        self.rows = 0

    def write(self, position: int, value: Tensor) -> Tensor:
        """Store ``value`` (one step: ``data``'s shape without the step dim, N rows) at step
        ``position``; return the live rows' steps 0 … position, a view."""
        if self.data is None:
            shape = list(value.shape)
            shape.insert(self.step_dim, self.capacity)
            self.data = value.new_empty(shape)
            self.rows = value.size(0)
        assert value.size(0) == self.rows, "rows changed without select()"
        if position >= self.data.size(self.step_dim):
            self.grow(position + 1)
        live = self.data[: self.rows]
        live.select(self.step_dim, position).copy_(value)
        return live.narrow(self.step_dim, 0, position + 1)

    def view(self, length: int) -> Tensor | None:
        """The live rows' first ``length`` steps (no copy); None before the first write."""
        if self.data is None:
            return None
        return self.data[: self.rows].narrow(self.step_dim, 0, length)

    def grow(self, steps: int) -> None:
        assert self.data is not None
        capacity = self.data.size(self.step_dim)
        new_capacity = min(max(2 * capacity, steps), self.limit)
        assert new_capacity >= steps, f"{steps} steps exceed the limit of {self.limit}"
        shape = list(self.data.shape)
        shape[self.step_dim] = new_capacity
        grown = self.data.new_empty(shape)
        grown.narrow(self.step_dim, 0, capacity).copy_(self.data)
        self.data, self.spare = grown, None

    def select(self, rows: Tensor, length: int) -> None:
        """Keep rows ``rows`` (N',) of the live ones, in that order, for the first ``length``
        steps."""
        if self.data is None:
            return
        count = rows.numel()
        if self.spare is None or self.spare.size(0) < count:
            self.spare = self.data.new_empty((max(count, self.data.size(0)), *self.data.shape[1:]))
        live = self.data[: self.rows].narrow(self.step_dim, 0, length)
        target = self.spare[:count].narrow(self.step_dim, 0, length)
        if live.requires_grad and torch.is_grad_enabled():
            target.copy_(live.index_select(0, rows))  # out= does not record gradients
        else:
            torch.index_select(live, 0, rows, out=target)
        self.data, self.spare = self.spare, self.data
        self.rows = count


def group_size(owners: Tensor) -> int:
    """k if ``owners`` (N,) comes in runs of k equal values (beam search's sentence-major rows,
    k beams each; k = 1 for greedy), else 1."""
    n = owners.numel()
    if n == 0:
        return 1
    k = int((owners == owners[0]).int().cumprod(0).sum())  # length of the first run
    if n % k:
        return 1
    groups = owners.view(-1, k)
    return k if bool((groups == groups[:, :1]).all()) else 1


def is_identity(indices: Tensor, size: int) -> bool:
    """Whether ``indices`` is exactly 0, 1, …, size - 1."""
    return indices.numel() == size and torch.equal(
        indices, torch.arange(size, device=indices.device)
    )

"""int8 inference on the CPU: linear layers with int8 weights and int8 matmuls (``--int8``).

Every ``nn.Linear`` (attention projections, feed-forward, the output projection) is replaced, in
place, by an ``Int8Linear``: its weight quantized once, one scale per output feature, and its
input quantized at each call, **one scale per row** (per token), so the matmul runs on int8
values with exact int32 sums and returns float32. Embeddings (tied ones included), layer norms,
attention and the softmax stay float32. The model is for inference only.

Why per-row scales: a scale shared by the whole input (PyTorch's ``quantize_dynamic``) is the
largest value of the whole batch, padding included, so one sentence's rounding, and then its
translation, depended on which other sentences shared its batch. With one scale per row and
exact integer sums, a row's output depends on that row alone: a sentence translates the same
alone and in any batch (tests/decoding/test_int8.py). CTranslate2's int8 does the same.

Which kernel: ``torch._int_mm`` (int8 × int8 → int32 through oneDNN; also what torchao's int8
layers call). ``torch.ao.quantization.quantize_dynamic``'s fbgemm kernels take one activation
scale per tensor only, and torchao's ``Int8DynamicActivationInt8WeightConfig`` (per-token scales
too) is built for ``torch.compile`` and would add a dependency; docs/engines.md gives the
measured comparison.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import Tensor, nn

from nmt.errors import NmtError

INT8_MAX = 127

ModelT = TypeVar("ModelT", bound=nn.Module)


def quantize_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 values of ``x`` (R, C), one scale per row: (R, C) int8 and (R, 1) float32
    with x ≈ values · scale. An all-zero row (padding) gets scale 1 rather than 0."""
    scale = torch.linalg.vector_norm(x, ord=float("inf"), dim=-1, keepdim=True) / INT8_MAX
    scale = scale.masked_fill_(scale == 0, 1.0)
    return torch.div(x, scale).round_().to(torch.int8), scale


class Int8Linear(nn.Module):
    """y = x·Wᵀ + b with W in int8 (per output feature scales) and x quantized per row."""

    weight_int8: Tensor  # (out, in) int8
    weight_scale: Tensor  # (out,) float32
    bias: Tensor | None

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight, weight_scale = quantize_rows(linear.weight.detach().float())
        self.register_buffer("weight_int8", weight)
        self.register_buffer("weight_scale", weight_scale.squeeze(1))
        bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self.register_buffer("bias", bias)

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, self.in_features)  # (R, in)
        values, scale = quantize_rows(rows)
        sums = torch._int_mm(values, self.weight_int8.t())  # (R, out) int32, exact
        # Two passes over the output, not four: int32 × float32 promotes inside the one kernel.
        out = torch.mul(sums, scale)
        if self.bias is None:
            out.mul_(self.weight_scale)
        else:
            out = torch.addcmul(self.bias, out, self.weight_scale)
        return out.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def quantize_int8(model: ModelT) -> ModelT:
    """``model`` (on the CPU) with every ``nn.Linear`` replaced by an ``Int8Linear``, in place:
    the same object is returned, put in eval mode, and its float32 linear weights are dropped
    (a weight tied to an embedding stays, as the embedding's)."""
    if any(t.device.type != "cpu" for t in [*model.parameters(), *model.buffers()]):
        raise NmtError("int8 quantization runs on the CPU only")
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, Int8Linear(child))
    return model.eval()

"""float32 inference on the CPU with linear weights reordered once for oneDNN.

PyTorch's ``nn.Linear`` on the CPU calls a GEMM that reads the weight in its plain row-major
layout at every call. oneDNN's inner-product primitive can take the weight reordered once into
its own blocked layout, as PyTorch's own frozen graphs (torch.compile with freezing) do. At the
shapes of decoding an OPUS-MT-sized model (rows = sentences × beams), measured on the 2-core Xeon
(two threads): the 512 → 58,101 output projection at 128 rows 32.1 → 26.9 ms, at 4 rows 7.8 →
4.6 ms; the feed-forward and attention projections 1.1–2.0× faster from 4 rows up, but slower at
one row (0.7×), where the plain layer is kept (``MIN_ROWS``). On the quickstart model (d_model
256) packing every layer made translation slower (0.95× at batch 32, 0.83× at batch 1): layers
with a side under ``MIN_WIDTH`` stay plain. docs/engines.md has the figures.

``pack_linear_layers`` swaps every ``nn.Linear`` of an inference model for a ``PackedLinear``
in place, as nmt.models.quantize does for int8 (nmt.models.swap: a Transformer's separate
output bias is then added inside the output GEMM). The results equal the plain
layer's up to float32 rounding (the sums are taken in another order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.models.swap import replace_linear_layers

MIN_ROWS = 4  # below this the plain GEMM was faster for the 512-wide layers
MIN_WIDTH = 512  # layers with a side narrower than this stay plain


def available() -> bool:
    """Does this PyTorch build run oneDNN's packed linear on the CPU?"""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class PackedLinear(nn.Module):
    """y = x·Wᵀ + b with W reordered once for oneDNN (inference only)."""

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.weight = weight.detach()  # the plain weight: few rows, and cutting a shortlist
        self.bias = None if bias is None else bias.detach()
        self.packed = torch.ops.mkldnn._reorder_linear_weight(self.weight, None)

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.size(0) < MIN_ROWS:
            out = F.linear(rows, self.weight, self.bias)
        else:
            out = torch.ops.mkldnn._linear_pointwise(rows, self.packed, self.bias, "none", [], "")
        return out.view(*x.shape[:-1], self.out_features)

    def rows(self, features: Tensor) -> nn.Linear:
        """This layer for the output features ``features`` only (a vocabulary shortlist), as a
        plain layer: it is cut anew for every batch, where reordering would cost more."""
        return linear_rows(self.weight, self.bias, features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def linear_rows(weight: Tensor, bias: Tensor | None, features: Tensor) -> nn.Linear:
    """A plain inference layer of the output features ``features`` of y = x·Wᵀ + b."""
    linear = nn.Linear(weight.size(1), features.numel(), bias=bias is not None)
    linear.weight = nn.Parameter(weight.detach().index_select(0, features), requires_grad=False)
    if bias is not None:
        linear.bias = nn.Parameter(bias.detach()[features], requires_grad=False)
    return linear


def pack_linear_layers(model: nn.Module) -> nn.Module:
    """``model`` (float32, on the CPU, for inference) with every ``nn.Linear`` replaced by a
    ``PackedLinear``, in place; the same object is returned, in eval mode. Unchanged where
    oneDNN is not available."""
    if not available():
        return model.eval()
    replace_linear_layers(
        model,
        lambda linear, bias: PackedLinear(linear.weight, bias),
        wanted=lambda linear: (
            linear.weight.dtype == torch.float32
            and min(linear.in_features, linear.out_features) >= MIN_WIDTH
        ),
    )
    return model.eval()

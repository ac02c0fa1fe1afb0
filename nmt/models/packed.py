"""float32 inference on the CPU with linear weights reordered once for oneDNN.

PyTorch's ``nn.Linear`` on the CPU calls a GEMM that reads the weight in its plain row-major
layout at every call. oneDNN's inner-product primitive can take the weight reordered once into
its own blocked layout, as PyTorch's own frozen graphs (torch.compile with freezing) do. At the
shapes of decoding an OPUS-MT-sized model (rows = sentences × beams), measured on the 2-core Xeon
(two threads): the 512 → 58,101 output projection at 128 rows 32.1 → 26.9 ms, at 4 rows 7.8 →
4.6 ms; the feed-forward and attention projections 1.1–2.0× faster from 4 rows up, but slower at
one row (0.7×), where the plain layer is kept (``MIN_ROWS``). On the quickstart model (d_model
256) packing every layer made translation slower there (0.95× at batch 32, 0.83× at batch 1):
on an Intel CPU, layers with a side under ``MIN_WIDTH`` stay plain. Not elsewhere: the plain
GEMM is MKL's, Intel's library, and on the 2-core AMD EPYC its GEMMs of a few rows ran 1.2–2.8×
slower than oneDNN's packed ones (a 256 → 8,000 layer at 4 rows, one thread: 499 against 179
µs), so there every layer is packed (``min_width``): the quickstart model translated 1.53× as
fast at batch 1 and 1.12× at batches of 25 and 200 (one thread; 1.61×, 1.32×, 1.18× on two).
docs/engines.md has the figures.

``pack_linear_layers`` swaps every ``nn.Linear`` of an inference model for a ``PackedLinear``
in place, as nmt.models.quantize does for int8 (nmt.models.swap: a Transformer's separate
output bias is then added inside the output GEMM). The results equal the plain
layer's up to float32 rounding (the sums are taken in another order).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt import machine
from nmt.models.swap import replace_linear_layers

MIN_ROWS = 4  # below this the plain GEMM was faster for the 512-wide layers
MIN_WIDTH = 512  # on an Intel CPU, layers with a side narrower than this stay plain


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

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to a model process, nmt.decoding.processes) without the packed weight: an
        opaque oneDNN tensor has no storage to put in shared memory, and packing again is
        quick."""
        state = self.__dict__.copy()
        del state["packed"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.packed = torch.ops.mkldnn._reorder_linear_weight(self.weight, None)

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


def narrowest_packed(cpuinfo: str, *, mkl: bool) -> int:
    """The narrowest side of a layer worth packing, given /proc/cpuinfo's text and whether
    PyTorch's plain GEMM is MKL's: ``MIN_WIDTH`` on Intel's own CPUs (and wherever the vendor or
    the BLAS is another: not measured), 1 (every layer) on another vendor's x86 CPU, where MKL's
    GEMMs of a few rows are slow (module docstring)."""
    vendors = set(machine.cpuinfo_values(cpuinfo, "vendor_id"))
    return 1 if mkl and vendors and "GenuineIntel" not in vendors else MIN_WIDTH


@functools.cache
def min_width() -> int:
    """``narrowest_packed`` for this machine."""
    return narrowest_packed(machine.cpuinfo(), mkl=torch.backends.mkl.is_available())


def pack_linear_layers(model: nn.Module) -> nn.Module:
    """``model`` (float32, on the CPU, for inference) with every ``nn.Linear`` whose sides are
    at least ``min_width()`` replaced by a ``PackedLinear``, in place; the same object is
    returned, in eval mode. Unchanged where oneDNN is not available."""
    if not available():
        return model.eval()
    replace_linear_layers(
        model,
        lambda linear, bias: PackedLinear(linear.weight, bias),
        wanted=lambda linear: (
            linear.weight.dtype == torch.float32
            and min(linear.in_features, linear.out_features) >= min_width()
        ),
    )
    return model.eval()

"""int8 inference on the CPU: linear layers with int8 weights and int8 matmuls (``--int8``).

Every ``nn.Linear`` worth it (attention projections, feed-forward, the output projection of a
model the size people deploy: ``worth_quantizing``) is replaced, in place, by an
``Int8Linear``: its weight quantized once, one scale per output feature, and its input quantized
at each call, **one scale per row** (per token), so the matmul runs on int8 values with exact
int32 sums and returns float32. Embeddings (tied ones included), layer norms, attention and the
softmax stay float32, and so do small layers: an int8 call costs about 80–100 µs at a few rows
(quantizing the rows, oneDNN's call) where a 256 × 1,024 float32 layer takes 20. The model is
for inference only.

Why per-row scales: a scale shared by the whole input (PyTorch's ``quantize_dynamic``) is the
largest value of the whole batch, padding included, so one sentence's rounding, and then its
translation, depended on which other sentences shared its batch. With one scale per row and
exact integer sums, a row's output depends on that row alone: a sentence translates the same
alone and in any batch (tests/decoding/test_int8.py). CTranslate2's int8 does the same.

Which kernel: oneDNN's int8 inner product with the weight packed once
(``onednn::qlinear_pointwise``, what PyTorch's x86 quantization backend compiles to), fed the
per-row quantized input as int8: at the OPUS-MT shape's layers at 128 rows, two threads, 1.6–3.9×
faster than fbgemm's ``quantized::linear_dynamic`` (what ``quantize_dynamic`` uses, and nmt until
2026-12-06; about even at a few rows), as it uses the CPU's AMX or VNNI int8 units (with VNNI
alone the input goes as unsigned bytes: signed, oneDNN ran it on its reference kernel, 100×
slower). fbgemm's stays for builds and CPUs without them (``onednn_int8_usable``); both give the
same floats, bit for bit.
``torch._int_mm`` (oneDNN too; what torchao's int8 layers call) takes per-row scales directly but
repacks the weight at every call: on the 58k-piece output projection at 128 rows it was no faster
than float32. torchao's ``Int8DynamicActivationInt8WeightConfig`` is built for ``torch.compile`` and
would add a dependency. docs/engines.md gives the measured comparison.
"""

from __future__ import annotations

import warnings
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from nmt.errors import NmtError
from nmt.models.swap import replace_linear_layers

INT8_MAX = 127
INT7_MAX = 63
UNSIGNED_ZERO = 128  # the zero point of oneDNN's unsigned input (without AMX)

# The int8 matmuls, all giving exact int32 sums of the integers they are handed:
# - "onednn": oneDNN's inner product (needs AVX-512 VNNI or AMX: ``onednn_int8_usable``);
# - "fbgemm": fbgemm's, the input's integers -127 … 127 (on a CPU with VNNI);
# - "fbgemm-7bit": fbgemm's on a CPU without VNNI, the input's integers -63 … 63. There each
#   pair of products is added into 16 bits with saturation (``vpmaddubsw``), which an 8-bit
#   input (shifted to 1 … 255) can overflow and a 7-bit one (1 … 127) cannot: the reason
#   ``quantize_dynamic`` has ``reduce_range``. Its rows are rounded twice as coarsely.
KERNELS = ("onednn", "fbgemm", "fbgemm-7bit")

ModelT = TypeVar("ModelT", bound=nn.Module)

# A layer is quantized if a side is at least MIN_WIDTH or it has at least MIN_WEIGHTS weights.
# Measured on the `make demo` model (d_model 256, 8,000 pieces; 2026-12-06): int8 on every layer
# ran 20.3 sentences/s at batch 1 and 143.4 at batch 32 against float32's 29.1 and 147.5, int8 on
# the output layer alone 31.3 and 163.5. On the OPUS-MT shape (d_model 512) leaving the 512-wide
# attention projections in float32 was slower than int8 on every layer (6.4 and 46.1 against 7.0
# and 53.8), so 512 wide is worth it (the width from which float32 layers are packed too).
MIN_WIDTH = 512
MIN_WEIGHTS = 1 << 20


def quantize_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 values of ``x`` (R, C), one scale per row: (R, C) int8 and (R, 1) float32
    with x ≈ values · scale. An all-zero row (padding) gets scale 1 rather than 0."""
    scale = row_scales(x)
    return torch.div(x, scale).round_().to(torch.int8), scale


def row_scales(x: Tensor, levels: int = INT8_MAX) -> Tensor:
    """(R, 1): each row's largest magnitude / ``levels``, 1 for an all-zero row.
    ``abs().amax()``, not ``linalg.vector_norm(ord=inf)``, which gives the same values 8–13×
    slower on the CPU (it was a tenth of int8 decoding at the OPUS-MT shape)."""
    scale = x.abs().amax(dim=-1, keepdim=True).div_(levels)
    return scale.masked_fill_(scale == 0, 1.0)


class Int8Linear(nn.Module):
    """y = x·Wᵀ + b with W in int8 (per output feature scales) and x quantized per row.

    The int8 matmul takes one input scale for the whole tensor, so it is handed the input
    already quantized per row, as integers with scale 1: its int32 sums are exact, it returns
    them times the weight scales, and each row is then multiplied by its own scale.

    Two kernels (``kernel``, ``KERNELS``), the same numbers: oneDNN's
    (``onednn::qlinear_pointwise``, the int8 inner product PyTorch's x86 quantization backend
    compiles to, the weight packed once), which takes the int8 rows (as unsigned bytes without
    AMX: ``unsigned_input``) and runs on the CPU's VNNI or AMX units; and, where that cannot run
    (``onednn_int8_usable``), fbgemm's
    (``quantized::linear_dynamic``), which quantizes its float input itself: it gets the
    integer-valued floats plus one extra row holding -128 and 127 (-64 and 63 for a 7-bit
    input), so that the scale it derives is exactly 1 and its zero point 128 (64). oneDNN's was
    1.6–3.9× faster here at 128 rows (docs/engines.md).
    """

    bias: Tensor | None
    weight_scale: Tensor
    zero_points: Tensor
    range_row: Tensor

    def __init__(
        self, linear: nn.Linear, bias: Tensor | None = None, *, kernel: str | None = None
    ) -> None:
        """``bias``: the bias to add, if not the layer's own (a folded output bias);
        ``kernel``: one of ``KERNELS`` (None: ``default_kernel()``)."""
        super().__init__()
        weight, weight_scale = quantize_rows(linear.weight.detach().float())
        bias = linear.bias if bias is None else bias
        self._setup(weight, weight_scale.squeeze(1), bias, kernel or default_kernel())

    def _setup(self, weight: Tensor, scales: Tensor, bias: Tensor | None, kernel: str) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"int8 kernel {kernel!r}: one of {', '.join(KERNELS)}")
        self.out_features, self.in_features = weight.shape
        self.kernel = kernel
        # The input's integers: -127 … 127, or -63 … 63 for fbgemm without VNNI (see KERNELS).
        self.input_max = INT8_MAX if kernel != "fbgemm-7bit" else INT7_MAX
        # oneDNN takes them as they are on AMX; with VNNI alone they go shifted by 128 into
        # unsigned bytes with zero point 128, VNNI's own u8 × s8 product (signed input ran on
        # oneDNN's reference kernel there, ~100× slower; the same exact sums either way).
        self.unsigned_input = kernel == "onednn" and not _has_amx()
        self._pack(weight, scales)
        bias = None if bias is None else bias.detach().float().clone()
        self.register_buffer("bias", bias)

    def _pack(self, weight: Tensor, scales: Tensor) -> None:
        """Keep int8 ``weight`` (out, in) with float32 ``scales`` (out,) in the kernel's form."""
        self.packed = _packed(self.kernel, weight, scales)
        if self.kernel == "onednn":
            self.register_buffer("weight_scale", scales, persistent=False)
            zero_points = torch.zeros(len(weight), dtype=torch.long)
            self.register_buffer("zero_points", zero_points, persistent=False)
        else:
            range_row = torch.zeros(self.in_features)
            range_row[0], range_row[-1] = -self.input_max - 1, self.input_max
            self.register_buffer("range_row", range_row, persistent=False)

    def int8_weight(self) -> tuple[Tensor, Tensor]:
        """The int8 weight (out, in) and its float32 scales (out,), unpacked."""
        if self.kernel == "onednn":
            return self.packed.to_dense().t().contiguous(), self.weight_scale
        qweight, _ = torch.ops.quantized.linear_unpack(self.packed)
        return qweight.int_repr(), qweight.q_per_channel_scales().float()

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, self.in_features)  # (R, in)
        count = rows.size(0)
        scale = row_scales(rows, self.input_max)  # (R, 1)
        if self.kernel == "onednn":
            zero = UNSIGNED_ZERO if self.unsigned_input else 0
            integers = torch.div(rows, scale).round_()
            values = integers.add_(zero).to(torch.uint8 if zero else torch.int8)
            if count == 1:
                # At one row oneDNN took 8–140× as long as at two for layers with a side of
                # 256 (27.6 ms against 0.2 for the quickstart's 256 → 8,000 output layer): a
                # zero row is added, and each row's sums are its own, so nothing changes.
                values = torch.cat([values, values.new_full((1, self.in_features), zero)])
            sums = torch.ops.onednn.qlinear_pointwise(
                values, 1.0, zero, self.packed, self.weight_scale, self.zero_points,
                None, 1.0, 0, torch.float32, "none", [], "",
            )[:count]  # fmt: skip
        else:
            values = rows.new_empty(count + 1, self.in_features)  # the rows, then the range row
            torch.div(rows, scale, out=values[:count]).round_()
            values[count] = self.range_row
            reduce_range = self.kernel == "fbgemm-7bit"  # its derived scale 1 either way
            sums = torch.ops.quantized.linear_dynamic(values, self.packed, reduce_range)[:count]
        # (R, out): the exact int32 sums times the weight scales, times each row's own; in place,
        # as a fresh (R, out) tensor costs page faults at a large vocabulary.
        if self.bias is None:
            out = sums.mul_(scale)
        else:
            out = torch.addcmul(self.bias, sums, scale, out=sums)
        return out.view(*x.shape[:-1], self.out_features)

    def rows(self, features: Tensor) -> Int8Linear:
        """This layer for the output features ``features`` only (a vocabulary shortlist): the
        same int8 weights and scales, packed anew."""
        weight, scales = self.int8_weight()
        layer = Int8Linear.__new__(Int8Linear)
        nn.Module.__init__(layer)
        bias = None if self.bias is None else self.bias[features]
        layer._setup(weight[features], scales[features], bias, self.kernel)
        return layer

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to a model process, nmt.decoding.processes) as its int8 values and scales:
        a packed weight (fbgemm's, or oneDNN's blocked tensor) does not survive torch's
        shared-memory pickling, and packing again is quick."""
        state = self.__dict__.copy()
        state["int8_weight"] = self.int8_weight()
        del state["packed"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weight, scales = state.pop("int8_weight")
        super().__setstate__(state)
        _use_x86_kernels()  # in a new process, as quantize_int8 did in the first
        self.packed = _packed(self.kernel, weight, scales)


def onednn_int8_usable() -> bool:
    """Whether oneDNN's int8 inner product gives exact sums here: this PyTorch build has it and
    the CPU has AVX-512 VNNI (AMX CPUs have it too), the rule PyTorch's own quantized kernels
    follow (aten's ``should_use_onednn_quant``). Without VNNI, int8 products are added in pairs
    into saturating 16-bit sums: emulated with ``ONEDNN_MAX_CPU_ISA=AVX2`` on the Xeon, the
    op's outputs were off by up to 20 times their size. With VNNI but no AMX (an AMD EPYC) the
    input goes unsigned (``Int8Linear.unsigned_input``): signed, oneDNN ran it on its reference
    kernel (``ONEDNN_VERBOSE=1``: ``ref_int8:any``; 16 × 512 → 2,048 in 180 ms against
    fbgemm's 1.8, `--int8` on the OPUS-MT shape 29 s a sentence), unsigned on its
    ``brg_matmul:avx512_core_vnni``."""
    has_op = torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qlinear_pointwise")
    return bool(has_op and _has_vnni())


def _has_vnni() -> bool:
    return bool(getattr(torch.cpu, "_is_vnni_supported", lambda: False)())


def _has_amx() -> bool:
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def exact_kernels() -> list[str]:
    """The ``KERNELS`` whose sums are exact on this CPU (and in this build)."""
    return ["onednn"] * onednn_int8_usable() + ["fbgemm"] * _has_vnni() + ["fbgemm-7bit"]


def default_kernel() -> str:
    """oneDNN's int8 inner product where it is usable, else fbgemm's (7-bit input without
    VNNI)."""
    return exact_kernels()[0]


def _use_x86_kernels() -> None:
    if "x86" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "x86"  # fbgemm, and oneDNN where it is faster


def _packed(kernel: str, weight: Tensor, scales: Tensor) -> Any:
    """int8 ``weight`` (out, in) with one scale per row (out,) in ``kernel``'s packed form:
    oneDNN's blocked (in, out) tensor (its scales go with each call), or fbgemm's packed
    per-channel quantized weight."""
    if kernel == "onednn":
        return torch.ops.onednn.qlinear_prepack(weight, None)
    with warnings.catch_warnings():  # quantized tensors' deprecation notice
        warnings.simplefilter("ignore", UserWarning)
        qweight = torch._make_per_channel_quantized_tensor(
            weight, scales.double(), torch.zeros(len(weight), dtype=torch.long), 0
        )
    return torch.ops.quantized.linear_prepack(qweight, None)


def worth_quantizing(linear: nn.Linear) -> bool:
    """Whether int8 makes this layer faster than float32 (``MIN_WIDTH``, ``MIN_WEIGHTS``)."""
    sides = (linear.in_features, linear.out_features)
    return min(sides) >= MIN_WIDTH or sides[0] * sides[1] >= MIN_WEIGHTS


def quantize_int8(model: ModelT, *, kernel: str | None = None, every_layer: bool = False) -> ModelT:
    """``model`` (on the CPU) with every ``nn.Linear`` that is ``worth_quantizing`` (or every
    one, with ``every_layer``) replaced by an ``Int8Linear`` (on ``kernel``; None:
    ``default_kernel()``), in place: the same object is returned, put in eval mode, and the
    replaced layers' float32 weights are dropped (a weight tied to an embedding stays, as the
    embedding's). Which layers are replaced depends on their shapes only, so a sentence still
    translates the same in any batch."""
    if any(t.device.type != "cpu" for t in [*model.parameters(), *model.buffers()]):
        raise NmtError("int8 quantization runs on the CPU only")
    _use_x86_kernels()
    kernel = kernel or default_kernel()
    replace_linear_layers(
        model,
        lambda linear, bias: Int8Linear(linear, bias, kernel=kernel),
        wanted=(lambda _: True) if every_layer else worth_quantizing,
    )
    return model.eval()

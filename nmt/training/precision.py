"""Arithmetic of the training step: autocast, float16 loss scaling, TF32, torch.compile.

Weights, Adam's moments and the loss stay float32 whatever ``training.precision`` says; only
the matmuls of the forward and backward passes run in bfloat16 or float16 under autocast.
float16's narrow exponent makes small gradients underflow, so its loss is multiplied by a
dynamic scale before backward (torch.amp.GradScaler): an update whose gradients overflow is
skipped and the scale halved; after 2,000 clean updates the scale doubles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from nmt.training.loss import LossSums, label_smoothed_loss, output_layer_loss

AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}

ForwardLoss = Callable[[Tensor, Tensor, Tensor, Tensor], LossSums]
OutputLayer = Callable[[], tuple[Tensor, Tensor | None]]  # () → the output layer's (W, b)


def configure_matmul_precision(device: torch.device, precision: str) -> None:
    """float32 on a GPU: let matmuls use TF32 tensor cores (float32 range, 10-bit mantissa
    products, float32 sums), several times faster on Ampere and later at no cost in training."""
    if device.type == "cuda" and precision == "float32":
        torch.backends.cuda.matmul.fp32_precision = "tf32"


@contextmanager
def training_attention(device_type: str) -> Iterator[None]:
    """Which attention kernel training's forward (and so its backward) uses. On the CPU the
    explicit softmax(QKᵀ/√d)·V path: at the quickstart's lengths (tens of tokens) the fused
    flash kernel's backward was a quarter of an update, and the explicit path made updates
    1.23× faster (725 → 588 ms, two threads, quiet; docs/performance.md). On a GPU PyTorch
    chooses.

    Under bfloat16 autocast that path would take queries, keys and values up to float32 and keep
    those copies for the backward, the largest block of an update's memory (92 of 318 MiB at
    the quickstart's peak); it is told to stay in bfloat16, as a fused kernel does (the softmax
    still sums in float32 inside, its output is stored in bfloat16 as flash attention's P is).
    The switch is process-wide, so it is restored on leaving."""
    if device_type != "cpu":
        yield
        return
    reduced = torch.backends.cuda.fp16_bf16_reduction_math_sdp_allowed()
    torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(True)
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            yield
    finally:
        torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(reduced)


def forward_loss(
    model: nn.Module,
    *,
    device_type: str,
    precision: str,
    label_smoothing: float,
    pad_id: int,
    compile: bool = False,
    compile_backend: str = "inductor",
    output_layer: OutputLayer | None = None,
) -> ForwardLoss:
    """``(src, src_mask, tgt_in, tgt_out) -> LossSums`` for ``model``, under autocast as
    ``precision`` asks; with ``compile``, the model goes through torch.compile (shapes vary from
    batch to batch, so they are compiled as dynamic from the start). ``output_layer``: for a
    model whose forward can return its last hidden states (``features=True``, the
    Transformer's), the output layer's (weight, bias); the loss then applies it chunk by chunk
    (nmt.training.loss.output_layer_loss) and the whole logits never exist."""
    features = {} if output_layer is None else {"features": True}
    dtype, enabled = AUTOCAST_DTYPES.get(precision), precision in AUTOCAST_DTYPES
    if compile:
        # The model's forward (and so its backward): the loss counts tokens into a Python int,
        # which would cut a compiled graph in two, and costs little next to the model.
        model = torch.compile(model, dynamic=True, backend=compile_backend)  # type: ignore[assignment]

    def step(src: Tensor, src_mask: Tensor, tgt_in: Tensor, tgt_out: Tensor) -> LossSums:
        with (
            torch.autocast(device_type, dtype=dtype, enabled=enabled),
            training_attention(device_type),
        ):
            out = model(src, src_mask, tgt_in, **features)
        if output_layer is None:
            return label_smoothed_loss(out, tgt_out, epsilon=label_smoothing, pad_id=pad_id)
        weight, bias = output_layer()
        return output_layer_loss(
            out,
            weight,
            bias,
            tgt_out,
            epsilon=label_smoothing,
            pad_id=pad_id,
            dtype=dtype if enabled and dtype is not None else torch.float32,
        )

    return step


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """The loss scaler: active for float16 only (elsewhere every call passes through)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "float16")


def optimizer_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> bool:
    """Unscale, step unless the gradients hold inf/NaN, update the scale; True when skipped."""
    scale = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    # GradScaler lowers its scale exactly when it found an overflow and skipped the step.
    return scaler.is_enabled() and scaler.get_scale() < scale

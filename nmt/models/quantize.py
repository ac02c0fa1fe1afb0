"""int8 inference on the CPU: dynamic quantization of a model's linear layers (``--int8``).

Every ``nn.Linear`` (attention projections, feed-forward, the output projection) keeps int8
weights, quantized once at load time, and quantizes its input on the fly at each call, so its
matmuls run in int8 (fbgemm / oneDNN, PyTorch's "x86" quantized engine) and return float32.
Embeddings, layer norms and the softmax stay float32. The model is for inference only.

Which API: PyTorch 2.13 marks ``torch.ao.quantization`` deprecated in favour of torchao's
``quantize_(model, Int8DynamicActivationInt8WeightConfig())``. torchao's int8 layers are built
for ``torch.compile``; run eagerly on a CPU, as nmt's step-by-step search runs, they measured
about 2× slower than ``torch.ao.quantization.quantize_dynamic``'s fbgemm kernels here (and
would add a dependency), so nmt keeps ``quantize_dynamic`` while PyTorch ships it.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from nmt.errors import NmtError


def quantize_int8(model: nn.Module) -> nn.Module:
    """``model`` (on the CPU, in eval mode) with its linear layers dynamically quantized to
    int8; the float32 linear weights are replaced, the rest is shared with ``model``."""
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise NmtError("int8 dynamic quantization runs on the CPU only")
    if "x86" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():
        # The deprecation notices of torch.ao.quantization (see the module docstring).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantized = torch.ao.quantization.quantize_dynamic(
            model.eval(), {nn.Linear}, dtype=torch.qint8, inplace=False
        )
    return quantized

"""Replacing an inference model's ``nn.Linear`` layers in place (int8, oneDNN-packed).

A Transformer's separate output bias (Marian's ``final_logits_bias``) is folded into its new
output layer's own bias, so that it is added inside that layer (one pass over rows × vocabulary
instead of two, a few per cent of a decoding step at 58,101 pieces) and the model's attribute
is dropped.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

# (the layer, the bias its replacement adds: its own or the folded output bias) → replacement
Replace = Callable[[nn.Linear, Tensor | None], nn.Module]


def replace_linear_layers(
    model: nn.Module, replace: Replace, wanted: Callable[[nn.Linear], bool] = lambda _: True
) -> None:
    """Every plain ``nn.Linear`` of ``model`` that is ``wanted``, replaced by ``replace``."""
    for parent in list(model.modules()):
        output_bias = getattr(parent, "output_bias", None)
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Linear or not wanted(child):
                continue
            bias = child.bias
            if name == "generator" and output_bias is not None and bias is None:
                bias = output_bias
                parent.output_bias = None
            setattr(parent, name, replace(child, bias))

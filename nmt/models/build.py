"""Build the model a config names: the one place that knows every architecture."""

from __future__ import annotations

from torch import nn

from nmt.config import RNNConfig, TransformerConfig
from nmt.models.interface import TranslationModel


def build_model(config: TransformerConfig | RNNConfig, vocab_size: int) -> TranslationModel:
    """A freshly initialised model; every model built here honours nmt.models.interface."""
    match config:
        case TransformerConfig():
            from nmt.models.transformer import Transformer

            return Transformer(config, vocab_size)
        case RNNConfig():
            from nmt.models.rnn import RNNSeq2Seq

            return RNNSeq2Seq(config, vocab_size)
    raise AssertionError(f"unknown model config {type(config).__name__}")


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, each shared tensor counted once (tied weights are one tensor)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

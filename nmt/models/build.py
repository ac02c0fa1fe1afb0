"""Build the model a config names: the one place that knows every architecture."""

from __future__ import annotations

from torch import nn

from nmt.config import RNNConfig, TransformerConfig
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from nmt.errors import NmtError
from nmt.models.interface import TranslationModel


def special_ids(config: TransformerConfig | RNNConfig, vocab_size: int) -> dict[str, int]:
    """pad_id, bos_id and eos_id: the config's where given (an imported model's), else the
    tokenizer's defaults; each must be a vocabulary id."""
    ids = {
        "pad_id": PAD_ID if config.pad_id is None else config.pad_id,
        "bos_id": BOS_ID if config.bos_id is None else config.bos_id,
        "eos_id": EOS_ID if config.eos_id is None else config.eos_id,
    }
    for name, value in ids.items():
        if value >= vocab_size:
            raise NmtError(f"model.{name} ({value}) is outside the vocabulary of {vocab_size}")
    return ids


def build_model(config: TransformerConfig | RNNConfig, vocab_size: int) -> TranslationModel:
    """A freshly initialised model; every model built here honours nmt.models.interface."""
    ids = special_ids(config, vocab_size)
    match config:
        case TransformerConfig():
            from nmt.models.transformer import Transformer

            return Transformer(config, vocab_size, **ids)
        case RNNConfig():
            from nmt.models.rnn import RNNSeq2Seq

            return RNNSeq2Seq(config, vocab_size, **ids)
    raise AssertionError(f"unknown model config {type(config).__name__}")


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, each shared tensor counted once (tied weights are one tensor)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

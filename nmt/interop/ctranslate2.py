"""nmt Transformers as CTranslate2 models (`nmt export MODEL_DIR --to ctranslate2 -o DIR`).

CTranslate2 (OpenNMT's C++ inference engine) describes a model with a Python "spec" of named
weights; its own converters for OpenNMT-py, fairseq and Marian fill one in and let it write the
binary format. This module does the same from an nmt model directory, with the loaded model's
modules (so a checkpoint with the older, separate q/k/v projections converts too: the model
fuses them when it loads):

    nmt                                        CTranslate2 TransformerSpec
    src_embed / tgt_embed, × √d_model          encoder.embeddings[0] / decoder.embeddings,
                                               scale_embeddings
    src_positions / tgt_positions              encoder / decoder.position_encodings: the table
                                               the model adds (sinusoidal ones too, since nmt
                                               computes those and CTranslate2's own differ)
    *.self_attn.qkv_proj, out_proj             layer.N.self_attention.linear[0] (q|k|v), [1]
    decoder *.cross_attn.q_proj, kv_proj,      layer.N.attention.linear[0], [1] (k|v), [2]
      out_proj
    *.self_attn_residual.norm                  layer.N.self_attention.layer_norm
    decoder *.cross_attn_residual.norm         layer.N.attention.layer_norm
    *.feed_forward.w_1 / w_2                   layer.N.ffn.linear_0 / linear_1
    *.feed_forward_residual.norm               layer.N.ffn.layer_norm
    encoder_norm / decoder_norm (pre-LN)       encoder / decoder.layer_norm
    generator, output_bias                     decoder.projection (weight, bias)

CTranslate2's post-LN layer normalises after the residual sum and its pre-LN layer before the
sublayer, as nmt's ``norm: post`` and ``norm: pre``. The vocabulary is the tokenizer's pieces in
id order; ``add_source_eos`` appends the model's EOS to every source, and its BOS piece (an
imported Marian model: PAD) starts the decoder, as in nmt's search.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from nmt.config import TransformerConfig
from nmt.data.tokenizer import copy_tokenizer
from nmt.durable import directory_written_atomically
from nmt.errors import NmtError
from nmt.models.store import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    LoadedModel,
    load_model_dir,
    resolve_model_dir,
)

if TYPE_CHECKING:
    from ctranslate2.specs import TransformerSpec

    from nmt.models.transformer import DecoderLayer, EncoderLayer, PositionalEncoding

# What `nmt export --quantization` offers: CTranslate2's weight types that run on a CPU.
QUANTIZATIONS = ("float32", "int8", "int8_float32", "bfloat16")
# Bump when the conversion changes, so that cached conversions (nmt.decoding.engines) redo.
CONVERTER_VERSION = 2  # 2: every head of the last layer is an alignment head
# The file every CTranslate2 model directory holds.
CT2_WEIGHTS = "model.bin"


def import_ctranslate2() -> Any:
    """The ctranslate2 module, or a clear error saying how to install it."""
    try:
        import ctranslate2
    except ImportError:
        raise NmtError(
            "CTranslate2 is not installed: pip install 'nmt[ctranslate2]' (or ctranslate2>=4)"
        ) from None
    return ctranslate2


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to(torch.float32).cpu().numpy().copy()


def _set_linear(spec: Any, linear: nn.Module) -> None:
    assert isinstance(linear, nn.Linear)
    spec.weight = _array(linear.weight)
    if linear.bias is not None:
        spec.bias = _array(linear.bias)


def _set_layer_norm(spec: Any, norm: nn.Module) -> None:
    assert isinstance(norm, nn.LayerNorm)
    spec.gamma = _array(norm.weight)
    spec.beta = _array(norm.bias)


def _position_table(positions: PositionalEncoding) -> np.ndarray:
    """The (max_positions, D) table a PositionalEncoding adds: learned weights or its sinusoid."""
    learned = positions.learned
    return _array(learned.weight if learned is not None else positions.table)


def _layer_norm_epsilon(model: nn.Module) -> float:
    epsilons = {m.eps for m in model.modules() if isinstance(m, nn.LayerNorm)}
    if len(epsilons) != 1:
        raise NmtError(f"layer norms with different epsilons {sorted(epsilons)}: not convertible")
    return float(epsilons.pop())


def _check_convertible(loaded: LoadedModel) -> TransformerConfig:
    """The model's Transformer config, or an NmtError naming what CTranslate2 cannot express."""
    config = loaded.config.model
    if not isinstance(config, TransformerConfig):
        raise NmtError(
            f"only Transformer models convert to CTranslate2; this is a '{config.arch}' model"
        )
    pieces = loaded.tokenizer.pieces()
    if len(set(pieces)) != len(pieces):
        raise NmtError("the vocabulary repeats a piece: CTranslate2 needs each piece once")
    return config


def transformer_spec(loaded: LoadedModel) -> TransformerSpec:
    """The CTranslate2 spec of a loaded nmt Transformer, weights and vocabulary filled in."""
    import_ctranslate2()
    from ctranslate2.specs import common_spec, transformer_spec

    from nmt.models.transformer import Transformer

    config = _check_convertible(loaded)
    model = loaded.model
    assert isinstance(model, Transformer)
    encoder_layers = cast("list[EncoderLayer]", list(model.encoder_layers))
    decoder_layers = cast("list[DecoderLayer]", list(model.decoder_layers))
    activations = {
        "relu": common_spec.Activation.RELU,
        "swish": common_spec.Activation.SWISH,
        "gelu": common_spec.Activation.GELU,  # erf-based, as torch's F.gelu
    }
    spec = transformer_spec.TransformerSpec.from_config(
        (config.num_encoder_layers, config.num_decoder_layers),
        config.num_heads,
        pre_norm=config.norm == "pre",
        activation=activations[config.activation],
        # return_attention then gives the mean of the last layer's heads, the attention that
        # nmt.decoding.alignment aligns with.
        alignment_layer=-1,
        alignment_heads=config.num_heads,
    )
    encoder, decoder = spec.encoder, spec.decoder
    for side, embed, positions in (
        (encoder, model.src_embed, model.src_positions),
        (decoder, model.tgt_embed, model.tgt_positions),
    ):
        embeddings = side.embeddings[0] if isinstance(side.embeddings, list) else side.embeddings
        embeddings.weight = _array(embed.weight)
        side.scale_embeddings = config.scale_embedding
        side.position_encodings.encodings = _position_table(positions)
    if config.norm == "pre":
        _set_layer_norm(encoder.layer_norm, model.encoder_norm)
        _set_layer_norm(decoder.layer_norm, model.decoder_norm)

    for layer_spec, encoder_layer in zip(encoder.layer, encoder_layers, strict=True):
        _set_common_sublayers(layer_spec, encoder_layer)
    for layer_spec, decoder_layer in zip(decoder.layer, decoder_layers, strict=True):
        _set_common_sublayers(layer_spec, decoder_layer)
        cross_attn = decoder_layer.cross_attn
        _set_linear(layer_spec.attention.linear[0], cross_attn.q_proj)
        _set_linear(layer_spec.attention.linear[1], cross_attn.kv_proj)
        _set_linear(layer_spec.attention.linear[2], cross_attn.out_proj)
        _set_layer_norm(layer_spec.attention.layer_norm, decoder_layer.cross_attn_residual.norm)

    decoder.projection.weight = _array(model.generator.weight)
    if model.output_bias is not None:
        decoder.projection.bias = _array(model.output_bias)

    pieces = loaded.tokenizer.pieces()
    spec.register_source_vocabulary(pieces)
    spec.register_target_vocabulary(pieces)
    spec.config.unk_token = pieces[loaded.tokenizer.unk_id]
    spec.config.bos_token = pieces[model.bos_id]
    spec.config.eos_token = pieces[model.eos_id]
    spec.config.decoder_start_token = pieces[model.bos_id]
    spec.config.add_source_bos = False
    spec.config.add_source_eos = True
    spec.config.layer_norm_epsilon = _layer_norm_epsilon(model)
    return spec


def _set_common_sublayers(layer_spec: Any, layer: EncoderLayer | DecoderLayer) -> None:
    """Self-attention and feed-forward, with their norms: what both kinds of layer hold."""
    _set_linear(layer_spec.self_attention.linear[0], layer.self_attn.qkv_proj)
    _set_linear(layer_spec.self_attention.linear[1], layer.self_attn.out_proj)
    _set_layer_norm(layer_spec.self_attention.layer_norm, layer.self_attn_residual.norm)
    _set_linear(layer_spec.ffn.linear_0, layer.feed_forward.w_1)
    _set_linear(layer_spec.ffn.linear_1, layer.feed_forward.w_2)
    _set_layer_norm(layer_spec.ffn.layer_norm, layer.feed_forward_residual.norm)


def _check_output(out_dir: Path) -> None:
    """Replacing ``out_dir`` would delete it: allow that only for an empty or CTranslate2 one."""
    if out_dir.exists() and not (
        out_dir.is_dir() and (not any(out_dir.iterdir()) or (out_dir / CT2_WEIGHTS).is_file())
    ):
        raise NmtError(f"{out_dir}: exists and is not a CTranslate2 model; choose another output")


def export_ctranslate2(model_dir: Path, out_dir: Path, *, quantization: str = "float32") -> Path:
    """Convert an nmt model directory (or a run's best model) into a CTranslate2 model
    directory at ``out_dir``, written beside it and renamed into place. Returns ``out_dir``."""
    if quantization not in QUANTIZATIONS:
        raise NmtError(f"quantization {quantization!r}: choose one of {', '.join(QUANTIZATIONS)}")
    _check_output(out_dir)
    model_dir = resolve_model_dir(model_dir)
    loaded = load_model_dir(model_dir)
    spec = transformer_spec(loaded)
    try:
        spec.validate()
    except ValueError as exc:
        raise NmtError(f"{model_dir}: the CTranslate2 conversion is incomplete ({exc})") from None
    spec.optimize(quantization=quantization)
    with directory_written_atomically(out_dir, what="the CTranslate2 model") as tmp:
        spec.save(str(tmp))
        # The tokenizer travels with the model, so that the folder is all a user needs.
        copy_tokenizer(model_dir, tmp)
    return out_dir


def model_fingerprint(model_dir: Path) -> str:
    """A digest of what a conversion reads (weights, config, tokenizer files) and of the
    converter and CTranslate2 versions: a changed model, or a new converter, converts again.
    ``model_dir`` is a model directory itself (nmt.models.store.resolve_model_dir)."""
    ctranslate2 = import_ctranslate2()
    digest = hashlib.sha256(
        json.dumps([CONVERTER_VERSION, ctranslate2.__version__]).encode("utf-8")
    )
    names = sorted(
        p.name for p in model_dir.iterdir() if p.is_file() and not p.name.startswith(".")
    )
    for name in names:
        if name in (WEIGHTS_FILE, CONFIG_FILE) or name.endswith((".model", ".spm", ".json")):
            digest.update(name.encode("utf-8"))
            with open(model_dir / name, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]

"""Hugging Face Marian (OPUS-MT) models in and out of nmt.

``import_marian`` reads a local folder written by ``MarianMTModel.save_pretrained`` (config.json,
model.safetensors, source.spm, target.spm, vocab.json, tokenizer_config.json) into an ordinary
nmt model directory; ``export_marian`` writes an nmt model directory as such a folder, which
``MarianMTModel`` and ``MarianTokenizer`` load offline. Neither needs transformers: the folder is
JSON, safetensors and SentencePiece files (transformers checks the results in the tests only).

Marian's Transformer is the paper's post-LN one with these differences, each an nmt config
option: swish (SiLU) feed-forwards (``activation``), sinusoids laid out as all sines then all
cosines (``position_layout: concatenated``), a bias on the logits (``output_bias``), encoder and
decoder depths of their own, and its own special ids (EOS 0, PAD = decoder start = V − 1).

Weight names, nmt ← Marian (one table, ``layer_weights``, serves both directions; q/k/v are
stacked into nmt's fused projections in that order):

    src_embed / tgt_embed / generator      model.shared (tied) or encoder/decoder embed_tokens,
                                           lm_head
    output_bias                            final_logits_bias (1, V) → (V,)
    src_positions / tgt_positions.learned  model.encoder / decoder.embed_positions, when the
                                           table is not Marian's own sinusoid
    encoder_layers.N.self_attn.qkv_proj    model.encoder.layers.N.self_attn.{q,k,v}_proj
    encoder_layers.N.self_attn.out_proj    … self_attn.out_proj
    encoder_layers.N.self_attn_residual    … self_attn_layer_norm
    encoder_layers.N.feed_forward.w_1/w_2  … fc1 / fc2
    encoder_layers.N.feed_forward_residual … final_layer_norm
    decoder_layers.N.cross_attn.q_proj     model.decoder.layers.N.encoder_attn.q_proj
    decoder_layers.N.cross_attn.kv_proj    … encoder_attn.{k,v}_proj
    decoder_layers.N.cross_attn_residual   … encoder_attn_layer_norm
    (the decoder's self-attention and feed-forward as the encoder's)
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from nmt.config import Config, DataConfig, TransformerConfig, config_from_dict
from nmt.data.tokenizer import (
    PAIR_FILES,
    SOURCE_SPM,
    TARGET_SPM,
    TOKENIZER_FILE,
    VOCAB_FILE,
    PairTokenizer,
    Tokenizer,
)
from nmt.durable import directory_written_atomically
from nmt.errors import NmtError
from nmt.models.build import build_model
from nmt.models.store import load_model_dir, resolve_model_dir, write_model_dir
from nmt.models.transformer import Transformer, sinusoidal_positions

log = logging.getLogger(__name__)

HF_CONFIG = "config.json"
HF_GENERATION_CONFIG = "generation_config.json"
HF_WEIGHTS = "model.safetensors"
HF_TOKENIZER_CONFIG = "tokenizer_config.json"
# Weights in these formats are pickles (or other frameworks'): never read.
PICKLED_WEIGHTS = ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack")

# Marian's activation_function → nmt's activation (transformers' "gelu" is the exact, erf one).
ACTIVATIONS = {"relu": "relu", "swish": "swish", "silu": "swish", "gelu": "gelu"}
REQUIRED_KEYS = (
    "d_model",
    "encoder_layers",
    "decoder_layers",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "vocab_size",
    "max_position_embeddings",
    "pad_token_id",
    "eos_token_id",
    "decoder_start_token_id",
)
# Options of other BART-family configs that Marian's architecture never uses.
NOT_MARIAN = ("normalize_before", "add_final_layer_norm", "normalize_embedding")


def layer_weights(encoder_layers: int, decoder_layers: int) -> dict[str, tuple[str, ...]]:
    """nmt parameter name → the Marian names whose tensors it stacks, in order, along dim 0."""
    table: dict[str, tuple[str, ...]] = {}

    def same(nmt: str, marian: str) -> None:
        for kind in ("weight", "bias"):
            table[f"{nmt}.{kind}"] = (f"{marian}.{kind}",)

    def stacked(nmt: str, marian: str, parts: str) -> None:
        for kind in ("weight", "bias"):
            table[f"{nmt}.{kind}"] = tuple(f"{marian}.{p}_proj.{kind}" for p in parts)

    for side, depth in (("encoder", encoder_layers), ("decoder", decoder_layers)):
        for i in range(depth):
            nmt, marian = f"{side}_layers.{i}", f"model.{side}.layers.{i}"
            stacked(f"{nmt}.self_attn.qkv_proj", f"{marian}.self_attn", "qkv")
            same(f"{nmt}.self_attn.out_proj", f"{marian}.self_attn.out_proj")
            same(f"{nmt}.self_attn_residual.norm", f"{marian}.self_attn_layer_norm")
            if side == "decoder":
                same(f"{nmt}.cross_attn.q_proj", f"{marian}.encoder_attn.q_proj")
                stacked(f"{nmt}.cross_attn.kv_proj", f"{marian}.encoder_attn", "kv")
                same(f"{nmt}.cross_attn.out_proj", f"{marian}.encoder_attn.out_proj")
                same(f"{nmt}.cross_attn_residual.norm", f"{marian}.encoder_attn_layer_norm")
            same(f"{nmt}.feed_forward.w_1", f"{marian}.fc1")
            same(f"{nmt}.feed_forward.w_2", f"{marian}.fc2")
            same(f"{nmt}.feed_forward_residual.norm", f"{marian}.final_layer_norm")
    return table


# -- reading a Marian folder ---------------------------------------------------------------------


@dataclass
class MarianFolder:
    """A checked Hugging Face Marian folder."""

    path: Path
    config: dict[str, Any]  # config.json
    tokenizer_config: dict[str, Any]  # tokenizer_config.json ({} when there is none)
    tokenizer: PairTokenizer
    weights: dict[str, Tensor]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NmtError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise NmtError(f"{path}: expected a JSON object")
    return data


def read_marian_folder(path: Path) -> MarianFolder:
    """Check a Marian folder's files and their agreement; one NmtError names the first fault."""
    if not path.is_dir():
        raise NmtError(f"{path}: no such folder")
    if not (path / HF_CONFIG).is_file():
        raise NmtError(f"{path}: no {HF_CONFIG}: not a Hugging Face model folder")
    config = _read_json(path / HF_CONFIG)
    if config.get("model_type") != "marian":
        raise NmtError(
            f"{path / HF_CONFIG}: model_type is {config.get('model_type')!r}, not 'marian'"
        )
    weights_path = path / HF_WEIGHTS
    if not weights_path.is_file():
        pickled = [name for name in PICKLED_WEIGHTS if (path / name).is_file()]
        if pickled:
            raise NmtError(
                f"{path / pickled[0]}: nmt reads only safetensors weights, because loading a "
                f"pickle can execute code. Convert it once, where you trust the file: "
                f"MarianMTModel.from_pretrained(FOLDER).save_pretrained(FOLDER, "
                f"safe_serialization=True) writes {HF_WEIGHTS}"
            )
        if (path / f"{HF_WEIGHTS}.index.json").is_file():
            raise NmtError(f"{path}: weights sharded over several files are not supported")
        raise NmtError(f"{path}: no {HF_WEIGHTS}")
    tokenizer_config = (
        _read_json(path / HF_TOKENIZER_CONFIG) if (path / HF_TOKENIZER_CONFIG).is_file() else {}
    )
    if tokenizer_config.get("separate_vocabs") or (path / "target_vocab.json").is_file():
        raise NmtError(
            f"{path}: separate source and target vocabularies are not supported "
            "(nmt's models share one)"
        )
    tokenizer = PairTokenizer.load(path)
    _check_config(path / HF_CONFIG, config, tokenizer)
    try:
        weights = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise NmtError(f"{weights_path}: corrupt or unreadable weights ({exc})") from None
    return MarianFolder(path, config, tokenizer_config, tokenizer, weights)


def _check_config(path: Path, config: dict[str, Any], tokenizer: PairTokenizer) -> None:
    missing = [key for key in REQUIRED_KEYS if not isinstance(config.get(key), int)]
    if missing:
        raise NmtError(f"{path}: no integer {', '.join(missing)}")
    vocab_size = tokenizer.vocab_size
    if config["vocab_size"] != vocab_size:
        raise NmtError(
            f"{path}: vocab_size is {config['vocab_size']} but {VOCAB_FILE} holds "
            f"{vocab_size} pieces"
        )
    if config.get("decoder_vocab_size") not in (None, vocab_size):
        raise NmtError(f"{path}: a decoder vocabulary of its own is not supported")
    for key, name, expected in (
        ("pad_token_id", "<pad>", tokenizer.pad_id),
        ("eos_token_id", "</s>", tokenizer.eos_id),
    ):
        if config[key] != expected:
            raise NmtError(
                f"{path}: {key} is {config[key]} but {VOCAB_FILE} has {name} = {expected}"
            )
    if config["decoder_start_token_id"] != tokenizer.bos_id:
        raise NmtError(
            f"{path}: decoder_start_token_id is {config['decoder_start_token_id']}, but the "
            f"vocabulary's decoder start (<s>, else <pad>) is {tokenizer.bos_id}"
        )
    if config["encoder_attention_heads"] != config["decoder_attention_heads"]:
        raise NmtError(f"{path}: encoder and decoder with different head counts: not supported")
    if config["encoder_ffn_dim"] != config["decoder_ffn_dim"]:
        raise NmtError(f"{path}: encoder and decoder with different ffn_dim: not supported")
    activation = config.get("activation_function", "gelu")
    if activation not in ACTIVATIONS:
        raise NmtError(
            f"{path}: activation_function {activation!r} is not supported "
            f"(one of {', '.join(ACTIVATIONS)})"
        )
    used = [key for key in NOT_MARIAN if config.get(key)]
    if used:
        raise NmtError(f"{path}: {', '.join(used)} is not part of Marian's architecture")


# -- Marian → nmt ----------------------------------------------------------------------------------


def _take(weights: dict[str, Tensor], name: str, path: Path) -> Tensor:
    if name not in weights:
        raise NmtError(f"{path / HF_WEIGHTS}: no {name}")
    return weights.pop(name)


def marian_to_nmt(folder: MarianFolder) -> tuple[Config, dict[str, Tensor]]:
    """The nmt config and state dict of a Marian folder's model."""
    hf, path = folder.config, folder.path
    weights = dict(folder.weights)
    d_model, num_positions = hf["d_model"], hf["max_position_embeddings"]

    state: dict[str, Tensor] = {}
    for name, parts in layer_weights(hf["encoder_layers"], hf["decoder_layers"]).items():
        tensors = [_take(weights, part, path) for part in parts]
        if len({t.shape for t in tensors}) != 1:
            raise NmtError(f"{path / HF_WEIGHTS}: {', '.join(parts)} differ in shape")
        state[name] = torch.cat(tensors)

    shared = weights.pop("model.shared.weight", None)
    src_embed = weights.pop("model.encoder.embed_tokens.weight", shared)
    tgt_embed = weights.pop("model.decoder.embed_tokens.weight", shared)
    if src_embed is None or tgt_embed is None:
        raise NmtError(f"{path / HF_WEIGHTS}: no model.shared.weight (nor embed_tokens)")
    lm_head = weights.pop("lm_head.weight", None)
    if lm_head is None and not hf.get("tie_word_embeddings", True):
        raise NmtError(f"{path / HF_WEIGHTS}: no lm_head.weight, and it is not tied")
    generator = tgt_embed if lm_head is None else lm_head
    state.update({"src_embed.weight": src_embed, "tgt_embed.weight": tgt_embed})
    state["generator.weight"] = generator

    bias = weights.pop("final_logits_bias", None)
    if bias is not None:
        state["output_bias"] = bias.reshape(-1)

    # Marian's positions are its own sinusoid; a table that differs is carried as weights.
    marian_sinusoid = sinusoidal_positions(num_positions, d_model, layout="concatenated")
    tables = {
        side: weights.pop(f"model.{side}.embed_positions.weight", marian_sinusoid)
        for side in ("encoder", "decoder")
    }
    learned = any(
        t.shape != marian_sinusoid.shape
        or not torch.allclose(t.float(), marian_sinusoid, atol=1e-6)
        for t in tables.values()
    )
    if learned:
        state["src_positions.learned.weight"] = tables["encoder"]
        state["tgt_positions.learned.weight"] = tables["decoder"]
    if weights:
        unknown = ", ".join(sorted(weights)[:3])
        raise NmtError(f"{path / HF_WEIGHTS}: weights nmt cannot place: {unknown} …")

    model = {
        "arch": "transformer",
        "num_layers": hf["encoder_layers"],
        "encoder_layers": hf["encoder_layers"],
        "decoder_layers": hf["decoder_layers"],
        "d_model": d_model,
        "d_ff": hf["encoder_ffn_dim"],
        "num_heads": hf["encoder_attention_heads"],
        "dropout": hf.get("dropout", 0.1),
        "positions": "learned" if learned else "sinusoidal",
        "position_layout": "concatenated",
        "norm": "post",
        "max_positions": num_positions,
        "share_embeddings": torch.equal(src_embed, tgt_embed),
        "tie_output": torch.equal(generator, tgt_embed),
        "activation": ACTIVATIONS[hf.get("activation_function", "gelu")],
        "scale_embedding": bool(hf.get("scale_embedding", False)),
        "output_bias": bias is not None,
        "pad_id": hf["pad_token_id"],
        "bos_id": hf["decoder_start_token_id"],
        "eos_id": hf["eos_token_id"],
    }
    data: dict[str, Any] = {
        "vocab_size": folder.tokenizer.vocab_size,
        "max_len": min(DataConfig().max_len, num_positions - 1),
    }
    for field, key in (("src_lang", "source_lang"), ("tgt_lang", "target_lang")):
        if isinstance(value := folder.tokenizer_config.get(key), str) and value:
            data[field] = value
    decoding = {}
    beams = {**hf, **_optional_json(path / HF_GENERATION_CONFIG)}.get("num_beams")
    if isinstance(beams, int) and beams >= 1:
        decoding["beam_size"] = beams
    tree = {"data": data, "model": model, "decoding": decoding}
    config = config_from_dict(tree, source=f"{path / HF_CONFIG} (as nmt's config)")
    return config, state


def _optional_json(path: Path) -> dict[str, Any]:
    return _read_json(path) if path.is_file() else {}


def import_marian(src_dir: Path, out_dir: Path) -> Config:
    """Write the Marian folder ``src_dir`` as the nmt model directory ``out_dir``."""
    folder = read_marian_folder(src_dir)
    config, state = marian_to_nmt(folder)
    model = build_model(config.model, folder.tokenizer.vocab_size)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise NmtError(
            f"{src_dir / HF_WEIGHTS}: weights do not fit {HF_CONFIG}: {str(exc).splitlines()[-1]}"
        ) from None
    write_model_dir(out_dir, config=config, tokenizer_path=src_dir / VOCAB_FILE, model=model)
    log.info("imported %s into %s", src_dir, out_dir)
    return config


# -- nmt → Marian ----------------------------------------------------------------------------------


def nmt_to_marian(model: Transformer, config: TransformerConfig) -> dict[str, Tensor]:
    """Marian's tensors for an nmt Transformer (post-LN; the caller checks)."""
    state = model.state_dict()
    weights: dict[str, Tensor] = {}
    names = layer_weights(config.num_encoder_layers, config.num_decoder_layers)
    for name, parts in names.items():
        for part, tensor in zip(parts, state[name].chunk(len(parts)), strict=True):
            weights[part] = tensor
    if config.share_embeddings:
        weights["model.shared.weight"] = state["src_embed.weight"]
    if not config.share_embeddings or not config.tie_output:
        # transformers ties the encoder's and decoder's embed_tokens to model.shared only
        # when it ties the output layer too: otherwise they must be in the file.
        weights["model.encoder.embed_tokens.weight"] = state["src_embed.weight"]
        weights["model.decoder.embed_tokens.weight"] = state["tgt_embed.weight"]
    if not config.tie_output:
        weights["lm_head.weight"] = state["generator.weight"]
    vocab_size = state["generator.weight"].size(0)
    bias = state.get("output_bias", torch.zeros(vocab_size))
    weights["final_logits_bias"] = bias.reshape(1, vocab_size)
    # Without a table in the file, transformers computes Marian's sinusoid; any other is written.
    if config.positions == "learned":
        weights["model.encoder.embed_positions.weight"] = state["src_positions.learned.weight"]
        weights["model.decoder.embed_positions.weight"] = state["tgt_positions.learned.weight"]
    elif config.position_layout != "concatenated":
        table = sinusoidal_positions(
            config.max_positions, config.d_model, layout=config.position_layout
        )
        weights["model.encoder.embed_positions.weight"] = table
        weights["model.decoder.embed_positions.weight"] = table
    # safetensors stores each tensor on its own: no views, no shared memory.
    return {name: tensor.detach().contiguous().clone() for name, tensor in weights.items()}


def marian_config(model: Transformer, config: TransformerConfig, vocab_size: int) -> dict[str, Any]:
    """config.json of a MarianMTModel equal to ``model``."""
    activation = {"relu": "relu", "swish": "swish", "gelu": "gelu"}[config.activation]
    return {
        "architectures": ["MarianMTModel"],
        "model_type": "marian",
        "vocab_size": vocab_size,
        "decoder_vocab_size": vocab_size,
        "d_model": config.d_model,
        "encoder_layers": config.num_encoder_layers,
        "decoder_layers": config.num_decoder_layers,
        "encoder_attention_heads": config.num_heads,
        "decoder_attention_heads": config.num_heads,
        "encoder_ffn_dim": config.d_ff,
        "decoder_ffn_dim": config.d_ff,
        "activation_function": activation,
        "max_position_embeddings": config.max_positions,
        "scale_embedding": config.scale_embedding,
        "share_encoder_decoder_embeddings": config.share_embeddings,
        "tie_word_embeddings": config.tie_output,
        "dropout": config.dropout,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "pad_token_id": model.pad_id,
        "eos_token_id": model.eos_id,
        "decoder_start_token_id": model.bos_id,
        "forced_eos_token_id": model.eos_id,
        "is_encoder_decoder": True,
    }


def generation_config(model: Transformer, config: Config) -> dict[str, Any]:
    """generation_config.json: nmt's search never emits PAD or the decoder start token."""
    banned = sorted({model.pad_id, model.bos_id})
    return {
        "decoder_start_token_id": model.bos_id,
        "eos_token_id": model.eos_id,
        "forced_eos_token_id": model.eos_id,
        "pad_token_id": model.pad_id,
        "bad_words_ids": [[token] for token in banned],
        "num_beams": config.decoding.beam_size,
        "max_length": config.model.max_positions,
    }


def _write_tokenizer(tokenizer: Tokenizer, model_dir: Path, out: Path) -> None:
    """source.spm, target.spm and vocab.json: a pair's own files, or the joint model as both
    SentencePiece models with its own ids as the vocabulary."""
    if isinstance(tokenizer, PairTokenizer):
        for name in PAIR_FILES:
            shutil.copyfile(model_dir / name, out / name)
        return
    for name in (SOURCE_SPM, TARGET_SPM):
        shutil.copyfile(model_dir / TOKENIZER_FILE, out / name)
    vocab = {piece: index for index, piece in enumerate(tokenizer.pieces())}
    (out / VOCAB_FILE).write_text(json.dumps(vocab, ensure_ascii=False, indent=1), "utf-8")


def export_marian(model_dir: Path, out_dir: Path) -> None:
    """Write the nmt model directory ``model_dir`` as a Hugging Face Marian folder ``out_dir``."""
    model_dir = resolve_model_dir(Path(model_dir))
    loaded = load_model_dir(model_dir)
    config, model, tokenizer = loaded.config, loaded.model, loaded.tokenizer
    if not isinstance(model, Transformer) or not isinstance(config.model, TransformerConfig):
        raise NmtError(
            f"{model_dir}: only Transformers have a Marian form, not {config.model.arch}"
        )
    if config.model.norm == "pre":
        raise NmtError(
            f"{model_dir}: a pre-LN model cannot be exported to Marian: MarianMTModel normalises "
            "after each residual (post-LN) and has no final encoder/decoder LayerNorm"
        )
    for name, piece in (("pad_id", "<pad>"), ("eos_id", "</s>")):
        if getattr(model, name) != getattr(tokenizer, name):
            raise NmtError(
                f"{model_dir}: the model's {name} ({getattr(model, name)}) is not the "
                f"tokenizer's {piece} ({getattr(tokenizer, name)}), which MarianTokenizer uses"
            )
    vocab_size = tokenizer.vocab_size
    tokenizer_config = {
        "tokenizer_class": "MarianTokenizer",
        "source_lang": config.data.src_lang,
        "target_lang": config.data.tgt_lang,
        "model_max_length": config.model.max_positions,
        "separate_vocabs": False,
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
    }
    if out_dir.exists() and not (
        out_dir.is_dir() and (not any(out_dir.iterdir()) or (out_dir / "config.json").is_file())
    ):
        raise NmtError(f"{out_dir}: exists and is not a Marian model; choose another output")
    with directory_written_atomically(out_dir, what="the Marian folder") as tmp:
        save_file(nmt_to_marian(model, config.model), str(tmp / HF_WEIGHTS), {"format": "pt"})
        for name, content in (
            (HF_CONFIG, marian_config(model, config.model, vocab_size)),
            (HF_GENERATION_CONFIG, generation_config(model, config)),
            (HF_TOKENIZER_CONFIG, tokenizer_config),
        ):
            (tmp / name).write_text(json.dumps(content, indent=2) + "\n", "utf-8")
        _write_tokenizer(tokenizer, model_dir, tmp)
    log.info("exported %s as a Marian model to %s", model_dir, out_dir)

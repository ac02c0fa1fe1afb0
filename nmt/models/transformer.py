"""The Transformer of *Attention Is All You Need* (Vaswani et al., 2017), section 3.

Read it beside the paper: scaled dot-product attention (3.2.1), multi-head attention (3.2.2),
position-wise feed-forward networks (3.3), embeddings and softmax (3.4), positional encoding
(3.5), then the encoder and decoder stacks (3.1) and the model.

Each layer is written once and serves training (all target positions at once), decoding (one
position per step against a key/value cache, gpt-fast's way) and attention inspection.

Shapes: B batch, S source length, T target length, D d_model, H heads, K = D / H (d_k = d_v),
F d_ff, V vocabulary, L layers. Decoding: N rows (sentences × beams), M memory rows (the
sentences the rows read; N = M·k when rows come k per sentence), P positions the caches hold.
Masks: bool, True = a real token that may be attended to.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Unpack, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.config import TransformerConfig
from nmt.models.cache import StepBuffer, group_size, is_identity
from nmt.models.interface import (
    DEFAULT_ENCODE_OPTIONS,
    DecoderState,
    EncodeOptions,
    SpecialIds,
    TranslationModel,
)
from nmt.models.packed import linear_rows


def scaled_dot_product_attention(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, *, is_causal: bool = False
) -> Tensor:
    """softmax(Q·Kᵀ / √d_k)·V (3.2.1), through PyTorch's fused kernel.

    query (B, H, T, K), key and value (B, H, S, K); ``mask`` broadcasts to (B, H, T, S) with
    True where attention is allowed; ``is_causal`` adds the decoder's no-peeking mask.
    """
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, is_causal=is_causal)


def attention_weights(query: Tensor, key: Tensor, mask: Tensor | None) -> Tensor:
    """The textbook softmax(Q·Kᵀ / √d_k), (B, H, T, S): computed explicitly when the weights
    themselves are wanted (the fused kernel never returns them)."""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


class StepMemory(NamedTuple):
    """One decoder layer's encoder keys and values as decoding steps on the CPU read them: keys
    transposed, both contiguous, and the source mask as an additive bias (0 or -inf), so that a
    step's encoder–decoder attention is two batched matmuls over M·H small matrices
    (``step_attention``). PyTorch's fused CPU kernel loops over the (sentence, head) pairs, a
    few µs each: at 32 sentences × 4 beams over 17 source pieces (the OPUS-MT shape, two threads
    of the AMD EPYC) 0.86 ms a call against 0.20 (1.0 against 0.38 with cold caches); at one
    sentence 35 against 20 µs."""

    keys_t: Tensor  # (M, H, K, S)
    values: Tensor  # (M, H, S, K)
    bias: Tensor  # (M, H, 1, S)


LayerMemory = tuple[Tensor, Tensor] | StepMemory  # a decoder layer's encoder keys and values


def step_memory(key: Tensor, value: Tensor, mask: Tensor) -> StepMemory:
    """The StepMemory of keys and values (M, H, S, K) under ``mask`` (M, 1, 1, S)."""
    bias = torch.zeros(mask.shape, dtype=key.dtype, device=key.device)
    bias.masked_fill_(~mask, float("-inf"))
    return StepMemory(
        key.transpose(-2, -1).contiguous(),
        value.contiguous(),
        bias.expand(-1, key.size(1), -1, -1).contiguous(),
    )


def step_attention(query: Tensor, memory: StepMemory) -> tuple[Tensor, Tensor]:
    """softmax(Q·Kᵀ / √d_k + mask)·V over a StepMemory, and the weights: query (M, H, L, K) →
    (M, H, L, K) and (M, H, L, S)."""
    num_memory, num_heads, length, d_k = query.shape
    keys_t, values, bias = (t.flatten(0, 1) for t in memory)
    scores = torch.baddbmm(
        bias, query.reshape(num_memory * num_heads, length, d_k), keys_t, alpha=d_k**-0.5
    )
    weights = scores.softmax(dim=-1)
    out = torch.bmm(weights, values)
    return out.view_as(query), weights.view(num_memory, num_heads, length, -1)


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    batch, length, _ = x.shape
    return x.view(batch, length, num_heads, -1).transpose(1, 2)  # (B, H, L, K)


def merge_heads(x: Tensor) -> Tensor:
    batch, _, length, _ = x.shape
    return x.transpose(1, 2).reshape(batch, length, -1)  # (B, L, D)


def fuse_projections(
    state_dict: dict[str, Any], prefix: str, parts: tuple[str, ...], fused: str
) -> None:
    """Checkpoints from before the fused projections hold one Linear per part (``q_proj``,
    ``k_proj``, ``v_proj``): stack them, in place, into the fused one's rows."""
    for kind in ("weight", "bias"):
        names = [f"{prefix}{part}.{kind}" for part in parts]
        if all(name in state_dict for name in names):
            state_dict[f"{prefix}{fused}.{kind}"] = torch.cat([state_dict.pop(n) for n in names])


def _load_unfused_self_attention(_module: nn.Module, state_dict: Any, prefix: str, *_: Any) -> None:
    fuse_projections(state_dict, prefix, ("q_proj", "k_proj", "v_proj"), "qkv_proj")


def _load_unfused_cross_attention(
    _module: nn.Module, state_dict: Any, prefix: str, *_: Any
) -> None:
    fuse_projections(state_dict, prefix, ("k_proj", "v_proj"), "kv_proj")


class SelfAttention(nn.Module):
    """Multi-head self-attention (3.2.2): h heads over d_k = d_v = d_model / h projections,
    queries, keys and values from one fused projection."""

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv_proj = nn.Linear(d_model, 3 * d_model)  # W_Q | W_K | W_V of all heads
        self.out_proj = nn.Linear(d_model, d_model)  # W_O
        self.register_load_state_dict_pre_hook(_load_unfused_self_attention)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None,
        *,
        causal: bool = False,
        cache: StepBuffer | None = None,
        position: int = 0,
    ) -> Tensor:
        """x (N, T, D). With a ``cache`` (decoding, T = 1) this position's key and value are
        written at ``position`` and the query reads every position so far: all are earlier, so
        no mask is needed."""
        qkv = self.qkv_proj(x)  # (N, T, 3D)
        query, key, value = (split_heads(y, self.num_heads) for y in qkv.chunk(3, dim=-1))
        if cache is not None:
            assert x.size(1) == 1, "the cache takes one position at a time"
            # This position's keys and values, (N, 2, H, K): a view of qkv, copied into place.
            step = qkv.view(x.size(0), 3, self.num_heads, -1)[:, 1:]
            both = cache.write(position, step)  # (N, position + 1, 2, H, K), a view
            key, value = both[:, :, 0].transpose(1, 2), both[:, :, 1].transpose(1, 2)
            causal = False
        out = scaled_dot_product_attention(query, key, value, mask, is_causal=causal)
        return self.out_proj(merge_heads(out))


class CrossAttention(nn.Module):
    """Multi-head encoder–decoder attention (3.2.2): queries from the decoder, keys and values
    from the encoder output, projected once per sentence."""

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(d_model, d_model)  # W_Q
        self.kv_proj = nn.Linear(d_model, 2 * d_model)  # W_K | W_V
        self.out_proj = nn.Linear(d_model, d_model)  # W_O
        self.register_load_state_dict_pre_hook(_load_unfused_cross_attention)

    def memory(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of every head for the encoder output (B, S, D): (B, H, S, K) each."""
        key, value = self.kv_proj(memory).chunk(2, dim=-1)
        return split_heads(key, self.num_heads), split_heads(value, self.num_heads)

    def forward(
        self,
        x: Tensor,
        memory: LayerMemory,
        memory_mask: Tensor,
        *,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """x (N, T, D) over ``memory`` keys/values (M, H, S, K), or a StepMemory, and
        ``memory_mask`` (M, 1, 1, S), where rows come k = N / M per memory row, consecutively
        (beams of one sentence): the k rows' queries attend together, no row copies its
        sentence's keys. With ``need_weights`` softmax(Q·Kᵀ/√d_k) is computed explicitly and
        returned, (N, H, T, S)."""
        rows, steps, _ = x.shape
        num_memory = memory[0].size(0)
        beams = rows // num_memory
        assert beams * num_memory == rows, f"{rows} rows do not group over {num_memory} sentences"
        query = split_heads(self.q_proj(x).view(num_memory, beams * steps, -1), self.num_heads)
        weights: Tensor | None = None
        if isinstance(memory, StepMemory):
            out, weights = step_attention(query, memory)  # (M, H, k·T, K), (M, H, k·T, S)
        elif need_weights:
            key, value = memory
            weights = attention_weights(query, key, memory_mask)
            out = weights @ value
        else:
            out = scaled_dot_product_attention(query, *memory, memory_mask)
        if need_weights:
            assert weights is not None
            weights = weights.unflatten(2, (beams, steps)).transpose(1, 2).flatten(0, 1)
        else:
            weights = None
        out = merge_heads(out).view(rows, steps, -1)  # (N, T, D)
        return self.out_proj(out), weights


class PositionwiseFeedForward(nn.Module):
    """FFN(x) = act(x·W1 + b1)·W2 + b2 (3.3): act = max(0, ·) in the paper; swish/SiLU
    (Marian) and GELU as options."""

    def __init__(self, d_model: int, d_ff: int, activation: str = "relu") -> None:
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        activations: dict[str, Callable[[Tensor], Tensor]] = {
            "relu": F.relu,
            "swish": F.silu,
            "gelu": F.gelu,
        }
        self.activation = activations[activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.w_2(self.activation(self.w_1(x)))


def sinusoidal_positions(
    num_positions: int, d_model: int, *, layout: str = "interleaved"
) -> Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(…) (3.5); (P, D).

    ``concatenated``: the same sines in columns 0 … ⌈D/2⌉-1, then the cosines (Marian's layout).
    """
    position = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)
    inv_freq = torch.pow(10000.0, -torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    sines = torch.sin(position * inv_freq)  # (P, ⌈D/2⌉)
    cosines = torch.cos(position * inv_freq)[:, : d_model // 2]
    if layout == "concatenated":
        return torch.cat([sines, cosines], dim=1).float()
    table = torch.zeros(num_positions, d_model, dtype=torch.float64)
    table[:, 0::2] = sines
    table[:, 1::2] = cosines
    return table.float()


class PositionalEncoding(nn.Module):
    """Adds positions to the scaled embeddings, then dropout on the sum (3.4, 3.5, 5.4)."""

    table: Tensor

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.max_positions = config.max_positions
        learned = config.positions == "learned"
        self.learned = nn.Embedding(config.max_positions, config.d_model) if learned else None
        # Recomputed on construction, never saved: a cache, not a parameter.
        table = sinusoidal_positions(
            config.max_positions, config.d_model, layout=config.position_layout
        )
        self.register_buffer("table", table, persistent=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        """x (B, L, D) holds positions start, start + 1, …"""
        end = start + x.size(1)
        if end > self.max_positions:
            raise ValueError(
                f"sequence of {end} positions exceeds max_positions={self.max_positions}"
            )
        table = self.learned.weight if self.learned is not None else self.table
        return self.dropout(x + table[start:end])


class SublayerConnection(nn.Module):
    """The residual around every sublayer, in two halves so the sublayer is called in plain
    sight: ``after(x, sublayer(before(x)))``.

    post-LN (the paper): LayerNorm(x + Dropout(Sublayer(x)));
    pre-LN (an option): x + Dropout(Sublayer(LayerNorm(x))), with a final norm on the stack.
    """

    def __init__(self, d_model: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def before(self, x: Tensor) -> Tensor:
        """What the sublayer reads."""
        return self.norm(x) if self.pre_norm else x

    def after(self, x: Tensor, sublayer_out: Tensor) -> Tensor:
        y = x + self.dropout(sublayer_out)
        return y if self.pre_norm else self.norm(y)


class EncoderLayer(nn.Module):
    """Self-attention, then feed-forward, each inside a residual connection (3.1)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        pre_norm = config.norm == "pre"
        self.self_attn = SelfAttention(config.d_model, config.num_heads)
        self.feed_forward = PositionwiseFeedForward(config.d_model, config.d_ff, config.activation)
        self.self_attn_residual = SublayerConnection(config.d_model, config.dropout, pre_norm)
        self.feed_forward_residual = SublayerConnection(config.d_model, config.dropout, pre_norm)

    def forward(self, x: Tensor, src_mask: Tensor) -> Tensor:
        r = self.self_attn_residual
        x = r.after(x, self.self_attn(r.before(x), src_mask))
        r = self.feed_forward_residual
        return r.after(x, self.feed_forward(r.before(x)))


class DecoderLayer(nn.Module):
    """Masked self-attention, encoder–decoder attention, feed-forward (3.1).

    One path for all target positions at once (training, ``cache`` None) and for one new
    position against the cached earlier ones (decoding): the same numbers either way.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        pre_norm = config.norm == "pre"
        self.self_attn = SelfAttention(config.d_model, config.num_heads)
        self.cross_attn = CrossAttention(config.d_model, config.num_heads)
        self.feed_forward = PositionwiseFeedForward(config.d_model, config.d_ff, config.activation)
        self.self_attn_residual = SublayerConnection(config.d_model, config.dropout, pre_norm)
        self.cross_attn_residual = SublayerConnection(config.d_model, config.dropout, pre_norm)
        self.feed_forward_residual = SublayerConnection(config.d_model, config.dropout, pre_norm)

    def forward(
        self,
        x: Tensor,
        memory: LayerMemory,
        memory_mask: Tensor,
        *,
        cache: StepBuffer | None = None,
        position: int = 0,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """x (N, T, D) → (N, T, D), and the cross-attention weights (N, H, T, S) if wanted."""
        # No padding mask on target keys: padding only follows real tokens, and the causal mask
        # (or the cache, which holds earlier positions only) hides every later position.
        r = self.self_attn_residual
        x = r.after(
            x, self.self_attn(r.before(x), None, causal=True, cache=cache, position=position)
        )
        r = self.cross_attn_residual
        attended, weights = self.cross_attn(
            r.before(x), memory, memory_mask, need_weights=need_weights
        )
        x = r.after(x, attended)
        r = self.feed_forward_residual
        return r.after(x, self.feed_forward(r.before(x))), weights


def _identity(x: Tensor) -> Tensor:
    return x


class Restricted:
    """An output layer cut to a shortlist's target ids: computes their logits only, and
    widens scores over them back to the full vocabulary (-inf elsewhere)."""

    def __init__(self, vocabulary: Tensor, layer: nn.Module, bias: Tensor | None) -> None:
        self.vocabulary, self.layer, self.bias = vocabulary, layer, bias

    def __call__(self, x: Tensor) -> Tensor:
        logits = self.layer(x)
        return logits if self.bias is None else logits + self.bias

    def widen(self, scores: Tensor, vocab_size: int) -> Tensor:
        full = scores.new_full((scores.size(0), vocab_size), -math.inf)
        return full.index_copy_(1, self.vocabulary, scores)


class TransformerState:
    """What decoding carries from step to step, updated in place (see DecoderState).

    The cross-attention keys/values are kept once per sentence (M memory rows); rows come
    ``beams`` per memory row. ``select`` copies them only when the set or order of sentences
    changes (a sentence finished), and falls back to one memory row per row when rows do not
    group by sentence. Self-attention keys/values and recorded weights live in StepBuffers.
    """

    def __init__(
        self,
        memory: list[LayerMemory],
        memory_mask: Tensor,
        *,
        capacity: int,
        limit: int,
        record_attention: bool,
        logits: bool = False,
        output: Restricted | None = None,
    ) -> None:
        self.memory = memory  # per layer, (M, H, S, K) keys and values or a StepMemory
        self.memory_mask = memory_mask  # (M, 1, 1, S)
        self.beams = 1  # rows per memory row
        self.position = 0  # target positions fed so far
        self.logits = logits  # decode_step returns logits, not log-probabilities
        self.output = output  # the output layer restricted to a shortlist, or None
        # Per layer: keys and values stacked, (N, P, 2, H, K): positions before heads, so that a
        # row's filled positions are one block, which beam search's reordering copies 1.4–1.5×
        # as fast as 2·H blocks (and the fused attention reads no slower: docs/engines.md).
        self.caches = [StepBuffer(step_dim=1, capacity=capacity, limit=limit) for _ in memory]
        # Cross-attention weights, (N, P, L, H, S).
        self.recorded = (
            StepBuffer(step_dim=1, capacity=capacity, limit=limit) if record_attention else None
        )

    @property
    def attention(self) -> Tensor | None:
        """(N, t, L, H, S): the weights the decoder computed at every step (a view)."""
        return None if self.recorded is None else self.recorded.view(self.position)

    def select(self, indices: Tensor) -> TransformerState:
        memory_rows = indices // self.beams  # (N',) the memory row each new row reads
        beams = group_size(memory_rows)
        sentences = memory_rows[::beams]  # (M',)
        if not is_identity(sentences, self.memory_mask.size(0)):
            self.memory = [_memory_rows(memory, sentences) for memory in self.memory]
            self.memory_mask = self.memory_mask.index_select(0, sentences)
        self.beams = beams
        for buffer in [*self.caches, *([self.recorded] if self.recorded is not None else [])]:
            buffer.select(indices, self.position)
        return self


def _memory_rows(memory: LayerMemory, rows: Tensor) -> LayerMemory:
    """A layer's memory for the memory rows ``rows`` (M',), in that order."""
    picked = [t.index_select(0, rows) for t in memory]
    return StepMemory(*picked) if isinstance(memory, StepMemory) else (picked[0], picked[1])


class Transformer(TranslationModel):
    """Encoder–decoder Transformer, with the model contract of nmt.models.interface."""

    def __init__(
        self, config: TransformerConfig, vocab_size: int, **ids: Unpack[SpecialIds]
    ) -> None:
        super().__init__(**ids)
        self.config = config
        d_model = config.d_model
        self.src_embed = nn.Embedding(vocab_size, d_model, padding_idx=self.pad_id)
        self.tgt_embed = nn.Embedding(vocab_size, d_model, padding_idx=self.pad_id)
        # Embeddings are multiplied by √d_model (3.4); Marian models may leave that out.
        self.embed_scale = math.sqrt(d_model) if config.scale_embedding else 1.0
        self.src_positions = PositionalEncoding(config)
        self.tgt_positions = PositionalEncoding(config)
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(config) for _ in range(config.num_encoder_layers)
        )
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(config) for _ in range(config.num_decoder_layers)
        )
        # Pre-LN leaves the stacks' outputs unnormalised: one final LayerNorm each.
        pre_norm = config.norm == "pre"
        self.encoder_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.generator = nn.Linear(d_model, vocab_size, bias=False)  # pre-softmax (3.4)
        # Marian's final_logits_bias; the paper has none.
        self.output_bias = nn.Parameter(torch.zeros(vocab_size)) if config.output_bias else None
        self.init_weights()
        # The paper's three-way tying (3.4), one line each.
        if config.share_embeddings:
            self.tgt_embed.weight = self.src_embed.weight
        if config.tie_output:
            self.generator.weight = self.tgt_embed.weight

    def init_weights(self) -> None:
        """Xavier-uniform matrices, zero biases; embeddings N(0, d_model^-0.5), so that after the
        √d_model scale they have unit variance (and logits stay small when tied)."""
        for name, param in self.named_parameters():
            if "embed" in name:
                nn.init.normal_(param, mean=0.0, std=self.config.d_model**-0.5)
                with torch.no_grad():
                    param[self.pad_id].zero_()
            elif param.dim() > 1:
                nn.init.xavier_uniform_(param)
            elif name.endswith("bias"):
                nn.init.zeros_(param)

    # -- the stacks ---------------------------------------------------------------------------

    def encoder(self, src: Tensor, src_mask: Tensor) -> Tensor:
        """src (B, S) → memory (B, S, D)."""
        x = self.src_positions(self.src_embed(src) * self.embed_scale)
        mask = src_mask[:, None, None, :]  # (B, 1, 1, S): padding keys hidden from every query
        for layer in self.encoder_layers:
            x = layer(x, mask)
        return self.encoder_norm(x)

    def memory_keys_values(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Every decoder layer's cross-attention keys/values, (B, H, S, K) each: once a source."""
        layers = cast(list[DecoderLayer], list(self.decoder_layers))
        return [layer.cross_attn.memory(memory) for layer in layers]

    def decoder(
        self,
        tgt: Tensor,
        memory: Sequence[LayerMemory],
        memory_mask: Tensor,
        *,
        start: int = 0,
        caches: list[StepBuffer] | None = None,
        need_weights: bool = False,
        output: Callable[[Tensor], Tensor] | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """tgt (N, T) at positions start, start + 1, … → logits (N, T, V), and the cross-attention
        weights (N, H, T, S) of every layer if wanted. ``output``: the output layer to use
        instead of the model's (one restricted to a shortlist)."""
        x = self.tgt_positions(self.tgt_embed(tgt) * self.embed_scale, start=start)
        weights = []
        for i, layer in enumerate(self.decoder_layers):
            x, layer_weights = layer(
                x,
                memory[i],
                memory_mask,
                cache=None if caches is None else caches[i],
                position=start,
                need_weights=need_weights,
            )
            if layer_weights is not None:
                weights.append(layer_weights)
        return (output or self.logits)(self.decoder_norm(x)), weights

    def logits(self, x: Tensor) -> Tensor:
        logits = self.generator(x)
        return logits if self.output_bias is None else logits + self.output_bias

    def restricted_output(self, vocabulary: Tensor) -> Restricted:
        """The output layer for the sorted target ids ``vocabulary`` only: its rows of the
        projection (float32 or int8) and of the bias, cut once per batch."""
        generator = self.generator
        if isinstance(generator, nn.Linear):
            layer: nn.Module = linear_rows(generator.weight, generator.bias, vocabulary)
        else:  # an Int8Linear or a PackedLinear (nmt.models.quantize, nmt.models.packed)
            layer = generator.rows(vocabulary)
        bias = None if self.output_bias is None else self.output_bias[vocabulary]
        return Restricted(vocabulary, layer, bias)

    # -- the contract -------------------------------------------------------------------------

    def forward(
        self, src: Tensor, src_mask: Tensor, tgt_in: Tensor, *, features: bool = False
    ) -> Tensor:
        """Teacher-forced logits (B, T, V); with ``features`` the decoder's last hidden states
        (B, T, D) instead, for a loss that applies the output layer itself
        (nmt.training.loss.output_layer_loss: training never holds the whole logits)."""
        memory = self.memory_keys_values(self.encoder(src, src_mask))
        out, _ = self.decoder(
            tgt_in, memory, src_mask[:, None, None, :], output=_identity if features else None
        )
        return out

    def output_layer(self) -> tuple[Tensor, Tensor | None]:
        """The output projection's weight (V, D) and bias (V,) or None: logits = x·Wᵀ + b. An
        inference layer that replaced the generator holds the output bias as its own
        (nmt.models.swap)."""
        bias = self.output_bias
        if bias is None:
            bias = getattr(self.generator, "bias", None)
        return self.generator.weight, bias

    def encode(
        self, src: Tensor, src_mask: Tensor, options: EncodeOptions = DEFAULT_ENCODE_OPTIONS
    ) -> TransformerState:
        limit, max_steps = self.config.max_positions, options.max_steps
        if max_steps is not None and max_steps < 0:
            raise ValueError(f"max_steps must be >= 0, not {max_steps}")
        encoded = self.encoder(src, src_mask)
        keys_values = self.memory_keys_values(encoded)
        memory_mask = src_mask[:, None, None, :]
        memory: list[LayerMemory] = list(keys_values)
        # On the CPU, where the fused kernel is slow at a step's shapes; in float32 only, as
        # half-precision matmuls would round the scores before the softmax (the fused kernel
        # keeps them in float32).
        if encoded.device.type == "cpu" and encoded.dtype == torch.float32:
            memory = [step_memory(key, value, memory_mask) for key, value in keys_values]
        return TransformerState(
            memory,
            memory_mask,
            # Without a bound, start small: the buffers double when decoding goes on.
            capacity=max_steps if max_steps is not None else min(64, limit),
            limit=limit,
            record_attention=options.record_attention,
            logits=options.logits,
            output=None
            if options.vocabulary is None
            else self.restricted_output(options.vocabulary.to(src.device)),
        )

    def decode_step(
        self, prev_tokens: Tensor, state: DecoderState
    ) -> tuple[Tensor, TransformerState]:
        assert isinstance(state, TransformerState)
        logits, weights = self.decoder(
            prev_tokens[:, None],
            state.memory,
            state.memory_mask,
            start=state.position,
            caches=state.caches,
            need_weights=state.recorded is not None,
            output=state.output,
        )
        if state.recorded is not None:
            step = torch.stack([w[:, :, 0] for w in weights], dim=1)  # (N, L, H, S)
            state.recorded.write(state.position, step.float())
        state.position += 1
        scores = logits[:, 0]
        if not state.logits:
            # In place on the CPU, where a fresh (N, V) tensor a step costs page faults at large
            # vocabularies (CUDA's caching allocator has no such cost), and where no gradient
            # needs the logits (scheduled sampling's do).
            in_place = scores.device.type == "cpu" and not scores.requires_grad
            out = scores if in_place else None
            scores = torch.log_softmax(scores, dim=-1, out=out)
        if state.output is not None:  # the shortlist's scores, -inf for every other piece
            scores = state.output.widen(scores, self.tgt_embed.num_embeddings)
        return scores, state

    @torch.no_grad()
    def cross_attention(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Encoder–decoder attention weights (B, L, H, T, S) of a teacher-forced pass."""
        memory = self.memory_keys_values(self.encoder(src, src_mask))
        _, weights = self.decoder(tgt_in, memory, src_mask[:, None, None, :], need_weights=True)
        return torch.stack(weights, dim=1)

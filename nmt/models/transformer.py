"""The Transformer of *Attention Is All You Need* (Vaswani et al., 2017), section 3.

Read it beside the paper: scaled dot-product attention (3.2.1), multi-head attention (3.2.2),
position-wise feed-forward networks (3.3), embeddings and softmax (3.4), positional encoding
(3.5), then the encoder and decoder stacks (3.1) and the model.

Shapes: B batch, S source length, T target length, D d_model, H heads, K = D / H (d_k = d_v),
F d_ff, V vocabulary, L layers. Masks: bool, True = a real token that may be attended to.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.config import TransformerConfig
from nmt.data.tokenizer import PAD_ID
from nmt.models.interface import DecoderState, TranslationModel


def scaled_dot_product_attention(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, *, is_causal: bool = False
) -> Tensor:
    """softmax(Q·Kᵀ / √d_k)·V (3.2.1), through PyTorch's fused kernel.

    query (B, H, T, K), key and value (B, H, S, K); ``mask`` broadcasts to (B, H, T, S) with
    True where attention is allowed; ``is_causal`` adds the decoder's no-peeking mask.
    """
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, is_causal=is_causal)


def attention_weights(query: Tensor, key: Tensor, mask: Tensor | None) -> Tensor:
    """The textbook softmax(Q·Kᵀ / √d_k), (B, H, T, S): for inspecting what a head looks at."""
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


class MultiHeadAttention(nn.Module):
    """h heads of scaled dot-product attention over d_k = d_v = d_model / h projections (3.2.2)."""

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(d_model, d_model)  # W_Q of all heads side by side
        self.k_proj = nn.Linear(d_model, d_model)  # W_K
        self.v_proj = nn.Linear(d_model, d_model)  # W_V
        self.out_proj = nn.Linear(d_model, d_model)  # W_O

    def split_heads(self, x: Tensor) -> Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, -1).transpose(1, 2)  # (B, H, L, K)

    def merge_heads(self, x: Tensor) -> Tensor:
        batch, _, length, _ = x.shape
        return x.transpose(1, 2).reshape(batch, length, -1)  # (B, L, D)

    def project_key_value(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of every head, (B, H, S, K) each: cached by the decoder."""
        return self.split_heads(self.k_proj(key)), self.split_heads(self.v_proj(value))

    def attend(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, is_causal: bool
    ) -> Tensor:
        """Attention of ``query`` (B, T, D) over already projected heads ``key``/``value``."""
        q = self.split_heads(self.q_proj(query))
        return self.out_proj(
            self.merge_heads(scaled_dot_product_attention(q, key, value, mask, is_causal=is_causal))
        )

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None,
        *,
        is_causal: bool = False,
    ) -> Tensor:
        k, v = self.project_key_value(key, value)
        return self.attend(query, k, v, mask, is_causal)


class PositionwiseFeedForward(nn.Module):
    """FFN(x) = max(0, x·W1 + b1)·W2 + b2 (3.3)."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.w_2(F.relu(self.w_1(x)))


def sinusoidal_positions(num_positions: int, d_model: int) -> Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(…) (3.5); (P, D)."""
    position = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)
    inv_freq = torch.pow(10000.0, -torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    table = torch.zeros(num_positions, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq)[:, : d_model // 2]
    return table.float()


class PositionalEncoding(nn.Module):
    """Adds positions to the scaled embeddings, then dropout on the sum (3.4, 3.5, 5.4)."""

    table: Tensor

    def __init__(self, d_model: int, max_positions: int, dropout: float, learned: bool) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.learned = nn.Embedding(max_positions, d_model) if learned else None
        # Recomputed on construction, never saved: a cache, not a parameter.
        self.register_buffer(
            "table", sinusoidal_positions(max_positions, d_model), persistent=False
        )
        self.dropout = nn.Dropout(dropout)

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
    """The residual around every sublayer.

    post-LN (the paper): LayerNorm(x + Dropout(Sublayer(x)));
    pre-LN (an option): x + Dropout(Sublayer(LayerNorm(x))), with a final norm on the stack.
    """

    def __init__(self, d_model: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(self, x: Tensor, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        if self.pre_norm:
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))


class EncoderLayer(nn.Module):
    """Self-attention, then feed-forward, each inside a residual connection (3.1)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        pre_norm = config.norm == "pre"
        self.self_attn = MultiHeadAttention(config.d_model, config.num_heads)
        self.feed_forward = PositionwiseFeedForward(config.d_model, config.d_ff)
        self.self_attn_residual = SublayerConnection(config.d_model, config.dropout, pre_norm)
        self.feed_forward_residual = SublayerConnection(config.d_model, config.dropout, pre_norm)

    def forward(self, x: Tensor, src_mask: Tensor) -> Tensor:
        x = self.self_attn_residual(x, lambda y: self.self_attn(y, y, y, src_mask))
        return self.feed_forward_residual(x, self.feed_forward)


class DecoderLayer(nn.Module):
    """Masked self-attention, encoder–decoder attention, feed-forward (3.1).

    ``forward`` runs all target positions at once (training); ``step`` runs one new position
    against cached keys and values (decoding) and computes exactly the same numbers.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        pre_norm = config.norm == "pre"
        self.self_attn = MultiHeadAttention(config.d_model, config.num_heads)
        self.cross_attn = MultiHeadAttention(config.d_model, config.num_heads)
        self.feed_forward = PositionwiseFeedForward(config.d_model, config.d_ff)
        self.self_attn_residual = SublayerConnection(config.d_model, config.dropout, pre_norm)
        self.cross_attn_residual = SublayerConnection(config.d_model, config.dropout, pre_norm)
        self.feed_forward_residual = SublayerConnection(config.d_model, config.dropout, pre_norm)

    def forward(self, x: Tensor, memory_kv: tuple[Tensor, Tensor], memory_mask: Tensor) -> Tensor:
        # No padding mask on target keys: padding only follows real tokens, and the causal mask
        # already hides every later position.
        x = self.self_attn_residual(x, lambda y: self.self_attn(y, y, y, None, is_causal=True))
        x = self.cross_attn_residual(
            x, lambda y: self.cross_attn.attend(y, *memory_kv, memory_mask, False)
        )
        return self.feed_forward_residual(x, self.feed_forward)

    def cross_attention_weights(
        self, x: Tensor, memory_kv: tuple[Tensor, Tensor], memory_mask: Tensor
    ) -> Tensor:
        """The encoder–decoder attention weights (B, H, T, S) this layer computes for input x."""
        y = self.self_attn_residual(x, lambda z: self.self_attn(z, z, z, None, is_causal=True))
        query_in = self.cross_attn_residual.norm(y) if self.cross_attn_residual.pre_norm else y
        query = self.cross_attn.split_heads(self.cross_attn.q_proj(query_in))
        return attention_weights(query, memory_kv[0], memory_mask)

    def step(
        self,
        x: Tensor,
        memory_kv: tuple[Tensor, Tensor],
        memory_mask: Tensor,
        cache: tuple[Tensor, Tensor] | None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x (B, 1, D) is the newest position; ``cache`` holds the earlier positions' keys and
        values of self-attention, (B, H, t, K) each. Returns the output and the grown cache."""
        new_cache: tuple[Tensor, Tensor] = (torch.empty(0), torch.empty(0))

        def self_attention(y: Tensor) -> Tensor:
            nonlocal new_cache
            k, v = self.self_attn.project_key_value(y, y)
            if cache is not None:
                k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
            new_cache = (k, v)
            return self.self_attn.attend(y, k, v, None, False)  # every cached position is earlier

        x = self.self_attn_residual(x, self_attention)
        x = self.cross_attn_residual(
            x, lambda y: self.cross_attn.attend(y, *memory_kv, memory_mask, False)
        )
        return self.feed_forward_residual(x, self.feed_forward), new_cache


@dataclass
class TransformerState:
    """What decoding carries from step to step; ``select`` keeps and reorders rows for beams."""

    memory_mask: Tensor  # (B, 1, 1, S)
    memory_kv: list[tuple[Tensor, Tensor]]  # per layer, cross-attention keys/values (B, H, S, K)
    self_kv: list[tuple[Tensor, Tensor]] | None  # per layer, (B, H, t, K); None before step one
    position: int  # how many target positions have been fed

    def select(self, indices: Tensor) -> TransformerState:
        def pick(kv: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
            return kv[0].index_select(0, indices), kv[1].index_select(0, indices)

        return TransformerState(
            memory_mask=self.memory_mask.index_select(0, indices),
            memory_kv=[pick(kv) for kv in self.memory_kv],
            self_kv=None if self.self_kv is None else [pick(kv) for kv in self.self_kv],
            position=self.position,
        )


class Transformer(TranslationModel):
    """Encoder–decoder Transformer, with the model contract of nmt.models.interface."""

    def __init__(self, config: TransformerConfig, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        learned = config.positions == "learned"
        self.src_embed = nn.Embedding(vocab_size, config.d_model, padding_idx=PAD_ID)
        self.tgt_embed = nn.Embedding(vocab_size, config.d_model, padding_idx=PAD_ID)
        self.embed_scale = math.sqrt(config.d_model)  # embeddings are multiplied by √d_model (3.4)
        self.src_positions = PositionalEncoding(
            config.d_model, config.max_positions, config.dropout, learned
        )
        self.tgt_positions = PositionalEncoding(
            config.d_model, config.max_positions, config.dropout, learned
        )
        self.encoder_layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_layers))
        # Pre-LN leaves the stacks' outputs unnormalised: one final LayerNorm each.
        pre_norm = config.norm == "pre"
        self.encoder_norm = nn.LayerNorm(config.d_model) if pre_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(config.d_model) if pre_norm else nn.Identity()
        self.generator = nn.Linear(config.d_model, vocab_size, bias=False)  # pre-softmax (3.4)
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
                    param[PAD_ID].zero_()
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
        return [layer.cross_attn.project_key_value(memory, memory) for layer in self.decoder_stack]

    @property
    def decoder_stack(self) -> list[DecoderLayer]:
        return cast(list[DecoderLayer], list(self.decoder_layers))

    def decoder(self, tgt_in: Tensor, memory: Tensor, src_mask: Tensor) -> Tensor:
        """tgt_in (B, T) and memory (B, S, D) → logits (B, T, V)."""
        x = self.tgt_positions(self.tgt_embed(tgt_in) * self.embed_scale)
        mask = src_mask[:, None, None, :]
        for layer, kv in zip(self.decoder_layers, self.memory_keys_values(memory), strict=True):
            x = layer(x, kv, mask)
        return self.generator(self.decoder_norm(x))

    # -- the contract -------------------------------------------------------------------------

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        return self.decoder(tgt_in, self.encoder(src, src_mask), src_mask)

    def encode(self, src: Tensor, src_mask: Tensor) -> TransformerState:
        memory = self.encoder(src, src_mask)
        return TransformerState(
            memory_mask=src_mask[:, None, None, :],
            memory_kv=self.memory_keys_values(memory),
            self_kv=None,
            position=0,
        )

    def decode_step(
        self, prev_tokens: Tensor, state: DecoderState
    ) -> tuple[Tensor, TransformerState]:
        assert isinstance(state, TransformerState)
        x = self.tgt_positions(
            self.tgt_embed(prev_tokens[:, None]) * self.embed_scale, start=state.position
        )  # (B, 1, D)
        caches: list[tuple[Tensor, Tensor] | None] = [None] * len(self.decoder_layers)
        if state.self_kv is not None:
            caches = list(state.self_kv)
        new_caches = []
        for layer, kv, cache in zip(self.decoder_stack, state.memory_kv, caches, strict=True):
            x, new_cache = layer.step(x, kv, state.memory_mask, cache)
            new_caches.append(new_cache)
        logits = self.generator(self.decoder_norm(x))[:, 0]  # (B, V)
        next_state = TransformerState(
            state.memory_mask, state.memory_kv, new_caches, state.position + 1
        )
        return logits.log_softmax(dim=-1), next_state

    @torch.no_grad()
    def cross_attention(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        """Encoder–decoder attention weights (B, L, H, T, S) of a teacher-forced pass."""
        memory = self.encoder(src, src_mask)
        mask = src_mask[:, None, None, :]
        x = self.tgt_positions(self.tgt_embed(tgt_in) * self.embed_scale)
        weights = []
        for layer, kv in zip(self.decoder_stack, self.memory_keys_values(memory), strict=True):
            weights.append(layer.cross_attention_weights(x, kv, mask))
            x = layer(x, kv, mask)
        return torch.stack(weights, dim=1)

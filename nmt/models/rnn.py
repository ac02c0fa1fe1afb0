"""Recurrent encoder–decoders: the sequence-to-sequence models the Transformer replaced.

- Sutskever et al. 2014, *Sequence to Sequence Learning with Neural Networks*: an LSTM encoder
  whose final state is a fixed-length context that starts the decoder.
- Cho et al. 2014, *Learning Phrase Representations using RNN Encoder–Decoder*: the GRU, and
  the context vector fed to every decoder step.
- Bahdanau et al. 2015, *Neural Machine Translation by Jointly Learning to Align and Translate*:
  a bidirectional encoder and additive attention ``v·tanh(W·s + U·h)``.
- Luong et al. 2015, *Effective Approaches to Attention-based NMT*: multiplicative attention
  (``dot``: sᵀh, ``general``: sᵀW·h), the attentional vector ``tanh(W_c[c; s])`` and input feeding.

One decoder step, the same for every attention kind (Luong's flow)::

    s_t = RNN(s_{t-1}, [y_{t-1}; c if attention is none; h̃_{t-1} if input feeding])
    c_t = Σ_j a_tj·m_j,  a_t = softmax_j(score(s_t, m_j))   (c_t = c, the fixed context, if none)
    h̃_t = tanh(W_c[c_t; s_t])                               (the attentional vector)
    p(y_t) = softmax(W_out·P·h̃_t + b)                        (P: H → E when tied and H ≠ E)

Departure: Bahdanau scores with the previous state s_{t-1} and feeds c_t into the RNN; here
every score reads the current s_t, and ``input_feeding`` is what carries attention into the RNN.

Shapes: B batch, S source length, T target length, E embed_dim, H hidden_size, L layers,
V vocabulary. Masks: bool, True = a real token that may be attended to.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Unpack

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.config import RNNConfig
from nmt.models.interface import (
    DEFAULT_ENCODE_OPTIONS,
    DecoderState,
    EncodeOptions,
    SpecialIds,
    TranslationModel,
)


def make_rnn(config: RNNConfig, input_size: int, *, bidirectional: bool = False) -> nn.RNNBase:
    """A batch-first stack of ``config.num_layers`` cells (nn.RNN is Elman's, with tanh)."""
    cells: dict[str, type[nn.RNN | nn.LSTM | nn.GRU]] = {
        "rnn": nn.RNN,
        "lstm": nn.LSTM,
        "gru": nn.GRU,
    }
    return cells[config.cell](
        input_size,
        config.hidden_size,
        config.num_layers,
        batch_first=True,
        # PyTorch applies this dropout between layers only; one layer would just warn.
        dropout=config.dropout if config.num_layers > 1 else 0.0,
        bidirectional=bidirectional,
    )


@dataclass
class RNNState:
    """What decoding carries from step to step; ``select`` keeps and reorders rows for beams.

    Every tensor is batch-first, so that selecting beams is one ``index_select`` on dim 0.
    """

    hidden: Tensor  # (B, L, H) decoder hidden state s
    cell: Tensor | None  # (B, L, H) LSTM memory cell; None for rnn and gru
    feed: Tensor | None  # (B, H) previous attentional vector h̃; None without input feeding
    context: Tensor | None  # (B, H) fixed context vector; None with attention
    memory: Tensor | None  # (B, S, H) encoder outputs; None without attention
    keys: Tensor | None  # (B, S, H) memory as the score's keys, computed once; None likewise
    src_mask: Tensor  # (B, S)
    # (B, t, 1, 1, S) attention weights of every step so far, when recording (one layer, one
    # head); None otherwise and without attention.
    attention: Tensor | None = None
    logits: bool = False  # decode_step returns logits, not log-probabilities

    def select(self, indices: Tensor) -> RNNState:
        def pick(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.index_select(0, indices)

        return RNNState(
            hidden=self.hidden.index_select(0, indices),
            cell=pick(self.cell),
            feed=pick(self.feed),
            context=pick(self.context),
            memory=pick(self.memory),
            keys=pick(self.keys),
            src_mask=self.src_mask.index_select(0, indices),
            attention=pick(self.attention),
            logits=self.logits,
        )


class Attention(nn.Module):
    """score(s, m): Bahdanau's additive ``v·tanh(W·s + U·m)``, Luong's ``dot`` sᵀm and
    ``general`` sᵀW·m; then softmax over real source positions and the context Σ a·m."""

    def __init__(self, kind: str, hidden_size: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "additive":
            self.key_proj: nn.Module = nn.Linear(hidden_size, hidden_size, bias=False)  # U
            self.query_proj = nn.Linear(hidden_size, hidden_size, bias=False)  # W
            self.v = nn.Linear(hidden_size, 1, bias=False)
        elif kind == "general":
            self.key_proj = nn.Linear(hidden_size, hidden_size, bias=False)  # sᵀW·m = s·(W·m)
        elif kind == "dot":
            self.key_proj = nn.Identity()
        else:
            raise ValueError(f"unknown attention kind {kind!r}")

    def keys(self, memory: Tensor) -> Tensor:
        """The part of the score that depends on the source only: once per sentence."""
        return self.key_proj(memory)  # (B, S, H)

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """query (B, T, H), key and value (B, S, H), mask (B, S) → context (B, T, H) and
        weights (B, T, S)."""
        if self.kind == "additive":
            hidden = torch.tanh(self.query_proj(query)[:, :, None] + key[:, None])  # (B, T, S, H)
            scores = self.v(hidden).squeeze(-1)
        else:
            scores = query @ key.transpose(1, 2)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))  # (B, T, S)
        weights = scores.softmax(dim=-1)
        return weights @ value, weights


class Encoder(nn.Module):
    """Reads the embedded source; returns the memory and the decoder's initial state."""

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        self.config = config
        self.rnn = make_rnn(config, config.embed_dim, bidirectional=config.bidirectional)
        # Bidirectional: the two directions are concatenated (2H), then projected to the
        # decoder's size: the initial state by a tanh bridge (Bahdanau's s_0 = tanh(W_s·h_1),
        # here from both directions; one bridge for h and for c), the memory by a linear map
        # (only where attention reads it: a parameter without gradient upsets DDP).
        width, hidden = 2 * config.hidden_size, config.hidden_size
        project_memory = config.bidirectional and config.attention != "none"
        self.bridge = nn.Linear(width, hidden) if config.bidirectional else None
        self.memory_proj = nn.Linear(width, hidden, bias=False) if project_memory else None

    def forward(self, x: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """x (B, S, E) → memory (B, S, H), zero at padding (2H wide and unused without
        attention); final hidden and cell (L, B, H)."""
        # Packing runs each sentence over its real tokens only: padding changes nothing.
        lengths = src_mask.sum(dim=1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        outputs, final = self.rnn(packed)
        memory, _ = pad_packed_sequence(outputs, batch_first=True, total_length=x.size(1))
        hidden, cell = final if isinstance(final, tuple) else (final, None)  # (L·dirs, B, H)
        if self.memory_proj is not None:
            memory = self.memory_proj(memory)
        if self.bridge is not None:
            hidden = self.join_directions(hidden)
            cell = None if cell is None else self.join_directions(cell)
        return memory, hidden, cell

    def join_directions(self, state: Tensor) -> Tensor:
        """(L·2, B, H), forward and backward per layer → (L, B, H)."""
        assert self.bridge is not None
        num_layers, batch = self.config.num_layers, state.size(1)
        both = state.view(num_layers, 2, batch, -1)
        return torch.tanh(self.bridge(torch.cat([both[:, 0], both[:, 1]], dim=-1)))


class Decoder(nn.Module):
    """The recurrent decoder: RNN, attention, attentional vector (see the module docstring)."""

    def __init__(self, config: RNNConfig) -> None:
        super().__init__()
        hidden = config.hidden_size
        # Without attention the fixed context joins every input, as in Cho et al. 2014.
        input_size = config.embed_dim + (hidden if config.attention == "none" else 0)
        input_size += hidden if config.input_feeding else 0
        self.rnn = make_rnn(config, input_size)
        self.attention = None if config.attention == "none" else Attention(config.attention, hidden)
        self.combine = nn.Linear(2 * hidden, hidden, bias=False)  # W_c of tanh(W_c[c; s])
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, state: RNNState) -> tuple[Tensor, Tensor | None, RNNState]:
        """x (B, T, E) embedded target inputs → attentional vectors (B, T, H), attention
        weights (B, T, S) or None, and the state after the last step. T > 1 only without input
        feeding (it makes each step's input depend on the previous step's output)."""
        steps = x.size(1)
        inputs = [x]
        if state.context is not None:
            inputs.append(state.context[:, None].expand(-1, steps, -1))
        if state.feed is not None:
            assert steps == 1, "input feeding decodes one step at a time"
            inputs.append(state.feed[:, None])
        hidden = state.hidden.transpose(0, 1).contiguous()  # (L, B, H), as nn.RNNBase wants it
        initial = (
            hidden if state.cell is None else (hidden, state.cell.transpose(0, 1).contiguous())
        )
        outputs, final = self.rnn(torch.cat(inputs, dim=-1), initial)  # (B, T, H): s_t
        new_hidden, new_cell = final if isinstance(final, tuple) else (final, None)

        weights = None
        if self.attention is None:
            assert state.context is not None
            context = state.context[:, None].expand_as(outputs)
        else:
            assert state.keys is not None and state.memory is not None
            context, weights = self.attention(outputs, state.keys, state.memory, state.src_mask)
        attentional = self.dropout(torch.tanh(self.combine(torch.cat([context, outputs], dim=-1))))

        next_state = replace(  # the rest (source side, recorded attention) carries over
            state,
            hidden=new_hidden.transpose(0, 1),
            cell=None if new_cell is None else new_cell.transpose(0, 1),
            feed=None if state.feed is None else attentional[:, -1],
        )
        return attentional, weights, next_state


class RNNSeq2Seq(TranslationModel):
    """Recurrent encoder–decoder (rnn/lstm/gru, with or without attention), with the model
    contract of nmt.models.interface."""

    def __init__(self, config: RNNConfig, vocab_size: int, **ids: Unpack[SpecialIds]) -> None:
        super().__init__(**ids)
        self.config = config
        embed_dim, hidden = config.embed_dim, config.hidden_size
        self.src_embed = nn.Embedding(vocab_size, embed_dim, padding_idx=self.pad_id)
        self.tgt_embed = nn.Embedding(vocab_size, embed_dim, padding_idx=self.pad_id)
        self.embed_dropout = nn.Dropout(config.dropout)
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        # Tying needs the generator's input to be E wide: when H ≠ E a bias-free projection
        # P (H → E) comes first (Press & Wolf 2017), which also shrinks the softmax layer.
        tie_needs_proj = config.tie_output and hidden != embed_dim
        self.output_proj = nn.Linear(hidden, embed_dim, bias=False) if tie_needs_proj else None
        self.generator = nn.Linear(embed_dim if config.tie_output else hidden, vocab_size)
        # Sharing and tying, one line each (the joint vocabulary allows both).
        if config.share_embeddings:
            self.tgt_embed = self.src_embed
        if config.tie_output:
            self.generator.weight = self.tgt_embed.weight
        self.init_weights()

    def init_weights(self) -> None:
        """PyTorch's defaults for the recurrent and linear layers: uniform in ±1/√fan-in, which
        scales with the width (Sutskever's and Luong's flat ±0.1 was chosen for 1000-unit
        layers and stalls small models). Embeddings N(0, E^-0.5), as the Transformer's, with
        zero padding rows; a tied output weight is the embedding, so embeddings come last."""
        for module in self.modules():
            if isinstance(module, nn.RNNBase | nn.Linear):
                module.reset_parameters()
        for embedding in (self.src_embed, self.tgt_embed):
            nn.init.normal_(embedding.weight, mean=0.0, std=self.config.embed_dim**-0.5)
            with torch.no_grad():
                embedding.weight[self.pad_id].zero_()

    def logits(self, attentional: Tensor) -> Tensor:
        """Attentional vectors (..., H) → logits (..., V)."""
        if self.output_proj is not None:
            attentional = self.output_proj(attentional)
        return self.generator(attentional)

    def teacher_forced(self, state: RNNState, tgt_in: Tensor) -> tuple[Tensor, Tensor | None]:
        """Decode ``tgt_in`` (B, T) from an encoded state: attentional vectors (B, T, H) and
        attention weights (B, T, S) or None. Runs the same code as ``decode_step``."""
        x = self.embed_dropout(self.tgt_embed(tgt_in))  # (B, T, E)
        if not self.config.input_feeding:
            attentional, weights, _ = self.decoder(x, state)  # all T steps in one RNN call
            return attentional, weights
        outputs: list[Tensor] = []
        all_weights: list[Tensor] = []
        for t in range(x.size(1)):
            attentional, weights, state = self.decoder(x[:, t : t + 1], state)
            outputs.append(attentional)
            if weights is not None:
                all_weights.append(weights)
        return torch.cat(outputs, dim=1), (torch.cat(all_weights, dim=1) if all_weights else None)

    # -- the contract -------------------------------------------------------------------------

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        attentional, _ = self.teacher_forced(self.encode(src, src_mask), tgt_in)
        return self.logits(attentional)  # (B, T, V)

    def encode(
        self, src: Tensor, src_mask: Tensor, options: EncodeOptions = DEFAULT_ENCODE_OPTIONS
    ) -> RNNState:
        # options.max_steps is of no use here: the recurrent state does not grow with the output.
        memory, hidden, cell = self.encoder(self.embed_dropout(self.src_embed(src)), src_mask)
        attention = self.decoder.attention
        recording = options.record_attention and attention is not None
        return RNNState(
            hidden=hidden.transpose(0, 1),
            cell=None if cell is None else cell.transpose(0, 1),
            # Luong et al. start input feeding from a zero attentional vector.
            feed=hidden.new_zeros(hidden.shape[1:]) if self.config.input_feeding else None,
            # The fixed context is the top layer's final state (both directions, bridged).
            context=hidden[-1] if attention is None else None,
            memory=None if attention is None else memory,
            keys=None if attention is None else attention.keys(memory),
            src_mask=src_mask,
            attention=memory.new_zeros(src.size(0), 0, 1, 1, src.size(1)) if recording else None,
            logits=options.logits,
        )

    def decode_step(self, prev_tokens: Tensor, state: DecoderState) -> tuple[Tensor, RNNState]:
        # Typed as the contract's DecoderState (a narrower parameter would break the Protocol);
        # search only ever hands back states this model made.
        assert isinstance(state, RNNState)
        x = self.embed_dropout(self.tgt_embed(prev_tokens[:, None]))  # (B, 1, E)
        attentional, weights, next_state = self.decoder(x, state)
        if state.attention is not None and weights is not None:
            # Only when asked to record: the copy grows with t, as inspection can afford.
            step = weights[:, :, None, None].to(state.attention.dtype)  # (B, 1, 1, 1, S)
            next_state.attention = torch.cat([state.attention, step], dim=1)
        logits = self.logits(attentional[:, 0])  # (B, V)
        return (logits if state.logits else logits.log_softmax(dim=-1)), next_state

    @torch.no_grad()
    def cross_attention(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor | None:
        """Attention weights (B, 1, 1, T, S) of a teacher-forced pass: one layer, one head."""
        _, weights = self.teacher_forced(self.encode(src, src_mask), tgt_in)
        return None if weights is None else weights[:, None, None]

"""The Transformer pinned to the paper: formulas, masks, caching, tying, sizes, learning."""

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from nmt.config import TransformerConfig
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from nmt.errors import NmtError
from nmt.models import transformer
from nmt.models.build import build_model, count_parameters
from nmt.models.cache import StepBuffer
from nmt.models.interface import DecoderState, EncodeOptions, Seq2SeqModel
from nmt.models.store import load_weights
from nmt.models.transformer import (
    StepMemory,
    Transformer,
    TransformerState,
    attention_weights,
    scaled_dot_product_attention,
    sinusoidal_positions,
    step_attention,
    step_memory,
)

VOCAB = 50


def tiny(**overrides: object) -> Transformer:
    settings = {"num_layers": 2, "d_model": 32, "d_ff": 64, "num_heads": 4, "dropout": 0.0}
    torch.manual_seed(0)
    return Transformer(TransformerConfig(**{**settings, **overrides}), VOCAB).eval()


def random_batch(batch: int = 3, src_len: int = 7, tgt_len: int = 6) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(1)
    src = torch.randint(4, VOCAB, (batch, src_len), generator=generator)
    tgt = torch.randint(4, VOCAB, (batch, tgt_len), generator=generator)
    src_mask = torch.ones(batch, src_len, dtype=torch.bool)
    src_mask[0, src_len - 2 :] = False  # first sentence is shorter
    src[~src_mask] = PAD_ID
    return src, src_mask, tgt


def test_positional_encoding_formula() -> None:
    d_model = 16
    table = sinusoidal_positions(100, d_model)
    for pos in (0, 1, 7, 99):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def textbook_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    return scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v


def test_fused_attention_equals_the_textbook_formula_with_masks() -> None:
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    padding = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    padding[1, ..., 4:] = False
    fused = scaled_dot_product_attention(q, k, v, padding)
    assert torch.allclose(fused, textbook_attention(q, k, v, padding), atol=1e-6)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    kq = k[:, :, :5]
    fused_causal = scaled_dot_product_attention(q, kq, v[:, :, :5], None, is_causal=True)
    assert torch.allclose(fused_causal, textbook_attention(q, kq, v[:, :, :5], causal), atol=1e-6)


def test_step_attention_equals_the_textbook_formula_with_masks() -> None:
    """Decoding steps on the CPU attend through a StepMemory (two batched matmuls): the same
    attention as the formula and the fused kernel, and its weights are distributions over the
    real source pieces only."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 4, 5, 8), torch.randn(3, 4, 7, 8), torch.randn(3, 4, 7, 8)
    padding = torch.ones(3, 1, 1, 7, dtype=torch.bool)
    padding[0, ..., 4:] = False
    padding[2, ..., 6:] = False
    out, weights = step_attention(q, step_memory(k, v, padding))
    assert torch.allclose(out, textbook_attention(q, k, v, padding), atol=1e-6)
    assert torch.allclose(out, scaled_dot_product_attention(q, k, v, padding), atol=1e-6)
    assert torch.allclose(weights, attention_weights(q, k, padding), atol=1e-6)
    assert (weights[0, ..., 4:] == 0).all() and (weights[2, ..., 6:] == 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(3, 4, 5))


def test_decoder_output_at_t_ignores_later_target_tokens() -> None:
    model = tiny()
    src, src_mask, tgt = random_batch()
    changed = tgt.clone()
    changed[:, 3:] = torch.randint(4, VOCAB, changed[:, 3:].shape)
    a, b = model(src, src_mask, tgt), model(src, src_mask, changed)
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6)
    assert not torch.allclose(a[:, 3:], b[:, 3:], atol=1e-3)  # later positions do see them


def test_extra_source_padding_changes_nothing() -> None:
    model = tiny()
    src, src_mask, tgt = random_batch()
    padded = torch.cat([src, torch.full((3, 4), PAD_ID)], dim=1)
    padded_mask = torch.cat([src_mask, torch.zeros(3, 4, dtype=torch.bool)], dim=1)
    assert torch.allclose(model(src, src_mask, tgt), model(padded, padded_mask, tgt), atol=1e-5)


def test_padding_mask_matters() -> None:
    # Without the mask, padding would leak in: the same input read unmasked gives other logits.
    model = tiny()
    src, src_mask, tgt = random_batch()
    unmasked = torch.ones_like(src_mask)
    assert not torch.allclose(model(src, src_mask, tgt)[0], model(src, unmasked, tgt)[0], atol=1e-3)


@pytest.mark.parametrize(
    "overrides",
    [
        {"norm": "post"},
        {"norm": "pre"},
        {"positions": "learned"},
        {"share_embeddings": False, "tie_output": False},
        {"activation": "swish", "position_layout": "concatenated", "output_bias": True},
        {"activation": "gelu", "scale_embedding": False},
        {"encoder_layers": 1, "decoder_layers": 3, "norm": "pre"},
    ],
    ids=["post-LN", "pre-LN", "learned-positions", "untied", "marian-like", "gelu", "depths"],
)
def test_step_by_step_decoding_reproduces_teacher_forcing(overrides: dict[str, object]) -> None:
    model = tiny(**overrides)
    if model.output_bias is not None:
        torch.nn.init.normal_(model.output_bias)
    src, src_mask, tgt = random_batch()
    expected = model(src, src_mask, tgt).log_softmax(-1)
    state = model.encode(src, src_mask, EncodeOptions(max_steps=tgt.size(1)))
    steps = []
    for t in range(tgt.size(1)):
        log_probs, state = model.decode_step(tgt[:, t], state)
        steps.append(log_probs)
    assert torch.allclose(torch.stack(steps, dim=1), expected, atol=1e-5)


@torch.no_grad()
def test_state_select_reorders_and_repeats_rows() -> None:
    model = tiny()
    src, src_mask, tgt = random_batch()
    state = model.encode(src, src_mask)
    _, state = model.decode_step(tgt[:, 0], state)
    lp_full, _ = model.decode_step(
        tgt[:, 1], model.decode_step(tgt[:, 0], model.encode(src, src_mask))[1]
    )
    order = torch.tensor([2, 0, 0])
    lp_selected, _ = model.decode_step(tgt[order, 1], state.select(order))
    assert torch.allclose(lp_selected, lp_full[order], atol=1e-6)


def test_three_way_tying_is_one_tensor() -> None:
    model = tiny()
    assert model.src_embed.weight is model.tgt_embed.weight is model.generator.weight
    untied = tiny(share_embeddings=False, tie_output=False)
    assert untied.src_embed.weight is not untied.tgt_embed.weight
    assert untied.generator.weight is not untied.tgt_embed.weight
    assert count_parameters(untied) - count_parameters(model) == 2 * VOCAB * 32


def test_embeddings_are_scaled_by_sqrt_d_model() -> None:
    model = tiny()
    tokens = torch.tensor([[5, 6]])
    x = model.src_positions.dropout(
        model.src_embed(tokens) * math.sqrt(32) + model.src_positions.table[:2]
    )
    # The encoder's input is exactly the scaled embedding plus position (dropout is off).
    captured = {}

    def capture(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        captured["x"] = args[0]

    handle = model.encoder_layers[0].register_forward_pre_hook(capture)
    model.encoder(tokens, torch.ones_like(tokens, dtype=torch.bool))
    handle.remove()
    assert torch.allclose(captured["x"], x)


def test_cross_attention_weights_are_distributions_over_real_source() -> None:
    model = tiny()
    src, src_mask, tgt = random_batch()
    weights = model.cross_attention(src, src_mask, tgt)
    assert weights.shape == (3, 2, 4, 6, 7)  # B, L, H, T, S
    assert torch.allclose(weights.sum(-1), torch.ones(3, 2, 4, 6), atol=1e-5)
    assert torch.all(weights[0, ..., 5:] == 0)  # padding gets no attention


def test_implements_the_model_contract() -> None:
    model = tiny()
    src, src_mask, _ = random_batch()
    assert isinstance(model, Seq2SeqModel)
    assert isinstance(model.encode(src, src_mask), DecoderState)


@pytest.mark.parametrize(("preset", "paper_millions"), [("base", 65), ("big", 213)])
def test_presets_match_the_paper_parameter_counts(preset: str, paper_millions: int) -> None:
    params = count_parameters(build_model(TransformerConfig(preset=preset), 37000))
    assert abs(params / 1e6 - paper_millions) / paper_millions < 0.05


@pytest.mark.parametrize("task", ["copy", "reverse"])
def test_tiny_transformer_learns_to_copy_and_reverse(task: str) -> None:
    torch.manual_seed(0)
    model = Transformer(
        TransformerConfig(num_layers=2, d_model=64, d_ff=128, num_heads=4, dropout=0.0), 16
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98))
    bos, eos = 2, 3

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.randint(4, 16, (n, 5))
        out = src if task == "copy" else src.flip(1)
        tgt_in = torch.cat([torch.full((n, 1), bos), out], 1)
        tgt_out = torch.cat([out, torch.full((n, 1), eos)], 1)
        return src, tgt_in, tgt_out

    mask = torch.ones(64, 5, dtype=torch.bool)
    for _ in range(150):
        src, tgt_in, tgt_out = sample(64)
        loss = torch.nn.functional.cross_entropy(
            model(src, mask, tgt_in).flatten(0, 1), tgt_out.flatten()
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    src, _, tgt_out = sample(64)
    state, token, predicted = model.encode(src, mask), torch.full((64,), bos), []
    with torch.no_grad():
        for _ in range(6):
            log_probs, state = model.decode_step(token, state)
            token = log_probs.argmax(-1)
            predicted.append(token)
    accuracy = (torch.stack(predicted, 1) == tgt_out).float().mean().item()
    assert accuracy > 0.95


# -- the decoding path: one layer path, caches written in place, memory kept per sentence -----


def teacher_forced_log_probs(
    model: Transformer, src: torch.Tensor, tgt: torch.Tensor
) -> torch.Tensor:
    """Log-probabilities (T, V) of one sentence's target prefix ``tgt`` (T,), decoded alone."""
    src = src[src != PAD_ID][None]
    return model(src, torch.ones_like(src, dtype=torch.bool), tgt[None])[0].log_softmax(-1)


def beam_like_decode(model: Transformer, *, record_attention: bool = False) -> dict[str, object]:
    """Drive a state as beam search does, with every kind of select: expand each sentence to
    k = 2 beams, reorder within sentences, regroup rows across sentences (no longer grouped),
    regroup again, then drop a sentence. Returns every row's log-probs with its sentence and
    token history, the lineage of rows and the final state."""
    src, src_mask, _ = random_batch()
    state = model.encode(
        src, src_mask, EncodeOptions(max_steps=5, record_attention=record_attention)
    )
    sentence = torch.arange(3)  # (N,) sentence of each row
    history = torch.empty(3, 0, dtype=torch.long)  # (N, t) tokens fed to each row
    selections = [
        torch.arange(3).repeat_interleave(2),  # beams: rows 0 0 1 1 2 2
        torch.tensor([1, 0, 2, 2, 5, 4]),  # reordered and repeated within sentences
        torch.tensor([4, 0, 2, 1, 5, 3]),  # regrouped across sentences
        torch.tensor([1, 3, 0, 2, 4, 4]),  # grouped again, sentences in a new order
        torch.tensor([2, 3, 4, 5]),  # a sentence finished
    ]
    steps, lineage = [], []
    for t, rows in enumerate(selections):
        state = state.select(rows)
        sentence, history = sentence[rows], history[rows]
        lineage = [line[rows] for line in lineage]
        generator = torch.Generator().manual_seed(t)
        tokens = torch.randint(4, VOCAB, (rows.numel(),), generator=generator)
        history = torch.cat([history, tokens[:, None]], dim=1)
        log_probs, state = model.decode_step(tokens, state)
        steps.append((log_probs, sentence, history))
        lineage.append(torch.arange(rows.numel()))
    return {"src": src, "steps": steps, "lineage": lineage, "state": state}


def largest_error_against_decoding_alone(model: Transformer) -> float:
    run = beam_like_decode(model)
    src = run["src"]
    assert isinstance(src, torch.Tensor)
    error = 0.0
    for log_probs, sentence, history in run["steps"]:  # type: ignore[attr-defined]
        for row in range(log_probs.size(0)):
            alone = teacher_forced_log_probs(model, src[sentence[row]], history[row])[-1]
            # NaN (a cache read where nothing was written can hold it) counts as infinite: max()
            # would skip it, and a broken cache then read as no error at all.
            difference = (log_probs[row] - alone).abs().nan_to_num(nan=math.inf)
            error = max(error, difference.max().item())
    return error


@pytest.mark.parametrize("layout", ["step memory", "keys and values"])
@torch.no_grad()
def test_every_row_decodes_as_its_sentence_alone_through_every_select(
    layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the CPU decoding reads a StepMemory; elsewhere (a GPU, bfloat16) the encoder's keys
    and values as they are, through the fused kernel: both decode and select alike."""
    if layout == "keys and values":
        monkeypatch.setattr(transformer, "step_memory", lambda key, value, mask: (key, value))
    assert largest_error_against_decoding_alone(tiny()) < 1e-5


@torch.no_grad()
def test_the_check_fails_on_memory_of_the_wrong_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    # A state that misses a change in the order of its sentences (their number unchanged)
    # reads other sentences' keys/values.
    monkeypatch.setattr(transformer, "is_identity", lambda indices, size: indices.numel() == size)
    assert largest_error_against_decoding_alone(tiny()) > 1e-2


@torch.no_grad()
def test_the_check_fails_on_a_cache_written_at_the_wrong_position(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = StepBuffer.write

    def one_late(self: StepBuffer, position: int, value: torch.Tensor) -> torch.Tensor:
        original(self, position + 1, value)  # written one position late …
        assert self.data is not None
        return self.data[: self.rows].narrow(self.step_dim, 0, position + 1)  # … read as usual

    monkeypatch.setattr(StepBuffer, "write", one_late)
    assert largest_error_against_decoding_alone(tiny()) > 1e-2


@torch.no_grad()
def test_grouped_rows_share_their_sentences_keys_until_a_sentence_leaves() -> None:
    model = tiny()
    src, src_mask, tgt = random_batch()
    state = model.encode(src, src_mask)
    keys = state.memory[0][0]
    state = state.select(torch.arange(3).repeat_interleave(4))  # 4 beams a sentence
    assert state.beams == 4 and state.memory[0][0] is keys  # no copy for the beams
    for t in range(3):
        _, state = model.decode_step(tgt[:, t].repeat_interleave(4), state)
        state = state.select(torch.tensor([3, 3, 1, 0, 4, 5, 6, 7, 11, 8, 8, 8]))
        assert state.memory[0][0] is keys  # beams reordered within their sentences: no copy
    state = state.select(torch.arange(4, 12))  # the first sentence finished
    assert state.beams == 4 and state.memory[0][0].size(0) == 2
    torch.testing.assert_close(state.memory[0][0], keys[1:])


@torch.no_grad()
def test_caches_are_written_in_place_without_reallocation() -> None:
    model = tiny()
    src, src_mask, tgt = random_batch()
    state = model.encode(src, src_mask, EncodeOptions(max_steps=tgt.size(1)))
    _, state = model.decode_step(tgt[:, 0], state)
    cache = state.caches[0]
    assert cache.data is not None and cache.data.size(1) == tgt.size(1)  # (N, P, 2, H, K)
    state = state.select(torch.tensor([2, 0, 1]))  # reordering gathers into a spare buffer …
    storage = {cache.data.data_ptr(), cache.spare.data_ptr()}  # type: ignore[union-attr]
    for t in range(1, tgt.size(1)):
        _, state = model.decode_step(tgt[[2, 0, 1], t], state)
        state = state.select(torch.tensor([2, 0, 1]))
        # … and the two swap: no torch.cat growth, no new storage at any step.
        assert {cache.data.data_ptr(), cache.spare.data_ptr()} == storage  # type: ignore[union-attr]


@torch.no_grad()
def test_caches_grow_past_max_steps() -> None:
    model = tiny()
    src, src_mask, tgt = random_batch()
    expected = model(src, src_mask, tgt).log_softmax(-1)
    state = model.encode(src, src_mask, EncodeOptions(max_steps=2))
    for t in range(tgt.size(1)):
        log_probs, state = model.decode_step(tgt[:, t], state)
        torch.testing.assert_close(log_probs, expected[:, t], atol=1e-5, rtol=0)


@torch.no_grad()
def test_recorded_attention_is_the_weights_of_the_real_attention_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = tiny()
    captured: list[torch.Tensor] = []

    def capture(query: torch.Tensor, memory: StepMemory) -> tuple[torch.Tensor, torch.Tensor]:
        out, weights = step_attention(query, memory)
        captured.append(weights)
        return out, weights

    monkeypatch.setattr(transformer, "step_attention", capture)
    run = beam_like_decode(model, record_attention=True)
    state = run["state"]
    assert isinstance(state, TransformerState) and state.attention is not None
    num_rows, num_steps = state.attention.shape[:2]
    assert state.attention.shape == (num_rows, 5, 2, 4, 7)  # (N, t, L, H, S)
    assert len(captured) == num_steps * 2  # the weights were computed once per layer and step
    for t, lineage in enumerate(run["lineage"]):  # type: ignore[attr-defined]
        for layer in range(2):
            weights = captured[2 * t + layer]  # (M, H, k, S): k rows per sentence
            per_row = weights.transpose(1, 2).flatten(0, 1)  # (N_t, H, S)
            assert torch.equal(state.attention[:, t, layer], per_row[lineage])
    # And they are what a teacher-forced pass over each row's own tokens attends to.
    steps = run["steps"]
    _, sentence, history = steps[-1]  # type: ignore[index]
    src = run["src"]
    assert isinstance(src, torch.Tensor)
    for row in range(num_rows):
        alone_src = src[sentence[row]][src[sentence[row]] != PAD_ID][None]
        teacher = model.cross_attention(
            alone_src, torch.ones_like(alone_src, dtype=torch.bool), history[row][None]
        )
        length = alone_src.size(1)
        torch.testing.assert_close(
            state.attention[row, :, :, :, :length],
            teacher[0].permute(2, 0, 1, 3),
            atol=1e-5,
            rtol=0,
        )


@torch.no_grad()
def test_decoding_on_the_cpu_attends_through_step_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every decoder layer's encoder keys and values are laid out once for the steps, and no
    step computes the weights a second time when none are recorded."""
    model = tiny()
    calls = []
    monkeypatch.setattr(transformer, "attention_weights", lambda *args: calls.append(args))
    src, src_mask, tgt = random_batch()
    state = model.encode(src, src_mask)
    assert all(isinstance(memory, StepMemory) for memory in state.memory)
    _, state = model.decode_step(tgt[:, 0], state)
    assert not calls and state.attention is None


def test_old_checkpoints_with_separate_projections_load(tmp_path: Path) -> None:
    model = tiny()
    old: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():  # the names before the fused projections
        if ".qkv_proj." in name:
            for part, piece in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3), strict=True):
                old[name.replace("qkv_proj", part)] = piece.clone()
        elif ".kv_proj." in name:
            for part, piece in zip(("k_proj", "v_proj"), tensor.chunk(2), strict=True):
                old[name.replace("kv_proj", part)] = piece.clone()
        else:
            old[name] = tensor.clone()
    del old["tgt_embed.weight"], old["generator.weight"]  # tied: stored once
    assert "decoder_layers.0.cross_attn.q_proj.weight" in old
    assert not any("qkv_proj" in name or "kv_proj" in name for name in old)
    save_file(old, tmp_path / "old.safetensors")
    fresh = tiny(dropout=0.0)
    with torch.no_grad():
        for param in fresh.parameters():
            param.normal_()
    load_weights(fresh, tmp_path / "old.safetensors")
    src, src_mask, tgt = random_batch()
    torch.testing.assert_close(fresh(src, src_mask, tgt), model(src, src_mask, tgt))
    # A file with only some of the old parts is still refused.
    del old["encoder_layers.0.self_attn.v_proj.weight"]
    save_file(old, tmp_path / "partial.safetensors")
    with pytest.raises(NmtError, match="do not fit"):
        load_weights(tiny(), tmp_path / "partial.safetensors")


# -- options for models made elsewhere (Marian / OPUS-MT) -------------------------------------


def test_concatenated_layout_holds_all_sines_then_all_cosines() -> None:
    d_model = 16
    table = sinusoidal_positions(100, d_model, layout="concatenated")
    for pos in (0, 1, 7, 99):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            assert table[pos, i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, d_model // 2 + i].item() == pytest.approx(math.cos(angle), abs=1e-6)


@torch.no_grad()
def test_a_table_carried_as_learned_weights_equals_the_computed_one() -> None:
    computed = tiny(position_layout="concatenated")
    carried = tiny(positions="learned")
    state = computed.state_dict()
    table = sinusoidal_positions(1024, 32, layout="concatenated")
    state["src_positions.learned.weight"] = table
    state["tgt_positions.learned.weight"] = table
    carried.load_state_dict(state)
    src, src_mask, tgt = random_batch()
    torch.testing.assert_close(carried(src, src_mask, tgt), computed(src, src_mask, tgt))
    # The layout matters: the paper's interleaved table gives other logits.
    interleaved = tiny()
    interleaved.load_state_dict(computed.state_dict())
    assert not torch.allclose(
        interleaved(src, src_mask, tgt), computed(src, src_mask, tgt), atol=1e-3
    )


@pytest.mark.parametrize(
    ("activation", "function"), [("relu", F.relu), ("swish", F.silu), ("gelu", F.gelu)]
)
def test_feed_forward_activation(
    activation: str, function: Callable[[torch.Tensor], torch.Tensor]
) -> None:
    model = tiny(activation=activation)
    ffn = model.encoder_layers[0].feed_forward
    x = torch.randn(2, 3, 32)
    torch.testing.assert_close(ffn(x), ffn.w_2(function(ffn.w_1(x))))


@torch.no_grad()
def test_output_bias_is_added_to_the_logits() -> None:
    model = tiny(output_bias=True)
    assert "output_bias" in model.state_dict()
    src, src_mask, tgt = random_batch()
    before = model(src, src_mask, tgt)
    assert model.output_bias is not None
    model.output_bias.copy_(torch.randn(VOCAB))
    torch.testing.assert_close(model(src, src_mask, tgt), before + model.output_bias)
    assert "output_bias" not in tiny().state_dict()


def test_encoder_and_decoder_depths() -> None:
    model = tiny(num_layers=2, encoder_layers=1, decoder_layers=3)
    assert (len(model.encoder_layers), len(model.decoder_layers)) == (1, 3)
    src, src_mask, tgt = random_batch()
    assert model.cross_attention(src, src_mask, tgt).shape == (3, 3, 4, 6, 7)
    same = tiny(num_layers=2)
    assert (len(same.encoder_layers), len(same.decoder_layers)) == (2, 2)


def test_embeddings_unscaled_when_asked() -> None:
    model = tiny(scale_embedding=False)
    tokens = torch.tensor([[5, 6]])
    captured = {}

    def capture(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        captured["x"] = args[0]

    handle = model.encoder_layers[0].register_forward_pre_hook(capture)
    model.encoder(tokens, torch.ones_like(tokens, dtype=torch.bool))
    handle.remove()
    torch.testing.assert_close(
        captured["x"], model.src_embed(tokens) + model.src_positions.table[:2]
    )


def test_special_ids_are_the_models_own() -> None:
    config = TransformerConfig(
        num_layers=1, d_model=32, d_ff=64, num_heads=4, pad_id=VOCAB - 1, bos_id=VOCAB - 1, eos_id=0
    )
    model = build_model(config, VOCAB)
    assert (model.pad_id, model.bos_id, model.eos_id) == (VOCAB - 1, VOCAB - 1, 0)
    assert model.src_embed.padding_idx == VOCAB - 1
    assert torch.all(model.src_embed.weight[VOCAB - 1] == 0)
    assert model.src_embed.weight[PAD_ID].abs().sum() > 0
    default = build_model(TransformerConfig(num_layers=1, d_model=32, d_ff=64, num_heads=4), VOCAB)
    assert (default.pad_id, default.bos_id, default.eos_id) == (PAD_ID, BOS_ID, EOS_ID)
    with pytest.raises(NmtError, match="eos_id"):
        build_model(
            TransformerConfig(num_layers=1, d_model=32, d_ff=64, num_heads=4, eos_id=VOCAB), VOCAB
        )

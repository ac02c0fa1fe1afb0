"""The Transformer pinned to the paper: formulas, masks, caching, tying, sizes, learning."""

import math

import pytest
import torch

from nmt.config import TransformerConfig
from nmt.data.tokenizer import PAD_ID
from nmt.models.build import build_model, count_parameters
from nmt.models.interface import Seq2SeqModel
from nmt.models.transformer import Transformer, scaled_dot_product_attention, sinusoidal_positions

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
    ],
    ids=["post-LN", "pre-LN", "learned-positions", "untied"],
)
def test_step_by_step_decoding_reproduces_teacher_forcing(overrides: dict[str, object]) -> None:
    model = tiny(**overrides)
    src, src_mask, tgt = random_batch()
    expected = model(src, src_mask, tgt).log_softmax(-1)
    state = model.encode(src, src_mask)
    steps = []
    for t in range(tgt.size(1)):
        log_probs, state = model.decode_step(tgt[:, t], state)
        steps.append(log_probs)
    assert torch.allclose(torch.stack(steps, dim=1), expected, atol=1e-5)


def test_state_select_reorders_and_repeats_rows() -> None:
    model = tiny()
    src, src_mask, tgt = random_batch()
    state = model.encode(src, src_mask)
    _, state = model.decode_step(tgt[:, 0], state)
    order = torch.tensor([2, 0, 0])
    selected = state.select(order)
    lp_selected, _ = model.decode_step(tgt[order, 1], selected)
    lp_full, _ = model.decode_step(tgt[:, 1], state)
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
    assert isinstance(tiny(), Seq2SeqModel)


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

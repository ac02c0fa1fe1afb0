"""The recurrent encoder–decoders keep the model contract: decoding step by step reproduces the
teacher-forced pass, padding changes nothing, beams can be selected, and a toy task is learned."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.config import RNNConfig
from nmt.data.batching import pad_sequences
from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from nmt.models.interface import DecoderState, EncodeOptions, Seq2SeqModel, TranslationModel
from nmt.models.rnn import RNNSeq2Seq, RNNState

VOCAB = 23
CELLS = ["rnn", "lstm", "gru"]
ATTENTIONS = ["none", "additive", "dot", "general"]

# Every cell × attention kind; then input feeding, bidirectional and two-layer stacks.
VARIANTS: list[dict[str, Any]] = [
    {"cell": cell, "attention": attention}
    for cell, attention in itertools.product(CELLS, ATTENTIONS)
]
VARIANTS += [{"cell": "lstm", "attention": kind, "input_feeding": True} for kind in ATTENTIONS]
VARIANTS += [{"cell": cell, "attention": "additive", "bidirectional": True} for cell in CELLS]
VARIANTS += [
    {"cell": "lstm", "attention": "none", "bidirectional": True, "num_layers": 2},
    {"cell": "gru", "attention": "general", "bidirectional": True, "num_layers": 2},
    {"cell": "rnn", "attention": "dot", "input_feeding": True, "num_layers": 2},
    {"cell": "gru", "attention": "additive", "input_feeding": True, "share_embeddings": True},
    {"cell": "lstm", "attention": "dot", "tie_output": False},
]


def variant_id(variant: dict[str, Any]) -> str:
    return "-".join(f"{k}={v}" if not isinstance(v, str) else v for k, v in variant.items())


def make_model(**overrides: Any) -> RNNSeq2Seq:
    torch.manual_seed(0)
    fields: dict[str, Any] = {
        "embed_dim": 8,
        "hidden_size": 12,  # ≠ embed_dim: the tied output goes through a projection
        "num_layers": 1,
        "bidirectional": False,
        "dropout": 0.3,  # eval() must switch it off
    }
    return RNNSeq2Seq(RNNConfig(**{**fields, **overrides}), VOCAB).eval()


def random_batch(seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """src (B, S) with sentences of different lengths (EOS, then padding) and tgt_in (B, T)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = [6, 2, 4, 1]
    src = pad_sequences(
        [torch.randint(4, VOCAB, (n,), generator=gen).tolist() for n in lengths], suffix=EOS_ID
    )
    tgt_in = torch.randint(4, VOCAB, (len(lengths), 5), generator=gen)
    tgt_in[:, 0] = BOS_ID
    return src, src != PAD_ID, tgt_in


def step_by_step(model: RNNSeq2Seq, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
    state = model.encode(src, src_mask)
    log_probs = []
    for t in range(tgt_in.size(1)):
        step, state = model.decode_step(tgt_in[:, t], state)
        log_probs.append(step)
    return torch.stack(log_probs, dim=1)  # (B, T, V)


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
@torch.no_grad()
def test_decode_steps_equal_teacher_forcing(variant: dict[str, Any]) -> None:
    model = make_model(**variant)
    src, src_mask, tgt_in = random_batch()
    teacher_forced = model(src, src_mask, tgt_in).log_softmax(dim=-1)
    assert teacher_forced.shape == (4, 5, VOCAB)
    torch.testing.assert_close(
        step_by_step(model, src, src_mask, tgt_in), teacher_forced, atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
@torch.no_grad()
def test_extra_source_padding_changes_nothing(variant: dict[str, Any]) -> None:
    model = make_model(**variant)
    src, src_mask, tgt_in = random_batch()
    padded = torch.cat([src, torch.full((src.size(0), 3), PAD_ID)], dim=1)
    torch.testing.assert_close(
        model(padded, padded != PAD_ID, tgt_in), model(src, src_mask, tgt_in), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_every_parameter_gets_a_gradient(variant: dict[str, Any]) -> None:
    """An unused parameter would make DistributedDataParallel fail."""
    model = make_model(**variant).train()
    src, src_mask, tgt_in = random_batch()
    model(src, src_mask, tgt_in).logsumexp(dim=-1).mean().backward()
    unused = [name for name, param in model.named_parameters() if param.grad is None]
    assert not unused


@torch.no_grad()
def test_a_sentence_alone_equals_it_in_a_padded_batch() -> None:
    model = make_model(cell="lstm", attention="general", bidirectional=True)
    src, src_mask, tgt_in = random_batch()
    length = int(src_mask[1].sum())
    alone = model(src[1:2, :length], src_mask[1:2, :length], tgt_in[1:2])
    torch.testing.assert_close(alone, model(src, src_mask, tgt_in)[1:2], atol=1e-5, rtol=0)


@pytest.mark.parametrize("attention", ["additive", "dot", "general"])
@pytest.mark.parametrize("input_feeding", [False, True])
@torch.no_grad()
def test_attention_weights_sum_to_one_over_real_source_tokens(
    attention: str, input_feeding: bool
) -> None:
    model = make_model(cell="gru", attention=attention, input_feeding=input_feeding)
    src, src_mask, tgt_in = random_batch()
    weights = model.cross_attention(src, src_mask, tgt_in)
    assert weights is not None
    assert weights.shape == (4, 1, 1, 5, src.size(1))  # (B, L, H, T, S)
    padding = ~src_mask[:, None, None, None, :].expand_as(weights)
    assert torch.all(weights[padding] == 0)
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(4, 1, 1, 5))


def test_no_attention_has_no_weights() -> None:
    src, src_mask, tgt_in = random_batch()
    assert make_model(attention="none").cross_attention(src, src_mask, tgt_in) is None


@pytest.mark.parametrize(
    "variant",
    [
        {"cell": "lstm", "attention": "additive", "input_feeding": True, "bidirectional": True},
        {"cell": "gru", "attention": "none"},
        {"cell": "rnn", "attention": "general", "num_layers": 2},
    ],
    ids=variant_id,
)
@torch.no_grad()
def test_select_with_repeated_indices_keeps_each_rows_state(variant: dict[str, Any]) -> None:
    model = make_model(**variant)
    src, src_mask, tgt_in = random_batch()
    state = model.encode(src, src_mask)
    for t in range(2):
        _, state = model.decode_step(tgt_in[:, t], state)
    indices = torch.tensor([2, 0, 0, 3, 2, 2, 1])  # expand to beams, in a new order
    selected = state.select(indices)
    assert isinstance(selected, RNNState)
    assert selected.hidden.size(0) == len(indices)
    reference, _ = model.decode_step(tgt_in[:, 2], state)
    beams, _ = model.decode_step(tgt_in[indices, 2], selected)
    torch.testing.assert_close(beams, reference[indices], atol=1e-6, rtol=0)


@torch.no_grad()
def test_input_feeding_carries_the_attentional_vector() -> None:
    model = make_model(cell="gru", attention="dot", input_feeding=True)
    src, src_mask, tgt_in = random_batch()
    state = model.encode(src, src_mask)
    assert state.feed is not None and torch.all(state.feed == 0)  # Luong: zero at the start
    log_probs, state = model.decode_step(tgt_in[:, 0], state)
    assert state.feed is not None
    # The vector fed to the next step is the one the output layer just read.
    torch.testing.assert_close(model.logits(state.feed).log_softmax(dim=-1), log_probs)


@torch.no_grad()
def test_without_attention_the_context_is_the_top_layers_final_state() -> None:
    model = make_model(cell="lstm", attention="none", num_layers=2, bidirectional=True)
    src, src_mask, _ = random_batch()
    state = model.encode(src, src_mask)
    assert state.context is not None and state.memory is None and state.keys is None
    torch.testing.assert_close(state.context, state.hidden[:, -1])


def test_model_and_state_follow_the_contract() -> None:
    model = make_model(cell="lstm", attention="additive", input_feeding=True)
    src, src_mask, _ = random_batch()
    assert isinstance(model, Seq2SeqModel) and isinstance(model, TranslationModel)
    assert isinstance(model.encode(src, src_mask), DecoderState)


def test_sharing_and_tying() -> None:
    tied = make_model(share_embeddings=True, tie_output=True)
    assert tied.src_embed is tied.tgt_embed
    assert tied.generator.weight is tied.tgt_embed.weight
    assert tied.output_proj is not None  # hidden 12 → embed 8 before the tied layer
    assert torch.all(tied.src_embed.weight[PAD_ID] == 0)

    same_size = make_model(embed_dim=12, tie_output=True)
    assert same_size.output_proj is None
    assert same_size.src_embed is not same_size.tgt_embed

    untied = make_model(tie_output=False)
    assert untied.output_proj is None
    assert untied.generator.weight is not untied.tgt_embed.weight
    assert untied.generator.in_features == 12


def test_init_scales_with_the_sizes() -> None:
    torch.manual_seed(0)
    config = RNNConfig(cell="lstm", attention="additive", embed_dim=64, hidden_size=100)
    model = RNNSeq2Seq(config, 4000)
    for embedding in (model.src_embed, model.tgt_embed):  # N(0, E^-0.5), the padding row zero
        assert embedding.weight[PAD_ID].abs().sum() == 0
        assert embedding.weight[PAD_ID + 1 :].std().item() == pytest.approx(64**-0.5, rel=0.05)
    for name, module in model.named_modules():  # uniform ±1/√fan-in
        if isinstance(module, nn.RNNBase):
            bound, params = module.hidden_size**-0.5, list(module.parameters())
        elif isinstance(module, nn.Linear) and module is not model.generator:
            bound, params = module.in_features**-0.5, list(module.parameters())
        else:
            continue
        assert all(p.abs().max() <= bound for p in params), name
    assert model.generator.weight is model.tgt_embed.weight  # initialising kept the tie


# -- a toy task: copy the source ----------------------------------------------------------------


def copy_batch(gen: torch.Generator, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Random sequences of 3–6 symbols; the target is the source."""
    symbols = 20
    seqs = [
        torch.randint(4, symbols, (int(torch.randint(3, 7, (1,), generator=gen)),), generator=gen)
        for _ in range(size)
    ]
    rows = [s.tolist() for s in seqs]
    src = pad_sequences(rows, suffix=EOS_ID)
    return src, pad_sequences(rows, prefix=BOS_ID), pad_sequences(rows, suffix=EOS_ID)


@torch.no_grad()
def greedy_accuracy(model: RNNSeq2Seq, src: Tensor, tgt_out: Tensor) -> float:
    model.eval()
    state = model.encode(src, src != PAD_ID)
    tokens = torch.full((src.size(0),), BOS_ID)
    predicted = []
    for _ in range(tgt_out.size(1)):
        log_probs, state = model.decode_step(tokens, state)
        tokens = log_probs.argmax(dim=-1)
        predicted.append(tokens)
    real = tgt_out != PAD_ID
    model.train()
    return float(((torch.stack(predicted, dim=1) == tgt_out) & real).sum() / real.sum())


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and threads spin-waiting for a busy CPU
    can make a seconds-long training run take minutes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "variant",
    [{"cell": cell, "attention": kind} for cell in CELLS for kind in ("none", "additive")]
    + [{"cell": "lstm", "attention": "general", "input_feeding": True, "bidirectional": True}],
    ids=variant_id,
)
def test_learns_to_copy(variant: dict[str, Any], one_thread: None) -> None:
    torch.manual_seed(0)
    fields = {"embed_dim": 32, "hidden_size": 64, "dropout": 0.0, "bidirectional": False}
    model = RNNSeq2Seq(RNNConfig(**{**fields, **variant}), 20)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    test_src, _, test_out = copy_batch(torch.Generator().manual_seed(1), 200)
    accuracy = 0.0
    for step in range(1, 1501):
        src, tgt_in, tgt_out = copy_batch(gen, 64)
        logits = model(src, src != PAD_ID, tgt_in)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD_ID)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 100 == 0:
            accuracy = greedy_accuracy(model, test_src, test_out)
            if accuracy > 0.9:
                break
    assert accuracy > 0.9, f"greedy token accuracy {accuracy:.3f} after {step} steps"


@pytest.mark.parametrize(
    "variant",
    [
        {"cell": "lstm", "attention": "additive", "input_feeding": True},
        {"cell": "gru", "attention": "dot"},
        {"cell": "rnn", "attention": "general", "num_layers": 2, "bidirectional": True},
    ],
    ids=variant_id,
)
@torch.no_grad()
def test_recorded_attention_is_each_rows_own_through_select(variant: dict[str, Any]) -> None:
    model = make_model(**variant)
    src, src_mask, tgt_in = random_batch()
    state = model.encode(src, src_mask, EncodeOptions(max_steps=5, record_attention=True))
    for t in range(2):
        _, state = model.decode_step(tgt_in[:, t], state)
    indices = torch.tensor([2, 0, 0, 3, 2, 2, 1])  # beams, reordered and repeated
    state, tokens = state.select(indices), tgt_in[indices]
    for t in range(2, 5):
        _, state = model.decode_step(tokens[:, t], state)
    # Each row's weights are those of its own history: the teacher-forced pass over it.
    expected = model.cross_attention(src[indices], src_mask[indices], tokens)
    assert expected is not None and state.attention is not None
    assert state.attention.shape == (7, 5, 1, 1, src.size(1))  # (N, t, L, H, S)
    torch.testing.assert_close(state.attention, expected.permute(0, 3, 1, 2, 4))


def test_attention_is_recorded_only_when_asked_and_only_with_attention() -> None:
    src, src_mask, tgt_in = random_batch()
    for model, record in [
        (make_model(attention="dot"), False),
        (make_model(attention="none"), True),
    ]:
        state = model.encode(src, src_mask, EncodeOptions(record_attention=record))
        _, state = model.decode_step(tgt_in[:, 0], state)
        assert state.attention is None


def test_special_ids_are_the_models_own() -> None:
    torch.manual_seed(0)
    model = RNNSeq2Seq(RNNConfig(embed_dim=8, hidden_size=8), VOCAB, pad_id=VOCAB - 1, eos_id=0)
    assert (model.pad_id, model.bos_id, model.eos_id) == (VOCAB - 1, BOS_ID, 0)
    assert model.src_embed.padding_idx == VOCAB - 1
    assert torch.all(model.src_embed.weight[VOCAB - 1] == 0)
    assert model.src_embed.weight[PAD_ID].abs().sum() > 0

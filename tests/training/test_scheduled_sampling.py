"""Scheduled sampling: the schedules' formulas, plain teacher forcing left untouched at p = 1,
the model's own argmax fed at p = 0, and the mixing rate following the schedule."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import Tensor

from nmt.config import Config, RNNConfig, TrainingConfig, TransformerConfig, load_config
from nmt.errors import NmtError
from nmt.models.build import build_model
from nmt.models.interface import TranslationModel
from nmt.training.loss import LossSums
from nmt.training.precision import forward_loss
from nmt.training.scheduled_sampling import (
    ScheduledSampling,
    choose_inputs,
    step_by_step_log_probs,
    teacher_forcing_probability,
)
from tests.training.helpers import write_config

VOCAB, BOS, PAD, EOS = 40, 2, 0, 3
AVOIDED = 7  # never in the references below: a fed 7 can only be the model's prediction
TRANSFORMER = TransformerConfig(
    num_layers=1, d_model=16, d_ff=32, num_heads=2, dropout=0.0, share_embeddings=False
)
GRU = RNNConfig(
    cell="gru", embed_dim=8, hidden_size=16, attention="dot", input_feeding=True, dropout=0.0
)
MODELS = pytest.mark.parametrize("model_config", [TRANSFORMER, GRU], ids=["transformer", "gru"])


def toy_batch(batch: int = 6, length: int = 9, seed: int = 0) -> tuple[Tensor, ...]:
    """src, src_mask, tgt_in, tgt_out: random ids (none of them AVOIDED), ragged targets."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.arange(4, VOCAB)
    ids = ids[ids != AVOIDED]

    def draw(shape: tuple[int, int]) -> Tensor:
        return ids[torch.randint(len(ids), shape, generator=generator)]

    src, tgt = draw((batch, length)), draw((batch, length))
    src_mask = torch.ones(batch, length, dtype=torch.bool)
    lengths = torch.randint(2, length, (batch,), generator=generator)
    lengths[0] = length  # one full row
    real = torch.arange(length) < lengths[:, None]
    tgt_out = torch.where(real, tgt, PAD)
    tgt_out[torch.arange(batch), lengths - 1] = EOS
    tgt_in = torch.cat([torch.full((batch, 1), BOS), tgt_out[:, :-1]], dim=1)
    tgt_in = tgt_in.masked_fill(~real, PAD)
    return src, src_mask, tgt_in, tgt_out


def make_model(model_config: TransformerConfig | RNNConfig) -> TranslationModel:
    torch.manual_seed(0)
    return build_model(model_config, VOCAB).train()


def sampling_loss(
    model: TranslationModel, model_config: TransformerConfig | RNNConfig, **training: object
) -> ScheduledSampling:
    config = Config(model=model_config, training=TrainingConfig(**training))  # type: ignore[arg-type]
    loss_of = forward_loss(
        model,
        device_type="cpu",
        precision="float32",
        label_smoothing=config.training.label_smoothing,
        pad_id=PAD,
    )
    return ScheduledSampling(model, loss_of, config, pad_id=PAD, device_type="cpu")


class Recorder:
    """The token ids the target embedding is fed and the generator's outputs, call by call."""

    def __init__(self, model: TranslationModel) -> None:
        self.fed: list[Tensor] = []
        self.outputs: list[Tensor] = []
        model.tgt_embed.register_forward_hook(lambda _m, args, _out: self.fed.append(args[0]))
        generator = model.get_submodule("generator")
        generator.register_forward_hook(lambda _m, _a, out: self.outputs.append(out.detach()))


# -- the schedules -------------------------------------------------------------------------------


def test_constant_schedule() -> None:
    config = TrainingConfig(teacher_forcing=0.7)
    assert [teacher_forcing_probability(i, config) for i in (0, 10, 10**6)] == [0.7] * 3


def test_linear_schedule_is_bengios_with_a_floor() -> None:
    config = TrainingConfig(
        teacher_forcing=0.9,
        teacher_forcing_schedule="linear",
        teacher_forcing_min=0.1,
        teacher_forcing_decay_steps=400,
    )
    # Bengio et al.: max(ε, k − c·i) with k = 0.9, ε = 0.1, c = (0.9 − 0.1) / 400.
    for i in (0, 1, 100, 200, 399, 400, 401, 5000):
        expected = max(0.1, 0.9 - 0.002 * i)
        assert teacher_forcing_probability(i, config) == pytest.approx(expected, abs=1e-12)


def test_inverse_sigmoid_schedule_is_bengios() -> None:
    config = TrainingConfig(teacher_forcing_schedule="inverse_sigmoid", teacher_forcing_k=50.0)
    for i in (0, 10, 100, 195, 400, 10**7):
        expected = 50.0 / (50.0 + math.exp(min(i / 50.0, 700)))
        assert teacher_forcing_probability(i, config) == pytest.approx(
            expected, rel=1e-9, abs=1e-300
        )
    floored = config.model_copy(update={"teacher_forcing_min": 0.25})
    assert teacher_forcing_probability(10**7, floored) == 0.25


def test_floor_above_the_start_is_refused() -> None:
    with pytest.raises(ValueError, match="teacher_forcing_min"):
        TrainingConfig(teacher_forcing=0.3, teacher_forcing_min=0.5)


# -- p = 1: today's loss, exactly ------------------------------------------------------------------


@MODELS
def test_full_teacher_forcing_is_todays_loss_exactly(
    model_config: TransformerConfig | RNNConfig,
) -> None:
    model_config = model_config.model_copy(update={"dropout": 0.3})  # dropout on: seeds matter
    model = make_model(model_config)
    src, src_mask, tgt_in, tgt_out = toy_batch()
    plain = forward_loss(
        model, device_type="cpu", precision="float32", label_smoothing=0.1, pad_id=PAD
    )
    scheduled = sampling_loss(model, model_config)  # the defaults: constant 1.0
    for step in (0, 5000):
        torch.manual_seed(1)
        expected = plain(src, src_mask, tgt_in, tgt_out)
        torch.manual_seed(1)
        got = scheduled(src, src_mask, tgt_in, tgt_out, step=step)
        assert torch.equal(got.smoothed, expected.smoothed) and torch.equal(got.nll, expected.nll)


def test_step_by_step_pass_at_p_one_is_the_teacher_forced_pass() -> None:
    """The recurrent models' own pass, forced to run at p = 1, computes the same numbers as the
    teacher-forced forward: it is the same decoder, only fed one step at a time."""
    model = make_model(GRU).eval()
    src, src_mask, tgt_in, _ = toy_batch()
    with torch.no_grad():
        always_reference = partial(choose_inputs, probability=1.0, pad_id=PAD)
        stepped = step_by_step_log_probs(model, src, src_mask, tgt_in, always_reference)
        forced = model(src, src_mask, tgt_in).log_softmax(-1)
    torch.testing.assert_close(stepped, forced, atol=1e-5, rtol=1e-5)


# -- p = 0: the decoder is fed its own argmax --------------------------------------------------


def test_transformer_at_zero_is_fed_its_first_pass_argmax() -> None:
    model = make_model(TRANSFORMER)
    recorder = Recorder(model)
    src, src_mask, tgt_in, tgt_out = toy_batch()
    sums = sampling_loss(model, TRANSFORMER, teacher_forcing=0.0)(
        src, src_mask, tgt_in, tgt_out, step=0
    )
    sums.smoothed.backward()  # the second pass carries the gradient
    assert model.generator.weight.grad is not None
    assert len(recorder.fed) == 2  # two passes
    first_in, second_in = recorder.fed
    assert torch.equal(first_in, tgt_in)  # the first pass is teacher-forced
    predicted = recorder.outputs[0].argmax(-1)  # (B, T)
    real = tgt_in != PAD
    assert torch.equal(second_in[:, 0], tgt_in[:, 0])  # BOS
    assert torch.equal(second_in[:, 1:][real[:, 1:]], predicted[:, :-1][real[:, 1:]])
    assert torch.equal(second_in[~real], tgt_in[~real])  # padding stays
    assert (second_in[real] != tgt_in[real]).any()  # not the reference after all


def test_recurrent_model_at_zero_is_fed_its_previous_argmax() -> None:
    model = make_model(GRU)
    recorder = Recorder(model)
    src, src_mask, tgt_in, tgt_out = toy_batch()
    sums = sampling_loss(model, GRU, teacher_forcing=0.0)(src, src_mask, tgt_in, tgt_out, step=0)
    sums.smoothed.backward()
    assert model.decoder.combine.weight.grad is not None
    fed = torch.cat(recorder.fed, dim=1)  # (B, T): one call per step
    outputs = torch.stack(recorder.outputs, dim=1)  # (B, T, V)
    assert fed.shape == tgt_in.shape
    real = tgt_in != PAD
    assert torch.equal(fed[:, 0], tgt_in[:, 0])  # BOS
    # The input of step t + 1 is the argmax of step t, where the reference has a token.
    argmax = outputs.argmax(-1)
    assert torch.equal(fed[:, 1:][real[:, 1:]], argmax[:, :-1][real[:, 1:]])
    assert (fed[real] != tgt_in[real]).any()
    # And it is the model's greedy output: decoding from BOS on its own gives the same tokens.
    with torch.no_grad():
        state = model.encode(src, src_mask)
        token, greedy = tgt_in[:, 0], []
        for _ in range(tgt_in.size(1)):
            log_probs, state = model.decode_step(token, state)
            token = log_probs.argmax(-1)
            greedy.append(token)
    assert torch.equal(fed[:, 1:][real[:, 1:]], torch.stack(greedy, 1)[:, :-1][real[:, 1:]])


# -- the schedule is what the training sees ------------------------------------------------------


def prefer_avoided(model: TranslationModel) -> None:
    """Make the model's argmax AVOIDED everywhere, a token no reference holds."""
    with torch.no_grad():
        bias = getattr(model, "output_bias", None)
        if bias is None:
            bias = model.get_submodule("generator").bias
        bias[AVOIDED] = 100.0


@MODELS
@pytest.mark.parametrize(
    ("schedule", "steps"),
    [
        (
            {"teacher_forcing_schedule": "linear", "teacher_forcing_decay_steps": 1000},
            (0, 300, 700, 1000),
        ),
        ({"teacher_forcing_schedule": "inverse_sigmoid", "teacher_forcing_k": 20.0}, (0, 60, 90)),
    ],
    ids=["linear", "inverse_sigmoid"],
)
def test_observed_mixing_rate_follows_the_schedule(
    model_config: TransformerConfig | RNNConfig, schedule: dict[str, object], steps: tuple[int, ...]
) -> None:
    if isinstance(model_config, TransformerConfig):
        model_config = model_config.model_copy(update={"output_bias": True})
    model = make_model(model_config)
    prefer_avoided(model)
    recorder = Recorder(model)
    loss = sampling_loss(model, model_config, **schedule)
    src, src_mask, tgt_in, tgt_out = toy_batch(batch=200, length=12, seed=1)
    scored = tgt_in[:, 1:] != PAD  # the positions that can be mixed
    torch.manual_seed(0)
    for step in steps:
        recorder.fed.clear()
        with torch.no_grad():
            loss(src, src_mask, tgt_in, tgt_out, step=step)
        # The Transformer's second pass; the recurrent model's steps, one column each.
        fed = recorder.fed[1] if len(recorder.fed) == 2 else torch.cat(recorder.fed, dim=1)
        predicted = fed[:, 1:][scored] == AVOIDED
        expected = teacher_forcing_probability(step, loss.config)
        assert predicted.numel() > 1000
        # ~1,300 draws: the standard error is at most 0.014.
        assert 1 - float(predicted.float().mean()) == pytest.approx(expected, abs=0.05), step
    assert teacher_forcing_probability(steps[-1], loss.config) < 0.5  # the schedule did decay


# -- wiring ---------------------------------------------------------------------------------------


def test_recurrent_scheduled_sampling_refuses_several_processes() -> None:
    model = make_model(GRU)
    config = Config(model=GRU, training=TrainingConfig(teacher_forcing=0.5))
    with pytest.raises(NmtError, match="one process"):
        ScheduledSampling(
            model, lambda *a: None, config, pad_id=PAD, device_type="cpu", distributed=True
        )  # type: ignore[arg-type, return-value]


def test_training_follows_the_schedule(
    toy_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`nmt train` passes each update's count and the config's schedule to the loss."""
    import nmt.training.setup as setup
    import nmt.training.train as training

    probabilities: list[float] = []

    class Spy(ScheduledSampling):
        def __call__(self, *args: Tensor, step: int) -> LossSums:
            probabilities.append(teacher_forcing_probability(step, self.config))
            return super().__call__(*args, step=step)

    monkeypatch.setattr(setup, "ScheduledSampling", Spy)

    path = write_config(
        tmp_path / "c.yaml",
        toy_corpus,
        tmp_path / "run",
        training={
            "max_steps": 3,
            "save_every": 3,
            "teacher_forcing": 0.8,
            "teacher_forcing_schedule": "linear",
            "teacher_forcing_decay_steps": 2,
        },
    )
    result = training.train(load_config(path))
    assert result.step == 3
    assert probabilities == pytest.approx([0.8, 0.4, 0.0])

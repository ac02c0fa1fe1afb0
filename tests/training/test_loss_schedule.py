import math

import pytest
import torch
import torch.nn.functional as F

from nmt.config import ScheduleConfig
from nmt.data.tokenizer import PAD_ID
from nmt.training.loss import label_smoothed_loss
from nmt.training.schedule import learning_rate


def test_label_smoothing_matches_the_closed_form() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 11)
    target = torch.tensor([[5, 6, 7, PAD_ID], [8, 9, PAD_ID, PAD_ID]])
    sums = label_smoothed_loss(logits, target, epsilon=0.1)
    # Reference: PyTorch's own smoothed cross-entropy (1 - ε on the reference, ε / V on all).
    expected = F.cross_entropy(
        logits.flatten(0, 1),
        target.flatten(),
        ignore_index=PAD_ID,
        label_smoothing=0.1,
        reduction="sum",
    )
    assert sums.smoothed.item() == pytest.approx(expected.item(), rel=1e-6)
    # And by hand for one token.
    log_p = logits[0, 0].log_softmax(-1)
    by_hand = -(0.9 * log_p[5] + 0.1 * log_p.mean())
    one = label_smoothed_loss(logits[:1, :1], target[:1, :1], epsilon=0.1)
    assert one.smoothed.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert sums.num_tokens == 5


def test_plain_cross_entropy_ignores_padding_and_smoothing() -> None:
    torch.manual_seed(1)
    logits = torch.randn(1, 3, 7)
    target = torch.tensor([[4, 5, PAD_ID]])
    sums = label_smoothed_loss(logits, target, epsilon=0.3)
    expected = -(logits[0, 0].log_softmax(-1)[4] + logits[0, 1].log_softmax(-1)[5])
    assert sums.nll.item() == pytest.approx(expected.item(), rel=1e-6)
    assert label_smoothed_loss(logits, target, epsilon=0.0).smoothed.item() == pytest.approx(
        expected.item(), rel=1e-6
    )


def test_schedule_is_the_papers_formula() -> None:
    config = ScheduleConfig(warmup_steps=4000)
    for step in (1, 100, 3999, 4000, 4001, 20000, 100000):
        paper = 512**-0.5 * min(step**-0.5, step * 4000**-1.5)
        assert learning_rate(step, d_model=512, config=config) == pytest.approx(paper, rel=1e-12)
    # Linear warm-up, peak at warmup_steps, then 1/√step decay.
    peak = learning_rate(4000, d_model=512, config=config)
    assert learning_rate(2000, d_model=512, config=config) == pytest.approx(peak / 2)
    assert learning_rate(16000, d_model=512, config=config) == pytest.approx(peak / 2)
    assert peak == pytest.approx(512**-0.5 * 4000**-0.5)


def test_schedule_scale_and_peak_forms() -> None:
    scaled = ScheduleConfig(warmup_steps=100, scale=2.0)
    plain = ScheduleConfig(warmup_steps=100)
    assert learning_rate(50, d_model=64, config=scaled) == pytest.approx(
        2 * learning_rate(50, d_model=64, config=plain)
    )
    peak = ScheduleConfig(kind="peak", warmup_steps=100, peak_lr=1e-3)
    assert learning_rate(100, d_model=64, config=peak) == pytest.approx(1e-3)
    assert learning_rate(400, d_model=64, config=peak) == pytest.approx(1e-3 * math.sqrt(100 / 400))

"""The learning-rate schedule of the paper (section 5.3): linear warm-up, then 1/√step decay."""

from __future__ import annotations

from nmt.config import ScheduleConfig


def learning_rate(step: int, *, d_model: int, config: ScheduleConfig) -> float:
    """lrate = scale · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5).

    The ``peak`` form keeps the shape but names the rate reached at step = warmup directly,
    which is easier to carry across model widths. Steps count from 1.
    """
    step = max(step, 1)
    warmup = config.warmup_steps
    shape = min(step**-0.5, step * warmup**-1.5)
    if config.kind == "peak":
        assert config.peak_lr is not None  # the config validator guarantees it
        return config.peak_lr * shape * warmup**0.5
    return config.scale * d_model**-0.5 * shape

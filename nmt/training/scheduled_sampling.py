"""Scheduled sampling: teacher forcing that gives way, during training, to the model's own words.

A decoder is trained on the reference's previous word (teacher forcing) but runs at inference
on its own previous output, which it never saw in training ("exposure bias"). Bengio et al.
(2015), *Scheduled Sampling for Sequence Prediction with Recurrent Neural Networks*, feed each
decoder input the reference token with probability p and the model's own prediction otherwise,
p decaying as training goes on (``training.teacher_forcing`` and its schedule):

- constant:        p_i = p0
- linear:          p_i = max(ε, p0 − (p0 − ε)·i / decay_steps)
- inverse sigmoid: p_i = max(ε, p0 · k / (k + exp(i / k)))      (the paper's curve at p0 = 1)

where i counts the updates done so far, p0 is ``teacher_forcing`` and ε ``teacher_forcing_min``.
The model's prediction is its argmax, fed as a token without gradient.

How the predictions are made differs by family:

- Recurrent models, step by step (Bengio et al.): the decoder runs one step at a time through
  the model contract (``encode``, ``decode_step``); the input of step t + 1 is the reference
  token or the argmax of step t, which was itself computed from the inputs actually fed.
- The Transformer, in two passes (Mihaylova & Martins 2019, *Scheduled Sampling for
  Transformers*): it reads all positions at once, so no earlier step's output exists to feed.
  A first teacher-forced pass without gradient gives the argmax at every position; each decoder
  input after BOS is then the reference token or the prediction of the position before it,
  chosen per token; the second pass, on those inputs, computes the loss. Every prediction comes
  from a reference prefix (one pass), unlike the recurrent models' own prefixes.

At p = 1 nothing of this runs: the usual loss function is called on the reference inputs.
BOS always starts the decoder and padding stays padding (its positions carry no loss).

Shapes: B batch, S source length, T target length, V vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import cast

import torch
from torch import Tensor, nn

from nmt.config import Config, RNNConfig, TrainingConfig
from nmt.errors import NmtError
from nmt.models.interface import EncodeOptions, Seq2SeqModel
from nmt.training.loss import LossSums, label_smoothed_loss
from nmt.training.precision import AUTOCAST_DTYPES, ForwardLoss


def teacher_forcing_probability(step: int, config: TrainingConfig) -> float:
    """p_i, the probability of feeding the reference token during update ``step`` (0-based)."""
    p0, floor = config.teacher_forcing, config.teacher_forcing_min
    match config.teacher_forcing_schedule:
        case "constant":
            return p0
        case "linear":
            return max(floor, p0 - (p0 - floor) * step / config.teacher_forcing_decay_steps)
        case "inverse_sigmoid":
            k = config.teacher_forcing_k
            # k / (k + e^(i/k)) = 1 / (1 + e^(i/k − ln k)): no overflow however long the run.
            return max(floor, p0 / (1.0 + math.exp(min(step / k - math.log(k), 700.0))))
    raise AssertionError(config.teacher_forcing_schedule)


def always_reference(config: TrainingConfig) -> bool:
    """True when every update feeds the reference (plain teacher forcing)."""
    return config.teacher_forcing_schedule == "constant" and config.teacher_forcing == 1.0


# (reference tokens, predicted tokens) -> the tokens to feed: choose_inputs at one probability.
Mix = Callable[[Tensor, Tensor], Tensor]


def choose_inputs(
    reference: Tensor, predicted: Tensor, probability: float, *, pad_id: int
) -> Tensor:
    """Per token, the reference with ``probability``, else the prediction; padding stays."""
    keep = torch.rand(reference.shape, device=reference.device) < probability
    return torch.where(keep | (reference == pad_id), reference, predicted)


@torch.no_grad()
def two_pass_inputs(
    model: nn.Module, src: Tensor, src_mask: Tensor, tgt_in: Tensor, mix: Mix
) -> Tensor:
    """The Transformer's decoder inputs (B, T): BOS, then per position the reference or the
    argmax a teacher-forced first pass predicted there (Mihaylova & Martins 2019)."""
    predicted = model(src, src_mask, tgt_in).argmax(dim=-1)  # (B, T): [:, t] guesses t + 1
    return torch.cat([tgt_in[:, :1], mix(tgt_in[:, 1:], predicted[:, :-1])], dim=1)


def step_by_step_log_probs(
    model: Seq2SeqModel, src: Tensor, src_mask: Tensor, tgt_in: Tensor, mix: Mix
) -> Tensor:
    """Log-probabilities (B, T, V) of a decoder run one step at a time, fed BOS, then at each
    step the reference token or its own argmax of the step before, as ``mix`` chooses."""
    state = model.encode(src, src_mask, EncodeOptions(max_steps=tgt_in.size(1)))
    fed = tgt_in[:, 0]  # BOS
    outputs = []
    for t in range(tgt_in.size(1)):
        log_probs, state = model.decode_step(fed, state)  # (B, V)
        outputs.append(log_probs)
        if t + 1 < tgt_in.size(1):
            predicted = log_probs.detach().argmax(dim=-1)
            fed = mix(tgt_in[:, t + 1], predicted)
    return torch.stack(outputs, dim=1)


class ScheduledSampling:
    """The training loss with ``training.teacher_forcing``: called as the usual loss function
    ``loss_of`` is, plus the number of updates done so far, ``step``.

    ``model`` is the unwrapped model: it makes the predictions (and, for a recurrent model, the
    whole step-by-step pass); the Transformer's second pass goes through ``loss_of`` (its
    autocast, torch.compile and DistributedDataParallel wrapper).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_of: ForwardLoss,
        config: Config,
        *,
        pad_id: int,
        device_type: str,
        distributed: bool = False,
    ) -> None:
        self.model = model
        self.loss_of = loss_of
        self.config = config.training
        self.pad_id = pad_id
        self.recurrent = isinstance(config.model, RNNConfig)
        self.device_type = device_type
        if self.recurrent and distributed and not always_reference(self.config):
            # The step-by-step pass bypasses the DDP wrapper's forward, whose hooks average the
            # gradients over processes: they would silently drift apart.
            raise NmtError(
                "training.teacher_forcing < 1 trains a recurrent model in one process only "
                "(the Transformer's two-pass method works with several)"
            )

    def autocast(self) -> torch.autocast:
        """The forward passes' autocast, as ``training.precision`` asks (see precision.py)."""
        precision = self.config.precision
        dtype, enabled = AUTOCAST_DTYPES.get(precision), precision in AUTOCAST_DTYPES
        return torch.autocast(self.device_type, dtype=dtype, enabled=enabled)

    def __call__(
        self, src: Tensor, src_mask: Tensor, tgt_in: Tensor, tgt_out: Tensor, *, step: int
    ) -> LossSums:
        probability = teacher_forcing_probability(step, self.config)
        if probability >= 1.0:
            return self.loss_of(src, src_mask, tgt_in, tgt_out)
        mix = partial(choose_inputs, probability=probability, pad_id=self.pad_id)
        if self.recurrent:
            with self.autocast():
                model = cast(Seq2SeqModel, self.model)
                log_probs = step_by_step_log_probs(model, src, src_mask, tgt_in, mix)
            return label_smoothed_loss(
                log_probs, tgt_out, epsilon=self.config.label_smoothing, pad_id=self.pad_id
            )
        with self.autocast():
            mixed = two_pass_inputs(self.model, src, src_mask, tgt_in, mix)
        return self.loss_of(src, src_mask, mixed, tgt_out)

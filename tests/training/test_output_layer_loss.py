"""Training's loss for the Transformer: the output layer and the label-smoothed loss in one
chunked pass, which must give the textbook loss's values and gradients without its logits."""

import os

import pytest
import torch

import nmt.training.loss as loss_module
from nmt.training.loss import label_smoothed_loss, output_layer_loss
from nmt.training.memory import IDEEP_CACHE_ENV, ONEDNN_CACHE_ENV, limit_onednn_cache

from .test_precision import float32_loss, tiny_model_and_batches


def textbook_and_chunked(
    with_bias: bool, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(loss sums, gradients) of the logits' path and of output_layer_loss, 3 rows a chunk."""
    monkeypatch.setattr(loss_module, "CHUNK_ELEMENTS", 3 * 50)
    torch.manual_seed(0)
    hidden = torch.randn(3, 7, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    bias = torch.randn(50, requires_grad=True) if with_bias else None
    target = torch.randint(4, 50, (3, 7))
    target[0, 4:] = 0  # padding
    params = [hidden, weight] + ([bias] if bias is not None else [])
    results = []
    for chunked in (False, True):
        if chunked:
            sums = output_layer_loss(
                hidden, weight, bias, target, epsilon=0.1, pad_id=0, dtype=dtype
            )
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                logits = hidden @ weight.T if bias is None else hidden @ weight.T + bias
            sums = label_smoothed_loss(logits, target, epsilon=0.1, pad_id=0)
        grads = torch.autograd.grad(2.5 * sums.smoothed, params)
        assert sums.num_tokens == 18
        results.append([sums.smoothed.detach(), sums.nll, *grads])
    return results[0], results[1]


@pytest.mark.parametrize("with_bias", [False, True], ids=["no-bias", "bias"])
def test_chunked_loss_equals_the_textbook_loss_and_its_gradients(
    with_bias: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    textbook, chunked = textbook_and_chunked(with_bias, torch.float32, monkeypatch)
    for expected, got in zip(textbook, chunked, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_chunked_loss_under_bfloat16_stays_near_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    """bfloat16 matmuls, as autocast runs the logits' path: the same to bfloat16's precision."""
    textbook, chunked = textbook_and_chunked(True, torch.bfloat16, monkeypatch)
    for expected, got in zip(textbook, chunked, strict=True):
        scale = float(expected.abs().max())
        assert float((got - expected).abs().max()) < 0.02 * scale


def test_the_transformer_trains_alike_with_either_loss() -> None:
    """forward_loss with the model's output layer (what nmt train uses) against the logits'
    path: the same loss and gradients for every parameter, tied embeddings included."""
    model, batches = tiny_model_and_batches()
    batch = batches[1]
    gradients = []
    for output_layer in (None, model.output_layer):
        loss_of = float32_loss(model, output_layer=output_layer)
        model.zero_grad()
        torch.manual_seed(0)  # the same dropout masks
        sums = loss_of(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_out)
        sums.smoothed.backward()
        gradients.append(
            (float(sums.smoothed.detach()), [p.grad.clone() for p in model.parameters()])
        )
    (loss_a, grads_a), (loss_b, grads_b) = gradients
    assert loss_b == pytest.approx(loss_a, rel=1e-5)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_the_onednn_cache_is_capped_unless_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ONEDNN_CACHE_ENV, raising=False)
    monkeypatch.delenv(IDEEP_CACHE_ENV, raising=False)
    limit_onednn_cache()
    assert (os.environ[ONEDNN_CACHE_ENV], os.environ[IDEEP_CACHE_ENV]) == ("64", "16")
    monkeypatch.setenv(ONEDNN_CACHE_ENV, "512")
    monkeypatch.setenv(IDEEP_CACHE_ENV, "8")
    limit_onednn_cache()
    assert (os.environ[ONEDNN_CACHE_ENV], os.environ[IDEEP_CACHE_ENV]) == ("512", "8")

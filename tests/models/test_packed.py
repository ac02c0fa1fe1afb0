"""oneDNN-packed linear layers for float32 inference on the CPU: the same numbers as nn.Linear
(up to float32 rounding), and the same translations."""

import copy

import pytest
import torch
from torch import nn

from nmt.config import DecodingConfig, TransformerConfig
from nmt.data.tokenizer import EOS_ID, PAD_ID
from nmt.decoding.search import beam_search
from nmt.models import packed
from nmt.models.packed import (
    MIN_ROWS,
    MIN_WIDTH,
    PackedLinear,
    available,
    narrowest_packed,
    pack_linear_layers,
)
from nmt.models.transformer import Transformer

pytestmark = pytest.mark.skipif(not available(), reason="this PyTorch has no oneDNN")


def wide_model(
    *, num_layers: int, d_ff: int, seed: int, eos_bias: float, random_bias: bool = False
) -> Transformer:
    """A random Transformer wide enough to be packed (d_model 512, 600 pieces) with Marian's
    output bias, EOS raised so that outputs end."""
    config = TransformerConfig(
        num_layers=num_layers, d_model=512, d_ff=d_ff, num_heads=8, dropout=0.0, output_bias=True
    )
    torch.manual_seed(seed)
    model = Transformer(config, 600).eval()
    with torch.no_grad():
        assert model.output_bias is not None
        if random_bias:
            model.output_bias.normal_()
        model.output_bias[EOS_ID] = eos_bias
    return model


@pytest.mark.parametrize("rows", [1, MIN_ROWS, 37])
def test_a_packed_layer_computes_what_the_plain_one_does(rows: int) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(512, 600)
    x = torch.randn(rows, 3, 512)
    packed = PackedLinear(linear.weight, linear.bias)
    with torch.no_grad():
        torch.testing.assert_close(packed(x), linear(x), rtol=1e-4, atol=1e-4)
        ids = torch.tensor([0, 7, 599])
        torch.testing.assert_close(packed.rows(ids)(x), linear(x)[..., ids], rtol=1e-4, atol=1e-4)


def test_a_packed_transformer_searches_as_the_plain_one() -> None:
    """d_model 512 and 600 pieces (layers narrower than 512 stay plain), Marian's output bias
    folded into the packed output layer: the same beam search outputs and scores."""
    plain = wide_model(num_layers=1, d_ff=512, seed=1, eos_bias=4.0, random_bias=True)
    packed = pack_linear_layers(copy.deepcopy(plain))
    assert isinstance(packed, Transformer)
    assert packed.output_bias is None and isinstance(packed.generator, PackedLinear)
    assert packed.generator.bias is not None
    # Per layer: self-attention's q|k|v and out, feed-forward's two; the output layer.
    assert sum(isinstance(m, PackedLinear) for m in packed.modules()) == 4 + 7 + 1
    src = torch.randint(4, 600, (6, 9), generator=torch.Generator().manual_seed(0))
    src[:, -1] = EOS_ID
    mask = torch.ones_like(src, dtype=torch.bool)
    options = DecodingConfig(beam_size=4, max_len_b=12)
    expected = beam_search(plain, src, mask, options)
    got = beam_search(packed, src, mask, options)
    for a, b in zip(expected, got, strict=True):
        assert a[0].tokens == b[0].tokens
        assert b[0].score == pytest.approx(a[0].score, abs=1e-3)


def test_a_packed_model_hands_over_its_output_layer_with_the_bias_it_took_in() -> None:
    """Perplexity (nmt evaluate) applies ``output_layer()`` itself: the folded output bias must
    come with it (it did not, and an imported Marian model's perplexity was another number)."""
    plain = wide_model(num_layers=1, d_ff=512, seed=1, eos_bias=4.0, random_bias=True)
    packed = pack_linear_layers(copy.deepcopy(plain))
    assert isinstance(packed, Transformer)
    x = torch.randn(3, 512)
    logits = []
    for model in (plain, packed):
        weight, bias = model.output_layer()
        assert bias is not None
        logits.append(x @ weight.T + bias)
    torch.testing.assert_close(logits[1], logits[0])


@pytest.mark.parametrize("beam_size", [1, 4])
def test_a_packed_model_translates_alone_as_in_a_batch(beam_size: int) -> None:
    """A sentence alone (greedy: one row, the plain GEMM) and inside a batch of 16 (the packed
    one) gets the same output: the kernels differ only in float32 rounding."""
    model = pack_linear_layers(wide_model(num_layers=2, d_ff=1024, seed=3, eos_bias=5.0))
    assert isinstance(model.generator, PackedLinear)
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 15, (16,), generator=generator).tolist()
    rows = [[*torch.randint(4, 600, (n,), generator=generator).tolist(), EOS_ID] for n in lengths]
    width = max(map(len, rows))
    src = torch.tensor([row + [PAD_ID] * (width - len(row)) for row in rows])
    options = DecodingConfig(beam_size=beam_size, max_len_b=20)
    together = beam_search(model, src, src != PAD_ID, options)
    for row, found in zip(rows, together, strict=True):
        alone = beam_search(
            model, torch.tensor([row]), torch.ones(1, len(row), dtype=torch.bool), options
        )
        assert alone[0][0].tokens == found[0].tokens


@pytest.mark.parametrize(
    ("cpuinfo", "mkl", "narrowest"),
    [
        ("vendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n" * 2, True, 512),
        ("vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n" * 2, True, 1),
        ("vendor_id\t: AuthenticAMD\n", False, 512),  # another BLAS: not measured
        ("processor\t: 0\nCPU implementer\t: 0x41\n", True, 512),  # no vendor (Arm)
        ("", True, 512),  # no /proc/cpuinfo
    ],
)
def test_every_layer_is_packed_only_where_mkl_runs_on_another_vendors_cpu(
    cpuinfo: str, mkl: bool, narrowest: int
) -> None:
    assert narrowest_packed(cpuinfo, mkl=mkl) == narrowest


@pytest.mark.parametrize("narrowest", [1, MIN_WIDTH])
def test_layers_narrower_than_the_machines_width_stay_plain(
    narrowest: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """d_model 64 and 600 pieces: every layer packed where the width is 1, none at 512."""
    monkeypatch.setattr(packed, "min_width", lambda: narrowest)
    config = TransformerConfig(num_layers=1, d_model=64, d_ff=128, num_heads=4, dropout=0.0)
    model = pack_linear_layers(Transformer(config, 600).eval())
    linear = [m for m in model.modules() if isinstance(m, PackedLinear | nn.Linear)]
    assert len(linear) == 4 + 7 + 1
    assert all(isinstance(m, PackedLinear) == (narrowest == 1) for m in linear)

"""`--int8`: nmt's own model with int8 linear layers translates as float32 does, and a sentence
translates the same alone and inside any batch."""

import copy
import pickle
from pathlib import Path

import pytest
import sacrebleu
import torch
from torch import nn

from nmt.config import DecodingConfig, TransformerConfig
from nmt.data.tokenizer import EOS_ID, Tokenizer
from nmt.decoding.translator import Translator
from nmt.errors import NmtError
from nmt.models.quantize import (
    Int8Linear,
    default_kernel,
    exact_kernels,
    onednn_int8_usable,
    quantize_int8,
)
from nmt.models.transformer import Transformer


def toy_sources(toy_corpus: Path) -> list[str]:
    return [
        line
        for split in ("dev", "test")
        for line in (toy_corpus / f"{split}.en").read_text(encoding="utf-8").splitlines()
    ]


def test_int8_quantizes_every_linear_layer_the_rule_allows(
    trained_model_dir: Path, every_layer_int8: None
) -> None:
    model = Translator.load(trained_model_dir, int8=True).model
    assert isinstance(model, nn.Module)
    # Per encoder layer: q|k|v, out, w_1, w_2; per decoder layer 3 more (cross-attention); the
    # output projection.
    assert sum(isinstance(m, Int8Linear) for m in model.modules()) == 2 * 4 + 2 * 7 + 1
    assert not any(type(m) is nn.Linear for m in model.modules())


def test_int8_leaves_small_layers_in_float32() -> None:
    """Per layer, by shape only: a side of 512, or a million weights, is worth an int8 call's
    fixed cost; the quickstart's 256-wide layers are not, its 256 × 8,000 output layer is."""
    model = nn.Sequential(
        nn.Linear(256, 1024), nn.Linear(1024, 256), nn.Linear(256, 8000), nn.Linear(512, 512)
    )
    quantize_int8(model)
    assert [type(m) for m in model] == [nn.Linear, nn.Linear, Int8Linear, Int8Linear]
    everything = quantize_int8(nn.Sequential(nn.Linear(8, 4)), every_layer=True)
    assert isinstance(everything[0], Int8Linear)


# The kernels whose sums are exact on this CPU: oneDNN's and 8-bit fbgemm need VNNI.
KERNELS = pytest.mark.parametrize("kernel", exact_kernels())
NEEDS_VNNI = pytest.mark.skipif(  # oneDNN's op is exact with VNNI, if slow without AMX
    "fbgemm" not in exact_kernels() or not hasattr(torch.ops.onednn, "qlinear_pointwise"),
    reason="oneDNN's and fbgemm's 8-bit int8 kernels need a CPU with AVX-512 VNNI",
)


@KERNELS
def test_int8_linear_matches_the_textbook_formula(kernel: str) -> None:
    """Per output feature weight scales, per row input scales, exact integer sums."""
    torch.manual_seed(0)
    linear = nn.Linear(24, 10)
    x = torch.randn(3, 5, 24) * torch.tensor([0.01, 1.0, 100.0])[:, None, None]
    layer = Int8Linear(linear, kernel=kernel)
    levels = 63 if kernel == "fbgemm-7bit" else 127  # see nmt.models.quantize.KERNELS
    assert layer.input_max == levels
    w_scale = linear.weight.abs().amax(1, keepdim=True) / 127  # (out, 1)
    w_int = torch.round(linear.weight / w_scale)
    x_scale = x.abs().amax(-1, keepdim=True) / levels  # (3, 5, 1)
    x_int = torch.round(x / x_scale)
    expected = (x_int.double() @ w_int.double().T) * x_scale * w_scale.T + linear.bias
    got = layer(x)
    assert got.shape == (3, 5, 10)
    torch.testing.assert_close(got.double(), expected.detach(), rtol=1e-5, atol=1e-6)
    # Quantization error is relative to each row's own size, even for the tiny rows.
    with torch.no_grad():
        error = (got - linear(x)).abs() / x.abs().amax(-1, keepdim=True)
    assert float(error.max()) < 0.05


@KERNELS
def test_a_row_is_computed_the_same_in_any_batch(kernel: str) -> None:
    """The bug this layer fixes: with one scale for the whole input, a large neighbour (or
    padding) changed every other row's rounding."""
    torch.manual_seed(0)
    layer = Int8Linear(nn.Linear(64, 32), kernel=kernel)
    row = torch.randn(1, 64)
    neighbours = torch.cat([row, 50 * torch.randn(7, 64), torch.zeros(4, 64)])
    assert torch.equal(layer(row)[0], layer(neighbours)[0])
    many = torch.cat([neighbours, torch.randn(200, 64)])  # other kernels' paths at more rows
    assert torch.equal(layer(row)[0], layer(many)[0])


def test_without_vnni_only_fbgemm_with_a_7_bit_input_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without VNNI, int8 products are added in pairs into saturating 16-bit sums: oneDNN's
    kernel is not used, and fbgemm's gets integers that cannot overflow them."""
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: False)
    assert exact_kernels() == ["fbgemm-7bit"]
    layer = Int8Linear(nn.Linear(8, 4))
    assert layer.kernel == "fbgemm-7bit" and layer.input_max == 63
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: True)
    assert default_kernel() == ("onednn" if onednn_int8_usable() else "fbgemm")


def test_an_unknown_kernel_is_refused() -> None:
    with pytest.raises(ValueError, match="one of onednn, fbgemm, fbgemm-7bit"):
        Int8Linear(nn.Linear(8, 4), kernel="fbgem")


@NEEDS_VNNI
def test_the_two_kernels_compute_the_same_numbers() -> None:
    """oneDNN's int8 inner product and fbgemm's take the same integers and scales: the same
    floats come out, bit for bit, so on a CPU with VNNI whether a build has oneDNN's op never
    changes a translation (without VNNI, fbgemm's 7-bit input rounds differently)."""
    torch.manual_seed(0)
    for width, features in [(24, 10), (512, 2048), (2048, 512)]:
        linear = nn.Linear(width, features)
        x = torch.randn(37, width) * torch.logspace(-2, 2, 37)[:, None]
        onednn = Int8Linear(linear, kernel="onednn")(x)
        fbgemm = Int8Linear(linear, kernel="fbgemm")(x)
        assert torch.equal(onednn, fbgemm), float((onednn - fbgemm).abs().max())


@NEEDS_VNNI
@pytest.mark.parametrize("amx", [False, True])
def test_onednn_takes_signed_input_on_amx_and_unsigned_without(
    amx: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With VNNI but no AMX (an AMD EPYC) oneDNN ran signed int8 input on its reference kernel,
    ~100x slower; there the input goes as unsigned bytes with zero point 128 (its VNNI kernel).
    Either way the numbers are fbgemm's, one row (padded with a zero row) or many."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    torch.manual_seed(0)
    linear = nn.Linear(512, 300)
    layer = Int8Linear(linear, kernel="onednn")
    assert layer.unsigned_input == (not amx)
    x = torch.randn(37, 512) * torch.logspace(-2, 2, 37)[:, None]
    for rows in (x[:1], x):
        assert torch.equal(layer(rows), Int8Linear(linear, kernel="fbgemm")(rows))


@KERNELS
def test_a_shortlist_of_an_int8_layer_keeps_its_numbers(kernel: str) -> None:
    """``rows`` (a vocabulary shortlist's cut) packs the same int8 weights and scales anew: the
    logits of the kept features are exactly the full layer's."""
    torch.manual_seed(0)
    layer = Int8Linear(nn.Linear(64, 300), kernel=kernel)
    features = torch.tensor([0, 3, 4, 150, 299])
    x = torch.randn(6, 64)
    cut = layer.rows(features)
    assert (cut.out_features, cut.kernel) == (5, kernel)
    assert torch.equal(cut(x), layer(x)[:, features])


@KERNELS
def test_an_int8_layer_survives_pickling(kernel: str) -> None:
    """As it is sent to a model process (nmt.decoding.processes): its packed weight is rebuilt
    from the int8 values, which give the same outputs."""
    torch.manual_seed(0)
    layer = Int8Linear(nn.Linear(64, 32), kernel=kernel)
    x = torch.randn(5, 64)
    again = pickle.loads(pickle.dumps(layer))
    assert again.kernel == kernel and torch.equal(again(x), layer(x))


def test_int8_outputs_stay_close_to_float32(
    trained_model_dir: Path, toy_corpus: Path, every_layer_int8: None
) -> None:
    """Almost every output identical, and BLEU not lower by more than about one sentence's worth.

    The issue's bar, BLEU within 0.5, needs a real test set: on these 100 toy sentences one
    changed output moves BLEU by 0.7 to 0.9 (measured), so this test bounds the loss at 1.5 and
    benchmarks/engines.py measures the 0.5 on the 1,000 sentences of data/de-en/test.
    """
    sources = toy_sources(toy_corpus)
    references = [
        line
        for split in ("dev", "test")
        for line in (toy_corpus / f"{split}.de").read_text(encoding="utf-8").splitlines()
    ]
    options = DecodingConfig(beam_size=4)
    float32 = Translator.load(trained_model_dir).translate(sources, options)
    int8 = Translator.load(trained_model_dir, int8=True).translate(sources, options)
    assert sum(a == b for a, b in zip(float32, int8, strict=True)) >= 0.95 * len(sources)
    bleu_float32 = sacrebleu.corpus_bleu(float32, [references]).score
    bleu_int8 = sacrebleu.corpus_bleu(int8, [references]).score
    assert bleu_int8 >= bleu_float32 - 1.5


def test_int8_log_probs_are_close_but_not_equal(
    trained_model_dir: Path, every_layer_int8: None
) -> None:
    """Quantization changes the numbers (else nothing was quantized), by little."""
    float32 = Translator.load(trained_model_dir).model
    int8 = Translator.load(trained_model_dir, int8=True).model
    src = torch.tensor([[5, 9, 12, 20, float32.eos_id]])
    tgt_in = torch.tensor([[float32.bos_id, 7, 39, 14]])
    with torch.no_grad():
        a = float32.forward(src, src != 0, tgt_in).log_softmax(-1)
        b = int8.forward(src, src != 0, tgt_in).log_softmax(-1)
    gap = float((a - b).abs().max())
    assert 0 < gap < 0.5


def assert_batch_independent(translator: Translator, sources: list[str]) -> None:
    """Every sentence's beam-4 translation alone equals its translation in the batch of all
    (sorted by length into batches by the Translator, padded to their longest)."""
    options = DecodingConfig(beam_size=4)
    together = translator.translate(sources, options)
    alone = [translator.translate([source], options)[0] for source in sources]
    differ = [i for i, (a, b) in enumerate(zip(alone, together, strict=True)) if a != b]
    assert not differ, f"{len(differ)} of {len(sources)} differ, e.g. {sources[differ[0]]!r}"


@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_trained_model_translates_alone_as_in_a_batch(
    trained_model_dir: Path, toy_corpus: Path, int8: bool, every_layer_int8: None
) -> None:
    translator = Translator.load(trained_model_dir, int8=int8)
    assert_batch_independent(translator, toy_sources(toy_corpus)[:40])


def eos_biased_random_model(vocab_size: int) -> Transformer:
    """A random Transformer (d_model 128, 3 + 3 layers, swish, Marian's output bias) whose EOS
    logit is raised so that outputs end after a few to a few dozen pieces, as a trained model's
    do, instead of running to the length limit; its large random weights give activations of
    very different sizes from row to row, which is what a shared int8 scale gets wrong."""
    config = TransformerConfig(
        num_layers=3, d_model=128, d_ff=512, num_heads=4, dropout=0.0, activation="swish",
        output_bias=True, max_positions=96,
    )  # fmt: skip
    torch.manual_seed(3)
    model = Transformer(config, vocab_size)
    with torch.no_grad():
        assert model.output_bias is not None
        model.output_bias[EOS_ID] = 6.0
    return model.eval()


@pytest.mark.parametrize("kernel", [None, *exact_kernels()], ids=["float32", *exact_kernels()])
def test_random_model_translates_alone_as_in_a_batch(
    toy_tokenizer: Tokenizer, toy_corpus: Path, kernel: str | None
) -> None:
    model = eos_biased_random_model(toy_tokenizer.vocab_size)
    translator = Translator(
        quantize_int8(model, kernel=kernel, every_layer=True) if kernel else model, toy_tokenizer
    )
    sources = toy_sources(toy_corpus)[:24]
    outputs = translator.translate(sources, DecodingConfig(beam_size=4))
    lengths = sorted(len(toy_tokenizer.encode(out)) for out in outputs)
    # The bias does its job: outputs end, at lengths that differ (not at the limit, not empty).
    assert 2 <= lengths[len(lengths) // 2] < 40 and lengths[0] < lengths[-1]
    assert_batch_independent(translator, sources)


def test_int8_is_refused_off_the_cpu(trained_model_dir: Path) -> None:
    """Reached on a machine without a GPU too: the model sits on the meta device, which is not
    the CPU either."""
    model = Translator.load(trained_model_dir).model
    assert isinstance(model, nn.Module)
    with pytest.raises(NmtError, match="CPU only"):
        quantize_int8(model.to("meta"))


def test_the_output_bias_is_folded_into_the_int8_output_layer(toy_tokenizer: Tokenizer) -> None:
    """Marian's separate output bias is added inside the int8 output layer (one pass over the
    logits), and the model's own attribute dropped: the same logits, to int8's precision."""
    model = eos_biased_random_model(toy_tokenizer.vocab_size)
    src = torch.tensor([[5, 9, 12, 20, EOS_ID]])
    tgt_in = torch.tensor([[model.bos_id, 7, 39, 14]])
    with torch.no_grad():
        expected = model(src, src != 0, tgt_in)
        quantized = quantize_int8(copy.deepcopy(model), every_layer=True)
        got = quantized(src, src != 0, tgt_in)
    assert quantized.output_bias is None
    assert isinstance(quantized.generator, Int8Linear) and quantized.generator.bias is not None
    assert float((got - expected).abs().max()) < 0.5  # the EOS bias alone is 6

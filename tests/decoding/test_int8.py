"""`--int8`: nmt's own model with dynamically quantized linear layers translates as float32 does."""

from pathlib import Path

import pytest
import sacrebleu
import torch
from torch import nn

from nmt.config import DecodingConfig
from nmt.decoding.engines import load_translator
from nmt.errors import NmtError


def test_int8_quantizes_every_linear_layer(trained_model_dir: Path) -> None:
    translator = load_translator([trained_model_dir], int8=True)
    model = translator.model
    assert isinstance(model, nn.Module)
    quantized = torch.ao.nn.quantized.dynamic.Linear
    # Per encoder layer: q|k|v, out, w_1, w_2; per decoder layer 3 more (cross-attention); the
    # output projection.
    assert sum(isinstance(m, quantized) for m in model.modules()) == 2 * 4 + 2 * 7 + 1
    assert not any(type(m) is nn.Linear for m in model.modules())


def test_int8_outputs_stay_close_to_float32(trained_model_dir: Path, toy_corpus: Path) -> None:
    """Almost every output identical, and BLEU not lower by more than about one sentence's worth.

    The issue's bar, BLEU within 0.5, needs a real test set: on these 100 toy sentences one
    changed output moves BLEU by 0.7 to 0.9 (measured), so this test bounds the loss at 1.5 and
    benchmarks/engines.py measures the 0.5 on the 1,000 sentences of data/de-en/test.
    """
    sources, references = [], []
    for split in ("dev", "test"):
        sources += (toy_corpus / f"{split}.en").read_text(encoding="utf-8").splitlines()
        references += (toy_corpus / f"{split}.de").read_text(encoding="utf-8").splitlines()
    options = DecodingConfig(beam_size=4)
    float32 = load_translator([trained_model_dir]).translate(sources, options)
    int8 = load_translator([trained_model_dir], int8=True).translate(sources, options)
    assert sum(a == b for a, b in zip(float32, int8, strict=True)) >= 0.95 * len(sources)
    bleu_float32 = sacrebleu.corpus_bleu(float32, [references]).score
    bleu_int8 = sacrebleu.corpus_bleu(int8, [references]).score
    assert bleu_int8 >= bleu_float32 - 1.5


def test_int8_log_probs_are_close_but_not_equal(trained_model_dir: Path) -> None:
    """Quantization changes the numbers (else nothing was quantized), by little."""
    float32 = load_translator([trained_model_dir])
    int8 = load_translator([trained_model_dir], int8=True)
    src = torch.tensor([[5, 9, 12, 20, float32.model.eos_id]])
    tgt_in = torch.tensor([[float32.model.bos_id, 7, 39, 14]])
    with torch.no_grad():
        a = float32.model(src, src != 0, tgt_in).log_softmax(-1)
        b = int8.model(src, src != 0, tgt_in).log_softmax(-1)
    gap = float((a - b).abs().max())
    assert 0 < gap < 0.5


def test_int8_is_refused_on_a_gpu(trained_model_dir: Path) -> None:
    if not torch.cuda.is_available():
        with pytest.raises(NmtError, match="cuda"):
            load_translator([trained_model_dir], int8=True, device="cuda")
    else:
        with pytest.raises(NmtError, match="CPU only"):
            load_translator([trained_model_dir], int8=True, device="cuda")

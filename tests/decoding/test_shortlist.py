"""The vocabulary shortlist: co-occurrence lists that cover a word-for-word language's targets,
an output layer restricted to them, and the search's exact fallback."""

import shutil
from pathlib import Path

import pytest
import torch

from nmt.config import DecodingConfig, TransformerConfig
from nmt.data.tokenizer import EOS_ID, PAD_ID, Tokenizer
from nmt.decoding.shortlist import Shortlist, build_for_model
from nmt.decoding.translator import Translator
from nmt.errors import NmtError
from nmt.models.interface import EncodeOptions
from nmt.models.quantize import quantize_int8
from nmt.models.transformer import Transformer


def test_each_source_piece_lists_its_translation_first() -> None:
    # A word-for-word language: source 10 + i translates to target 30 + i; 5 is in every target.
    pairs = [([10, 11], [30, 31, 5]), ([10, 12], [30, 32, 5]), ([11, 12], [31, 32, 5])] * 3
    shortlist = Shortlist.build(pairs, 40, per_source=2, frequent=0, always=[EOS_ID])
    # p(t | s) = 1 for its own translation and for 5; below 1 for the others.
    assert set(shortlist.per_source[10].tolist()) == {30, 5}
    assert set(shortlist.per_source[12].tolist()) == {32, 5}
    assert shortlist.per_source[13].tolist() == [-1, -1]  # never seen
    candidates = shortlist.candidates(torch.tensor([[10, 11, PAD_ID]]), pad_id=PAD_ID)
    assert candidates.tolist() == sorted({EOS_ID, 5, 30, 31})
    assert Shortlist.covers(candidates, torch.tensor([31, 30, EOS_ID]))
    assert not Shortlist.covers(candidates, torch.tensor([30, 32]))  # 32: full vocabulary then


def test_built_from_the_toy_corpus_it_covers_the_test_references(
    toy_corpus: Path, toy_tokenizer: Tokenizer, tmp_path: Path
) -> None:
    """Every reference piece of the held-out test set is in its source's shortlist, which is a
    fraction of the vocabulary; the list survives a save and load."""

    def pairs(split: str) -> list[tuple[list[int], list[int]]]:
        src = (toy_corpus / f"{split}.en").read_text(encoding="utf-8").splitlines()
        tgt = (toy_corpus / f"{split}.de").read_text(encoding="utf-8").splitlines()
        return [
            (toy_tokenizer.encode(s), toy_tokenizer.encode(t))
            for s, t in zip(src, tgt, strict=True)
        ]

    vocab = toy_tokenizer.vocab_size
    built = Shortlist.build(pairs("train"), vocab, per_source=8, frequent=4, always=[EOS_ID])
    built.save(tmp_path / "shortlist.safetensors")
    shortlist = Shortlist.load(tmp_path / "shortlist.safetensors")
    assert torch.equal(shortlist.per_source, built.per_source)
    sizes = []
    for src, tgt in pairs("test"):
        candidates = shortlist.candidates(torch.tensor([src]))
        assert Shortlist.covers(candidates, torch.tensor([*tgt, EOS_ID])), (src, tgt)
        sizes.append(candidates.numel())
    assert max(sizes) < vocab


# -- the shortlist in the model and in search ---------------------------------------------------


def small_transformer(vocab_size: int) -> Transformer:
    config = TransformerConfig(
        num_layers=2, d_model=32, d_ff=64, num_heads=4, dropout=0.0, output_bias=True
    )
    torch.manual_seed(0)
    model = Transformer(config, vocab_size).eval()
    with torch.no_grad():
        assert model.output_bias is not None
        model.output_bias.normal_()
    return model


@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_a_restricted_output_layer_renormalises_over_the_listed_pieces(int8: bool) -> None:
    """The listed pieces get the full layer's logits renormalised among themselves (bias
    included), every other piece -inf, in float32 and with int8 layers alike."""
    model = small_transformer(40)
    if int8:
        model = quantize_int8(model, every_layer=True)
    src = torch.tensor([[5, 9, 12, EOS_ID], [7, 8, EOS_ID, PAD_ID]])
    mask = src != PAD_ID
    vocabulary = torch.tensor([EOS_ID, 4, 9, 17, 33])
    bos = torch.full((2,), model.bos_id)
    with torch.inference_mode():
        full, _ = model.decode_step(bos, model.encode(src, mask))
        state = model.encode(src, mask, EncodeOptions(vocabulary=vocabulary))
        restricted, _ = model.decode_step(bos, state)
    outside = torch.ones(40, dtype=torch.bool)
    outside[vocabulary] = False
    assert restricted[:, outside].isneginf().all()
    torch.testing.assert_close(restricted[:, vocabulary], full[:, vocabulary].log_softmax(-1))


@pytest.fixture
def listed_model_dir(trained_model_dir: Path, toy_corpus: Path, tmp_path: Path) -> Path:
    """A copy of the trained test model with a small shortlist built beside it."""
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    build_for_model(model_dir, toy_corpus, per_source=2, frequent=3)
    return model_dir


def test_translations_use_listed_pieces_only_and_a_forced_piece_falls_back(
    listed_model_dir: Path, toy_corpus: Path
) -> None:
    full = Translator.load(listed_model_dir)
    listed = Translator.load(listed_model_dir, shortlist=True)
    assert listed.shortlist is not None
    sources = (toy_corpus / "test.en").read_text(encoding="utf-8").splitlines()[:12]
    options = DecodingConfig(beam_size=4)
    for source in sources:
        ids = torch.tensor([listed.tokenizer.encode(source)])
        allowed = set(listed.shortlist.candidates(ids).tolist())
        assert len(allowed) < listed.tokenizer.vocab_size // 2
        best = listed.translate_nbest([source], options)[0][0]
        assert set(best.tokens) <= allowed, source
    # A prefix whose pieces the list lacks: that batch is searched over the full vocabulary,
    # exactly as without a shortlist (restricted, the forced piece would score -inf).
    source, prefix = sources[0], "zz qq"
    ids = torch.tensor([listed.tokenizer.encode(source)])
    forced = listed.tokenizer.encode_target(prefix)
    assert not Shortlist.covers(listed.shortlist.candidates(ids), torch.tensor(forced))
    with_prefix = options.updated(prefix=prefix)
    expected = full.translate_nbest([source], with_prefix)[0][0]
    got = listed.translate_nbest([source], with_prefix)[0][0]
    assert got.tokens == expected.tokens and got.score == pytest.approx(expected.score)


def test_a_missing_shortlist_or_another_engine_is_a_clear_error(
    trained_model_dir: Path, listed_model_dir: Path
) -> None:
    with pytest.raises(NmtError, match="no shortlist; build it with: nmt shortlist"):
        Translator.load(trained_model_dir, shortlist=True)
    with pytest.raises(NmtError, match="nmt engine only"):
        Translator.load(listed_model_dir, engine="ctranslate2", shortlist=True)
    with pytest.raises(NmtError, match=r"train\.en: no such file"):
        build_for_model(listed_model_dir, listed_model_dir)

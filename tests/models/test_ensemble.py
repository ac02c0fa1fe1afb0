"""Ensembles: the mean of the members' probabilities, through the model contract, the
Translator and the command line."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from nmt.cli import main
from nmt.config import Config, DataConfig, DecodingConfig, RNNConfig, TransformerConfig
from nmt.data.tokenizer import Tokenizer
from nmt.decoding.search import beam_search, generate
from nmt.decoding.translator import Translator
from nmt.errors import NmtError
from nmt.models.build import build_model
from nmt.models.ensemble import Ensemble, load_models, mean_of_probabilities
from nmt.models.interface import EncodeOptions, TranslationModel
from nmt.models.store import write_model_dir

TRANSFORMER = TransformerConfig(num_layers=1, d_model=16, d_ff=32, num_heads=2, max_positions=40)
GRU = RNNConfig(cell="gru", embed_dim=8, hidden_size=16, attention="dot", input_feeding=True)
SENTENCES = ["the big cat sees a dog", "a small red house", "the tree"]


@pytest.fixture(scope="module")
def tokenizer_path(toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ensemble-tok") / "tokenizer.model"
    Tokenizer.train([toy_corpus / "train.en", toy_corpus / "train.de"], path, vocab_size=60)
    return path


def random_model(
    config: TransformerConfig | RNNConfig, vocab_size: int, seed: int
) -> TranslationModel:
    torch.manual_seed(seed)
    model = build_model(config, vocab_size)
    # Random weights are near-uniform; a larger output scale gives peaked, differing members.
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(3.0)
    return model.eval()


def write_dir(
    folder: Path,
    model: TranslationModel,
    config: TransformerConfig | RNNConfig,
    tokenizer_path: Path,
) -> Path:
    write_model_dir(
        folder,
        config=Config(data=DataConfig(max_len=16), model=config),
        tokenizer_path=tokenizer_path,
        model=model,
    )
    return folder


def batch(tokenizer: Tokenizer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """src, src_mask and a teacher-forcing tgt_in for SENTENCES."""
    rows = [[*ids, tokenizer.eos_id] for ids in tokenizer.encode_batch(SENTENCES)]
    width = max(map(len, rows))
    src = torch.tensor([r + [tokenizer.pad_id] * (width - len(r)) for r in rows])
    src_mask = src != tokenizer.pad_id
    tgt_in = torch.cat([torch.full((len(rows), 1), tokenizer.bos_id), src[:, :-1]], dim=1)
    return src, src_mask, tgt_in


def step_log_probs(
    model: TranslationModel, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor
) -> torch.Tensor:
    """(B, T, V) log-probabilities of decode_step fed ``tgt_in`` one token at a time."""
    state = model.encode(src, src_mask)
    out = []
    for t in range(tgt_in.size(1)):
        log_probs, state = model.decode_step(tgt_in[:, t], state)
        out.append(log_probs)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("config", [TRANSFORMER, GRU], ids=["transformer", "gru"])
def test_log_probs_are_log_of_mean_probabilities(
    config: TransformerConfig | RNNConfig, tokenizer_path: Path
) -> None:
    tokenizer = Tokenizer.load(tokenizer_path)
    a, b = (random_model(config, tokenizer.vocab_size, seed) for seed in (1, 2))
    src, src_mask, tgt_in = batch(tokenizer)
    with torch.no_grad():
        got = step_log_probs(Ensemble([a, b]), src, src_mask, tgt_in)
        p_a = step_log_probs(a, src, src_mask, tgt_in).exp()
        p_b = step_log_probs(b, src, src_mask, tgt_in).exp()
        teacher_forced = Ensemble([a, b])(src, src_mask, tgt_in)
    expected = ((p_a + p_b) / 2).log()  # written out: the mean of the two distributions
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(teacher_forced, expected, atol=1e-4, rtol=1e-4)
    # The two members differ, so a mean of log-probabilities (a renormalised geometric mean,
    # or not normalised at all) would be far from it: this test tells them apart.
    mean_of_logs = (p_a.log() + p_b.log()) / 2
    assert (got - mean_of_logs).abs().max() > 0.1
    assert (got - mean_of_logs.log_softmax(-1)).abs().max() > 0.01
    assert torch.allclose(got.exp().sum(-1), torch.ones(()), atol=1e-5)  # a distribution


def test_mean_of_probabilities_by_hand() -> None:
    log_p = [torch.tensor([0.9, 0.1]).log(), torch.tensor([0.5, 0.5]).log()]
    torch.testing.assert_close(mean_of_probabilities(log_p), torch.tensor([0.7, 0.3]).log())


@pytest.mark.parametrize("config", [TRANSFORMER, GRU], ids=["transformer", "gru"])
def test_ensemble_of_one_and_of_a_model_with_itself_equal_the_model(
    config: TransformerConfig | RNNConfig, tokenizer_path: Path
) -> None:
    tokenizer = Tokenizer.load(tokenizer_path)
    model = random_model(config, tokenizer.vocab_size, seed=3)
    src, src_mask, tgt_in = batch(tokenizer)
    options = DecodingConfig(beam_size=3, nbest=2, max_len_b=10)
    with torch.no_grad():
        alone = step_log_probs(model, src, src_mask, tgt_in)
        for ensemble in (Ensemble([model]), Ensemble([model, model])):
            torch.testing.assert_close(step_log_probs(ensemble, src, src_mask, tgt_in), alone)
            expected = beam_search(model, src, src_mask, options)
            found = beam_search(ensemble, src, src_mask, options)
            assert [[h.tokens for h in hs] for hs in found] == [
                [h.tokens for h in hs] for hs in expected
            ]
            for hs, es in zip(found, expected, strict=True):
                for h, e in zip(hs, es, strict=True):
                    assert math.isclose(h.score, e.score, rel_tol=1e-5, abs_tol=1e-5)
            greedy = generate(ensemble, src, src_mask, lambda lp: lp.argmax(-1), options)
            alone_greedy = generate(model, src, src_mask, lambda lp: lp.argmax(-1), options)
            assert [h.tokens for h in greedy] == [h.tokens for h in alone_greedy]


def test_attention_is_the_first_members(tokenizer_path: Path) -> None:
    tokenizer = Tokenizer.load(tokenizer_path)
    a, b = (random_model(TRANSFORMER, tokenizer.vocab_size, seed) for seed in (1, 2))
    src, src_mask, tgt_in = batch(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(
            Ensemble([a, b]).cross_attention(src, src_mask, tgt_in),
            a.cross_attention(src, src_mask, tgt_in),
        )
        state = Ensemble([a, b]).encode(src, src_mask, EncodeOptions(record_attention=True))
        _, state = Ensemble([a, b]).decode_step(tgt_in[:, 0], state)
        state = state.select(torch.tensor([2, 0]))
        alone = a.encode(src, src_mask, EncodeOptions(record_attention=True))
        _, alone = a.decode_step(tgt_in[:, 0], alone)
        alone = alone.select(torch.tensor([2, 0]))
    assert state.attention is not None and alone.attention is not None
    torch.testing.assert_close(state.attention, alone.attention)


def test_decode_step_gives_logits_when_asked_and_an_ensemble_its_log_probabilities(
    tokenizer_path: Path,
) -> None:
    """What search's repetition penalty reads (EncodeOptions.logits, CTranslate2's rule)."""
    tokenizer = Tokenizer.load(tokenizer_path)
    src, src_mask, tgt_in = batch(tokenizer)
    models = [random_model(config, tokenizer.vocab_size, 1) for config in (TRANSFORMER, GRU)]
    for model in [*models, Ensemble(models)]:
        with torch.no_grad():
            log_probs, _ = model.decode_step(tgt_in[:, 0], model.encode(src, src_mask))
            asked = model.encode(src, src_mask, EncodeOptions(logits=True))
            logits, asked = model.decode_step(tgt_in[:, 0], asked)
            # The state keeps the choice through select and the next step.
            later, _ = model.decode_step(tgt_in[:, 1], asked.select(torch.tensor([0, 1, 2])))
        torch.testing.assert_close(logits.log_softmax(-1), log_probs)
        normalised = torch.allclose(logits.logsumexp(-1), torch.zeros(len(SENTENCES)), atol=1e-5)
        later_normalised = torch.allclose(later.logsumexp(-1), torch.zeros(3), atol=1e-5)
        has_logits = not isinstance(model, Ensemble)
        assert normalised != has_logits and later_normalised != has_logits


def test_different_special_ids_are_refused(tokenizer_path: Path) -> None:
    vocab = Tokenizer.load(tokenizer_path).vocab_size
    a = build_model(TRANSFORMER, vocab)
    b = build_model(TRANSFORMER.model_copy(update={"eos_id": 5}), vocab)
    with pytest.raises(NmtError, match="special ids"):
        Ensemble([a, b])


def test_translator_loads_an_ensemble(tokenizer_path: Path, tmp_path: Path) -> None:
    vocab = Tokenizer.load(tokenizer_path).vocab_size
    a = write_dir(tmp_path / "a", random_model(TRANSFORMER, vocab, 1), TRANSFORMER, tokenizer_path)
    small = TRANSFORMER.model_copy(update={"max_positions": 20})
    b = write_dir(tmp_path / "b", random_model(small, vocab, 2), small, tokenizer_path)
    c = write_dir(tmp_path / "c", random_model(GRU, vocab, 4), GRU, tokenizer_path)
    loaded = load_models([a, b, c])
    assert isinstance(loaded.model, Ensemble) and len(loaded.model.members) == 3
    assert loaded.config.model.max_positions == 20  # the smallest member's limit
    assert not isinstance(load_models([a]).model, Ensemble)  # one directory: the model itself

    options = DecodingConfig(beam_size=2, max_len_b=8)
    together = Translator.load([a, b, c]).translate(SENTENCES, options)
    assert Translator.load([a]).translate(SENTENCES, options) == Translator.load(a).translate(
        SENTENCES, options
    )
    ensemble = Ensemble([load_models(p).model for p in (a, b, c)]).eval()
    by_hand = Translator(ensemble, Tokenizer.load(tokenizer_path), max_positions=20)
    assert together == by_hand.translate(SENTENCES, options)


def test_members_must_share_the_tokenizer(
    tokenizer_path: Path, toy_corpus: Path, tmp_path: Path
) -> None:
    vocab = Tokenizer.load(tokenizer_path).vocab_size
    a = write_dir(tmp_path / "a", random_model(TRANSFORMER, vocab, 1), TRANSFORMER, tokenizer_path)
    other_tok = tmp_path / "other" / "tokenizer.model"
    other_tok.parent.mkdir()
    Tokenizer.train([toy_corpus / "train.de"], other_tok, vocab_size=50)
    other_vocab = Tokenizer.load(other_tok).vocab_size
    b = write_dir(tmp_path / "b", random_model(TRANSFORMER, other_vocab, 2), TRANSFORMER, other_tok)
    with pytest.raises(NmtError, match="tokenizer differs"):
        Translator.load([a, b])
    # The same vocabulary size is not enough: the files must be the same.
    shutil.copyfile(other_tok, a / "tokenizer.model")
    with pytest.raises(NmtError, match="tokenizer differs"):
        load_models(
            [
                a,
                write_dir(
                    tmp_path / "c", random_model(TRANSFORMER, vocab, 3), TRANSFORMER, tokenizer_path
                ),
            ]
        )


def test_cli_translate_and_evaluate_an_ensemble(
    tokenizer_path: Path, toy_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vocab = Tokenizer.load(tokenizer_path).vocab_size
    a = write_dir(tmp_path / "a", random_model(TRANSFORMER, vocab, 1), TRANSFORMER, tokenizer_path)
    b = write_dir(tmp_path / "b", random_model(GRU, vocab, 4), GRU, tokenizer_path)
    source = tmp_path / "src.txt"
    source.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    flags = ["--beam-size", "2", "--max-len-b", "8"]
    assert main(["translate", str(a), str(b), "-i", str(source), "-o", str(out), "-q", *flags]) == 0
    expected = Translator.load([a, b]).translate(
        SENTENCES, DecodingConfig(beam_size=2, max_len_b=8)
    )
    assert out.read_text(encoding="utf-8").splitlines() == expected

    hyp = tmp_path / "hyp.txt"
    args = [
        "evaluate",
        str(a),
        str(b),
        "--src",
        str(source),
        "--ref",
        str(source),
        "--hyp",
        str(hyp),
    ]
    assert main([*args, *flags]) == 0
    assert hyp.read_text(encoding="utf-8").splitlines() == expected
    assert "perplexity of the references" in capsys.readouterr().out

    assert main(["translate", str(a), str(b), "--engine", "ctranslate2", "-i", str(source)]) == 1
    assert "ensembles: --engine nmt" in capsys.readouterr().err

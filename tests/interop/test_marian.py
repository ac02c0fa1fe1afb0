"""Hugging Face Marian (OPUS-MT) import and export, checked against transformers itself.

No download: the Marian model is a small MarianMTModel that transformers trains here for a few
dozen steps on the toy corpus (so that its outputs depend on its input and end by themselves),
with SentencePiece models trained here and a Marian-style vocab.json (EOS 0, UNK 1, the pieces
of both languages, two >>lang<< tokens, PAD = decoder start = V − 1).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sentencepiece as spm
import torch
from safetensors.torch import load_file, save_file

from nmt.cli import main
from nmt.config import Config, DecodingConfig, config_from_dict
from nmt.data.tokenizer import PairTokenizer, Tokenizer
from nmt.decoding.translator import Translator
from nmt.errors import NmtError
from nmt.interop import marian
from nmt.interop.marian import export_marian, import_marian
from nmt.models.build import build_model
from nmt.models.store import load_model_dir, write_model_dir

transformers = pytest.importorskip("transformers")
MarianConfig = transformers.MarianConfig
MarianMTModel = transformers.MarianMTModel
MarianTokenizer = transformers.MarianTokenizer

SENTENCES = [
    "the cat sees a dog",
    "big red tree",
    "a small house runs",
    "the green dog eats the blue cat",
    "tree",
    "the red house sees a small green tree",
    ">>deu<< the dog runs",
    "a Ж cat",  # a character neither SentencePiece model knows
]
TARGETS = ["die katze sieht", "baum", "ein kleines haus", "der hund", "baum", "das", "hund", "x"]


def _train_spm(text: Path, prefix: Path) -> Path:
    spm.SentencePieceTrainer.Train(
        input=str(text),
        model_prefix=str(prefix),
        model_type="unigram",  # as OPUS-MT's
        vocab_size=40,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    return prefix.with_suffix(".model").rename(prefix.with_suffix(".spm"))


def _marian_vocab(*models: Path) -> dict[str, int]:
    """Marian's layout: </s> 0, <unk> 1, both models' pieces, language tokens, <pad> last."""
    vocab = {"</s>": 0, "<unk>": 1}
    for path in models:
        processor = spm.SentencePieceProcessor()
        processor.Load(str(path))
        for i in range(processor.GetPieceSize()):
            if not (processor.IsControl(i) or processor.IsUnknown(i)):
                vocab.setdefault(processor.IdToPiece(i), len(vocab))
    for piece in (">>deu<<", ">>nld<<", "<pad>"):
        vocab[piece] = len(vocab)
    return vocab


@pytest.fixture(scope="session")
def marian_dir(toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face Marian folder as save_pretrained writes it, safetensors weights."""
    folder = tmp_path_factory.mktemp("marian")
    source = _train_spm(toy_corpus / "train.en", folder / "source")
    target = _train_spm(toy_corpus / "train.de", folder / "target")
    vocab = _marian_vocab(source, target)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"source_lang": "en", "target_lang": "de"}), encoding="utf-8"
    )
    size = len(vocab)
    config = MarianConfig(
        vocab_size=size,
        d_model=32,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        activation_function="swish",
        max_position_embeddings=64,
        scale_embedding=True,
        pad_token_id=size - 1,
        eos_token_id=0,
        decoder_start_token_id=size - 1,
        forced_eos_token_id=0,
        dropout=0.0,
    )
    torch.manual_seed(0)
    model = MarianMTModel(config)
    with torch.no_grad():
        model.final_logits_bias.normal_(0.0, 1.0)  # a buffer: training leaves it as it is
    tokenizer = MarianTokenizer(
        str(folder / "source.spm"), str(folder / "target.spm"), str(folder / "vocab.json")
    )
    src = (toy_corpus / "train.en").read_text(encoding="utf-8").splitlines()
    tgt = (toy_corpus / "train.de").read_text(encoding="utf-8").splitlines()
    with one_thread():
        _train(model, tokenizer, src, tgt, steps=60)
    model.eval().save_pretrained(folder, safe_serialization=True)
    return folder


@contextmanager
def one_thread() -> Iterator[None]:
    """Matrices this small gain nothing from threads, and lose much on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _train(model: Any, tokenizer: Any, src: list[str], tgt: list[str], *, steps: int) -> None:
    """A few Adam steps of transformers' own training on the toy corpus."""
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    generator = torch.Generator().manual_seed(0)
    pad = model.config.pad_token_id
    for _ in range(steps):
        rows = torch.randint(len(src), (32,), generator=generator).tolist()
        batch = tokenizer(
            [src[i] for i in rows],
            text_target=[tgt[i] for i in rows],
            return_tensors="pt",
            padding=True,
        )
        labels = batch.pop("labels")
        labels = labels.masked_fill(labels == pad, -100)  # no loss on padding
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.fixture(scope="session")
def hf_model(marian_dir: Path) -> Any:
    return MarianMTModel.from_pretrained(marian_dir).eval()


@pytest.fixture(scope="session")
def hf_tokenizer(marian_dir: Path) -> Any:
    return MarianTokenizer.from_pretrained(marian_dir)


@pytest.fixture(scope="session")
def imported_dir(marian_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("imported") / "model"
    import_marian(marian_dir, out)
    return out


# -- what transformers computes, and what nmt does -----------------------------------------------


def hf_log_probs(
    model: Any, tokenizer: Any, sources: list[str], targets: list[str]
) -> torch.Tensor:
    """Teacher-forced log-probabilities (B, T, V) of MarianMTModel, decoder start first."""
    batch = tokenizer(sources, text_target=targets, return_tensors="pt", padding=True)
    labels = batch.pop("labels")
    start = torch.full_like(labels[:, :1], model.config.decoder_start_token_id)
    with torch.no_grad():
        logits = model(**batch, decoder_input_ids=torch.cat([start, labels[:, :-1]], 1)).logits
    return logits.log_softmax(-1)


def nmt_log_probs(model_dir: Path, sources: list[str], targets: list[str]) -> torch.Tensor:
    """The same from an nmt model directory, built with nmt's own tokenizer and ids."""
    loaded = load_model_dir(model_dir)
    tok, model = loaded.tokenizer, loaded.model
    src_rows = [[*ids, model.eos_id] for ids in tok.encode_batch(sources)]
    tgt_rows = [[model.bos_id, *ids] for ids in tok.encode_target_batch(targets)]
    src = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(r) for r in src_rows], batch_first=True, padding_value=model.pad_id
    )
    tgt_in = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(r) for r in tgt_rows], batch_first=True, padding_value=model.pad_id
    )
    with torch.no_grad():
        return model(src, src != model.pad_id, tgt_in).log_softmax(-1)


def assert_log_probs_match(
    model_dir: Path, hf: Any, hf_tok: Any, *, with_language_code: bool = True
) -> None:
    """Teacher-forced log-probs of every real target position within 1e-4 of transformers'.

    A nmt-trained model's joint tokenizer reads a leading ">>deu<<" as text, where
    MarianTokenizer takes it for a language code: such sources are left out for those.
    """
    pairs = [
        (s, t)
        for s, t in zip(SENTENCES, TARGETS, strict=True)
        if with_language_code or not s.startswith(">>")
    ]
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    theirs = hf_log_probs(hf, hf_tok, sources, targets)
    ours = nmt_log_probs(model_dir, sources, targets)
    labels = hf_tok(text_target=targets, return_tensors="pt", padding=True)["input_ids"]
    real = labels != hf.config.pad_token_id  # (B, T): targets and their EOS
    assert ours.shape == theirs.shape
    difference = (ours - theirs).abs().amax(-1)[real].max().item()
    assert difference < 1e-4, f"log-probs differ by {difference}"


def hf_outputs(
    model: Any, tokenizer: Any, sentences: list[str], *, beams: int, max_len: int
) -> list[list[int]]:
    """Token ids (without start and EOS) of generate(), nmt's settings: no PAD, no empty output,
    at most ``max_len`` tokens and then EOS, raw log P (length_penalty 0)."""
    batch = tokenizer(sentences, return_tensors="pt", padding=True)
    out = model.generate(
        **batch,
        num_beams=beams,
        do_sample=False,
        length_penalty=0.0,
        early_stopping=False,
        max_new_tokens=max_len + 1,
        min_new_tokens=1,
        # nmt never emits PAD nor the decoder's start token (one token for Marian, two for nmt)
        bad_words_ids=[
            [t] for t in {model.config.pad_token_id, model.config.decoder_start_token_id}
        ],
    )
    eos = model.config.eos_token_id
    rows = [row[1:].tolist() for row in out]
    return [row[: row.index(eos)] if eos in row else row for row in rows]


def nmt_outputs(
    model_dir: Path, sentences: list[str], *, beams: int, max_len: int, stopping: str = "exact"
) -> list[list[int]]:
    options = DecodingConfig(
        beam_size=beams, length_penalty=0.0, max_len_a=0.0, max_len_b=max_len, stopping=stopping
    )
    translations = Translator.load(model_dir).translate_nbest(sentences, options)
    return [t[0].tokens for t in translations]


# -- import -------------------------------------------------------------------------------------


def test_tokenizer_gives_marian_tokenizers_ids(marian_dir: Path, hf_tokenizer: Any) -> None:
    ours = PairTokenizer.load(marian_dir)
    theirs = hf_tokenizer(SENTENCES, text_target=TARGETS)
    eos = hf_tokenizer.eos_token_id
    assert [[*ids, eos] for ids in ours.encode_batch(SENTENCES)] == theirs["input_ids"]
    assert [[*ids, eos] for ids in ours.encode_target_batch(TARGETS)] == theirs["labels"]
    assert ours.encode(">>deu<< the dog")[0] == hf_tokenizer.convert_tokens_to_ids(">>deu<<")
    assert ours.unk_id in ours.encode("a Ж cat")
    assert (ours.eos_id, ours.unk_id, ours.pad_id) == (0, 1, ours.vocab_size - 1)
    assert ours.bos_id == ours.pad_id  # Marian starts decoding from PAD
    for ids in theirs["labels"]:
        known = [i for i in ids if i != ours.unk_id]  # transformers drops <unk> when decoding
        assert ours.decode(known) == hf_tokenizer.decode(known, skip_special_tokens=True)
    assert ours.decode([ours.unk_id]) == "⁇"  # SentencePiece's sign, as nmt's joint tokenizer


def test_imported_config_says_what_marian_is(imported_dir: Path, marian_dir: Path) -> None:
    config = load_model_dir(imported_dir).config.model
    vocab = json.loads((marian_dir / "vocab.json").read_text())
    assert config.arch == "transformer"
    assert (config.num_encoder_layers, config.num_decoder_layers) == (2, 1)
    assert (config.activation, config.position_layout, config.positions) == (
        "swish",
        "concatenated",
        "sinusoidal",
    )
    assert config.output_bias and config.scale_embedding and config.norm == "post"
    assert (config.pad_id, config.bos_id, config.eos_id) == (len(vocab) - 1, len(vocab) - 1, 0)
    assert {p.name for p in imported_dir.iterdir()} >= {"source.spm", "target.spm", "vocab.json"}


def test_a_stored_marian_sinusoid_is_recognised_and_another_table_carried(
    marian_dir: Path, hf_model: Any, tmp_path: Path
) -> None:
    # transformers 4 wrote the (frozen) position tables into the weights; 5 leaves them out.
    folder = tmp_path / "with-positions"
    shutil.copytree(marian_dir, folder)
    weights = load_file(str(folder / "model.safetensors"))
    for side in ("encoder", "decoder"):
        table = getattr(hf_model.model, side).embed_positions.weight.detach().clone()
        weights[f"model.{side}.embed_positions.weight"] = table
    save_file(weights, str(folder / "model.safetensors"), {"format": "pt"})
    import_marian(folder, tmp_path / "same")
    assert load_model_dir(tmp_path / "same").config.model.positions == "sinusoidal"
    weights["model.decoder.embed_positions.weight"] = weights[
        "model.decoder.embed_positions.weight"
    ].roll(1, dims=0)
    save_file(weights, str(folder / "model.safetensors"), {"format": "pt"})
    import_marian(folder, tmp_path / "other")
    loaded = load_model_dir(tmp_path / "other")
    assert loaded.config.model.positions == "learned"
    torch.testing.assert_close(
        loaded.model.state_dict()["tgt_positions.learned.weight"],
        weights["model.decoder.embed_positions.weight"],
    )


def test_teacher_forced_log_probs_equal_transformers(
    imported_dir: Path, hf_model: Any, hf_tokenizer: Any
) -> None:
    assert_log_probs_match(imported_dir, hf_model, hf_tokenizer)


@pytest.mark.parametrize("beams", [1, 4])
def test_outputs_equal_generate(
    imported_dir: Path, hf_model: Any, hf_tokenizer: Any, beams: int
) -> None:
    theirs = hf_outputs(hf_model, hf_tokenizer, SENTENCES, beams=beams, max_len=12)
    assert nmt_outputs(imported_dir, SENTENCES, beams=beams, max_len=12) == theirs
    # Non-trivial outputs: several lengths, some ended by the model before the limit.
    assert len({len(row) for row in theirs}) > 2 and min(len(row) for row in theirs) < 12
    texts = Translator.load(imported_dir).translate(
        SENTENCES, DecodingConfig(beam_size=beams, length_penalty=0.0, max_len_a=0, max_len_b=12)
    )
    assert texts == [hf_tokenizer.decode(row, skip_special_tokens=True) for row in theirs]


def test_early_stopping_gives_the_same_beam_outputs_without_a_length_penalty(
    imported_dir: Path, hf_model: Any, hf_tokenizer: Any
) -> None:
    # With α = 0 a finished hypothesis that tops every candidate cannot be beaten: nmt's
    # 'early' rule ends there, and still returns what transformers' full search returns.
    theirs = hf_outputs(hf_model, hf_tokenizer, SENTENCES, beams=4, max_len=12)
    assert nmt_outputs(imported_dir, SENTENCES, beams=4, max_len=12, stopping="early") == theirs


def _corrupt(field: str, value: object) -> Callable[..., tuple[Config, dict[str, Any]]]:
    real = marian.marian_to_nmt

    def wrong(folder: marian.MarianFolder) -> tuple[Config, dict[str, Any]]:
        config, state = real(folder)
        if field == "output_bias":
            state.pop("output_bias")
        model = config.model.model_copy(update={field: value})
        return config.model_copy(update={"model": model}), state

    return wrong


@pytest.mark.parametrize(
    ("field", "value", "outputs_change"),
    [
        ("position_layout", "interleaved", True),  # the paper's layout instead of Marian's
        ("output_bias", False, True),  # final_logits_bias left out
        # relu for swish moves every log-prob, yet beam search may still find the same
        # outputs for these few sentences: the log-probs are the check that catches it.
        ("activation", "relu", False),
        ("bos_id", 0, True),  # decoding started from EOS instead of PAD
    ],
)
def test_equivalence_check_fails_on_a_wrong_import(
    marian_dir: Path,
    hf_model: Any,
    hf_tokenizer: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    field: str,
    value: object,
    outputs_change: bool,
) -> None:
    monkeypatch.setattr(marian, "marian_to_nmt", _corrupt(field, value))
    import_marian(marian_dir, tmp_path / "wrong")
    with pytest.raises(AssertionError, match="log-probs differ"):
        assert_log_probs_match(tmp_path / "wrong", hf_model, hf_tokenizer)
    if outputs_change:
        theirs = hf_outputs(hf_model, hf_tokenizer, SENTENCES, beams=4, max_len=12)
        assert nmt_outputs(tmp_path / "wrong", SENTENCES, beams=4, max_len=12) != theirs


def _break(folder: Path, fault: str) -> None:
    """Damage a copy of a good Marian folder in one way."""
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    match fault:
        case "no source.spm" | "no target.spm" | "no vocab.json" | "no config.json":
            (folder / fault.removeprefix("no ")).unlink()
            return
        case "pickle weights only":
            (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
        case "vocab and config disagree":
            config["vocab_size"] += 1
        case "pad id disagrees":
            config["pad_token_id"] = 2
        case "other model type":
            config["model_type"] = "bart"
        case "unsupported activation":
            config["activation_function"] = "gelu_new"
        case "separate vocabularies":
            (folder / "target_vocab.json").write_text("{}")
        case "config not JSON":
            config_path.write_text("{ not json")
            return
        case "vocab ids with a gap":
            vocab = json.loads((folder / "vocab.json").read_text())
            vocab["<pad>"] += 1
            (folder / "vocab.json").write_text(json.dumps(vocab))
        case "a weight missing":
            weights = load_file(str(folder / "model.safetensors"))
            del weights["model.decoder.layers.0.fc1.weight"]
            save_file(weights, str(folder / "model.safetensors"), {"format": "pt"})
        case "corrupt weights":
            (folder / "model.safetensors").write_bytes(b"not safetensors")
    config_path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("no source.spm", "missing source.spm"),
        ("no target.spm", "missing target.spm"),
        ("no vocab.json", "missing vocab.json"),
        ("no config.json", "no config.json"),
        ("pickle weights only", "pickle can execute code.*save_pretrained"),
        ("vocab and config disagree", r"vocab_size is (\d+) but vocab.json holds (?!\1)\d+ pieces"),
        ("pad id disagrees", r"pad_token_id is 2 but vocab.json has <pad> = \d+"),
        ("other model type", "model_type is 'bart', not 'marian'"),
        ("unsupported activation", "activation_function 'gelu_new' is not supported"),
        ("separate vocabularies", "separate source and target vocabularies"),
        ("config not JSON", "config.json: not a readable JSON file"),
        ("vocab ids with a gap", "ids are not exactly 0"),
        ("a weight missing", "no model.decoder.layers.0.fc1.weight"),
        ("corrupt weights", "corrupt or unreadable weights"),
    ],
)
def test_a_malformed_folder_gives_one_clear_error(
    marian_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fault: str,
    message: str,
) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(marian_dir, folder)
    _break(folder, fault)
    assert main(["import", "marian", str(folder), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nmt: error: "), err
    assert re.search(message, err[0]), err[0]
    assert not (tmp_path / "out").exists()


def test_import_verb_writes_a_model_directory_translate_reads(
    marian_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", "marian", str(marian_dir), "-o", str(tmp_path / "model")]) == 0
    source = tmp_path / "src.txt"
    source.write_text("\n".join(SENTENCES[:3]) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["translate", str(tmp_path / "model"), "-i", str(source), "-q"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


# -- export -------------------------------------------------------------------------------------


def test_imported_model_exports_back_to_an_equal_marian_model(
    imported_dir: Path, hf_model: Any, tmp_path: Path
) -> None:
    out = tmp_path / "hf"
    export_marian(imported_dir, out)
    again = MarianMTModel.from_pretrained(out).eval()
    tokenizer = MarianTokenizer.from_pretrained(out)
    assert_log_probs_match(imported_dir, again, tokenizer)
    theirs = hf_outputs(hf_model, tokenizer, SENTENCES, beams=4, max_len=12)
    assert hf_outputs(again, tokenizer, SENTENCES, beams=4, max_len=12) == theirs


def test_trained_nmt_model_exports_to_marian_and_translates_the_same(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "hf"
    export_marian(trained_model_dir, out)
    hf = MarianMTModel.from_pretrained(out).eval()
    tokenizer = MarianTokenizer.from_pretrained(out)
    assert_log_probs_match(trained_model_dir, hf, tokenizer, with_language_code=False)
    sources = SENTENCES[:6]
    for beams in (1, 4):
        theirs = hf_outputs(hf, tokenizer, sources, beams=beams, max_len=20)
        assert nmt_outputs(trained_model_dir, sources, beams=beams, max_len=20) == theirs
        options = DecodingConfig(beam_size=beams, length_penalty=0.0, max_len_a=0, max_len_b=20)
        texts = Translator.load(trained_model_dir).translate(sources, options)
        assert texts == tokenizer.batch_decode(
            [[*row, 0] for row in theirs], skip_special_tokens=True
        )
        assert all(texts)


@pytest.fixture(scope="session")
def joint_tokenizer(toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nmt's own joint BPE model of the toy corpus (its file)."""
    path = tmp_path_factory.mktemp("joint") / "tokenizer.model"
    Tokenizer.train([toy_corpus / "train.en", toy_corpus / "train.de"], path, vocab_size=60)
    return path


def _random_model_dir(folder: Path, tokenizer: Path, corpus: Path, **model: Any) -> Path:
    """An untrained nmt model (a Transformer unless ``model`` says), weights spread wide enough
    that every part of the model moves the log-probabilities."""
    shape = {"num_layers": 2, "d_model": 32, "d_ff": 64, "num_heads": 4, "max_positions": 64}
    tree = {"data": {"dir": str(corpus), "max_len": 60}, "model": model}
    if model.get("arch", "transformer") == "transformer":
        tree["model"] = {**shape, **model}
    config = config_from_dict(tree, source="test")
    torch.manual_seed(0)
    built = build_model(config.model, Tokenizer.load(tokenizer).vocab_size)
    with torch.no_grad():
        for param in built.parameters():
            param.normal_(0.0, 0.3)
    write_model_dir(folder, config=config, tokenizer_path=tokenizer, model=built)
    return folder


@pytest.mark.parametrize(
    "options",
    [
        {"positions": "learned", "share_embeddings": False, "tie_output": False},
        {"activation": "gelu", "encoder_layers": 3, "decoder_layers": 1, "output_bias": True},
        {"position_layout": "concatenated", "scale_embedding": False, "tie_output": False},
    ],
    ids=["learned-untied", "gelu-depths-bias", "marian-layout-unscaled"],
)
def test_every_model_option_exports_to_an_equal_marian_model(
    joint_tokenizer: Path, toy_corpus: Path, tmp_path: Path, options: dict[str, Any]
) -> None:
    model_dir = _random_model_dir(tmp_path / "model", joint_tokenizer, toy_corpus, **options)
    export_marian(model_dir, tmp_path / "hf")
    hf = MarianMTModel.from_pretrained(tmp_path / "hf").eval()
    tokenizer = MarianTokenizer.from_pretrained(tmp_path / "hf")
    assert_log_probs_match(model_dir, hf, tokenizer, with_language_code=False)
    # And back: the re-imported model computes what the original does.
    import_marian(tmp_path / "hf", tmp_path / "back")
    pairs = [(s, t) for s, t in zip(SENTENCES, TARGETS, strict=True) if not s.startswith(">>")]
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    again = nmt_log_probs(tmp_path / "back", sources, targets)
    torch.testing.assert_close(again, nmt_log_probs(model_dir, sources, targets))


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ({"norm": "pre"}, "a pre-LN model cannot be exported to Marian"),
        ({"arch": "rnn", "embed_dim": 16, "hidden_size": 16}, "only Transformers"),
    ],
)
def test_models_marian_cannot_express_are_refused(
    joint_tokenizer: Path,
    toy_corpus: Path,
    tmp_path: Path,
    model: dict[str, Any],
    reason: str,
) -> None:
    model_dir = _random_model_dir(tmp_path / "model", joint_tokenizer, toy_corpus, **model)
    with pytest.raises(NmtError, match=reason):
        export_marian(model_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- fine-tuning ----------------------------------------------------------------------------------


def test_fine_tuning_an_imported_model_changes_its_weights_and_it_still_loads(
    imported_dir: Path, toy_corpus: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    config = tmp_path / "fine-tune.yaml"
    config.write_text(
        f"data: {{dir: {toy_corpus}, max_len: 60}}\n"
        f"training: {{run_dir: {run_dir}, max_steps: 3, valid_every: 3, save_every: 3,"
        " max_tokens: 400, valid_max_sentences: 4, progress: false,"
        " schedule: {kind: peak, peak_lr: 0.001, warmup_steps: 2}}\n",
        encoding="utf-8",
    )
    assert main(["train", str(config), "--init-from", str(imported_dir)]) == 0
    before = load_file(str(imported_dir / "model.safetensors"))
    after = load_file(str(run_dir / "best" / "model.safetensors"))
    assert before.keys() == after.keys()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert "decoder_layers.0.cross_attn.kv_proj.weight" in changed
    tuned = load_model_dir(run_dir / "best")
    assert isinstance(tuned.tokenizer, PairTokenizer)
    assert tuned.config.model == load_model_dir(imported_dir).config.model
    assert all(Translator.load(run_dir / "best").translate(SENTENCES[:3]))


# -- the whole way: an imported model through nmt and CTranslate2 ---------------------------------


def test_imported_model_through_translate_evaluate_and_ctranslate2(
    imported_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ctranslate2 = pytest.importorskip("ctranslate2")
    sources = [s for s in SENTENCES if "Ж" not in s]
    src, ref = tmp_path / "src.en", tmp_path / "ref.de"
    src.write_text("\n".join(sources) + "\n", encoding="utf-8")
    ref.write_text("\n".join(TARGETS[: len(sources)]) + "\n", encoding="utf-8")
    search = ["--beam-size", "4", "--length-penalty", "0", "--max-len-a", "0", "--max-len-b", "12"]
    model = str(tmp_path / "model")
    shutil.copytree(imported_dir, model)  # the engine caches its conversion in the folder

    assert main(["translate", model, "-i", str(src), "-o", str(tmp_path / "nmt.de"), *search]) == 0
    ours = (tmp_path / "nmt.de").read_text(encoding="utf-8").splitlines()
    assert len(ours) == len(sources) and all(ours)

    capsys.readouterr()
    hyp = tmp_path / "evaluate.de"
    argv = ["evaluate", model, "--src", str(src), "--ref", str(ref), "--hyp", str(hyp), *search]
    assert main(argv) == 0
    assert "BLEU" in capsys.readouterr().out
    assert hyp.read_text(encoding="utf-8").splitlines() == ours

    exported = tmp_path / "ct2"
    assert main(["export", model, "--to", "ctranslate2", "-o", str(exported)]) == 0
    engine = ctranslate2.Translator(str(exported))
    tokenizer = load_model_dir(model).tokenizer
    pieces = tokenizer.pieces()
    results = engine.translate_batch(
        [[pieces[i] for i in ids] for ids in tokenizer.encode_batch(sources)],
        beam_size=4,
        length_penalty=0.0,
        max_decoding_length=12,
        min_decoding_length=1,
        suppress_sequences=[["<pad>"]],
    )
    vocab = {piece: i for i, piece in enumerate(pieces)}
    engine_texts = [tokenizer.decode([vocab[p] for p in r.hypotheses[0]]) for r in results]
    assert engine_texts == ours

    cli = tmp_path / "engine.de"
    argv = ["translate", model, "--engine", "ctranslate2", "-i", str(src), "-o", str(cli), *search]
    assert main(argv) == 0
    assert cli.read_text(encoding="utf-8").splitlines() == ours


def test_evaluate_reports_the_perplexity_transformers_computes(
    imported_dir: Path,
    hf_model: Any,
    hf_tokenizer: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Batches of an imported model must be built with its own ids (EOS 0, PAD = start = V − 1)
    # and its target SentencePiece model, or the references' perplexity is another number.
    pairs = [(s, t) for s, t in zip(SENTENCES, TARGETS, strict=True) if "Ж" not in s]
    src, ref = tmp_path / "src.en", tmp_path / "ref.de"
    src.write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    ref.write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    argv = ["evaluate", str(imported_dir), "--src", str(src), "--ref", str(ref), "--beam-size", "1"]
    assert main(argv) == 0
    reported = re.search(r"perplexity of the references ([\d.]+)", capsys.readouterr().out)
    assert reported is not None
    batch = hf_tokenizer([s for s, _ in pairs], text_target=[t for _, t in pairs], padding=True)
    labels = torch.tensor(batch["labels"])
    labels = labels.masked_fill(labels == hf_model.config.pad_token_id, -100)
    with torch.no_grad():
        loss = hf_model(
            input_ids=torch.tensor(batch["input_ids"]),
            attention_mask=torch.tensor(batch["attention_mask"]),
            labels=labels,
        ).loss
    assert float(reported.group(1)) == pytest.approx(math.exp(loss.item()), abs=0.01)

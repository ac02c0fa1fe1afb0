"""`nmt embeddings train`: gensim vectors in the format nmt's src_vectors path reads."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from nmt.cli import main
from nmt.embeddings.options import EmbeddingOptions
from nmt.embeddings.train import read_sentences, train_vectors
from nmt.models.pretrained import load_pretrained_embeddings
from tests.conftest import write_toy_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_corpus(tmp_path_factory.mktemp("emb"), sizes={"train": 400}, seed=3)


@pytest.mark.parametrize("method", ["skipgram", "cbow", "fasttext"])
def test_cli_writes_vectors_that_nmt_loads(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], method: str
) -> None:
    out = tmp_path / "vectors" / f"en.{method}.txt"
    args = ["embeddings", "train", str(corpus / "train.en"), "-o", str(out), "--dim", "8"]
    assert main([*args, "--method", method, "--epochs", "2"]) == 0
    assert f"wrote 14 {method} vectors of dimension 8" in capsys.readouterr().out
    assert out.read_text(encoding="utf-8").splitlines()[0] == "14 8"
    # A SentencePiece-style vocabulary: word-initial pieces find their word's vector.
    pieces = ["<pad>", "▁house", "▁cat", "▁zebra", "s"]
    embedding = nn.Embedding(len(pieces), 8, padding_idx=0)
    before = embedding.weight.detach().clone()
    report = load_pretrained_embeddings(embedding, pieces, out)
    assert report.found == 2
    row = out.read_text(encoding="utf-8").splitlines()
    house = next(line for line in row if line.startswith("house "))
    expected = torch.tensor([float(v) for v in house.split()[1:]])
    assert torch.allclose(embedding.weight[1], expected)
    assert torch.equal(embedding.weight[3], before[3])  # no vector for a word never seen


def test_cooccurring_words_end_up_close() -> None:
    # Two disjoint "topics": a word only ever shares sentences with words of its own topic.
    rng = random.Random(0)
    topics = [[f"fruit{i}" for i in range(20)], [f"car{i}" for i in range(20)]]
    sentences = [rng.sample(topics[i % 2], 6) for i in range(2000)]
    model = train_vectors(sentences, EmbeddingOptions(dim=16, epochs=5, min_count=1))
    same = [model.wv.similarity("fruit0", f"fruit{i}") for i in range(1, 20)]
    other = [model.wv.similarity("fruit0", f"car{i}") for i in range(20)]
    assert min(same) > max(other)


def test_fasttext_gives_unseen_words_a_vector() -> None:
    sentences = [["translation", "translator", "translate"]] * 50
    model = train_vectors(sentences, EmbeddingOptions(method="fasttext", dim=8, min_count=1))
    assert "translations" not in model.wv.key_to_index
    assert model.wv["translations"].shape == (8,)
    word2vec = train_vectors(sentences, EmbeddingOptions(method="skipgram", dim=8, min_count=1))
    with pytest.raises(KeyError):
        word2vec.wv["translations"]


def test_same_seed_same_vectors(corpus: Path) -> None:
    sentences = read_sentences([corpus / "train.de"], lowercase=False)
    options = EmbeddingOptions(dim=8, epochs=1)
    assert (
        train_vectors(sentences, options).wv.vectors == train_vectors(sentences, options).wv.vectors
    ).all()


@pytest.mark.parametrize(
    ("setup", "args", "error"),
    [
        ("empty", ["--dim", "8"], r"empty.txt: no words to train word vectors on"),
        ("digits", ["--dim", "8"], r"no words to train"),
        ("missing", ["--dim", "8"], r"missing.txt: cannot read"),
        ("latin1", ["--dim", "8"], r"latin1.txt:2: not UTF-8"),
        ("toy", ["--dim", "0"], r"--dim: must be at least 1"),
        ("toy", ["--min-count", "100000"], r"--min-count 100000: no word occurs that often"),
        ("toy", ["-o", "{tmp}"], r"is a folder"),
    ],
)
def test_bad_input_is_one_clear_line(
    corpus: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setup: str,
    args: list[str],
    error: str,
) -> None:
    files = {
        "empty": tmp_path / "empty.txt",
        "digits": tmp_path / "digits.txt",
        "missing": tmp_path / "missing.txt",
        "latin1": tmp_path / "latin1.txt",
        "toy": corpus / "train.en",
    }
    files["empty"].write_text("")
    files["digits"].write_text("1 2 3\n... !\n")
    files["latin1"].write_bytes("fine\nGr\xfc\xdfe\n".encode("latin-1"))
    out = tmp_path / "out.txt"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    status = main(["embeddings", "train", str(files[setup]), "-o", str(out), *args])
    err = capsys.readouterr().err
    assert status == 1
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and lines[0].startswith("nmt: error:"), err
    assert "Traceback" not in err
    assert re.search(error, err), err
    assert not out.exists()

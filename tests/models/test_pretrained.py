"""Pretrained word vectors land in the rows of the pieces they name, and bad files say where."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from nmt.config import RNNConfig
from nmt.data.tokenizer import PAD_ID
from nmt.errors import NmtError
from nmt.models.pretrained import load_pretrained_embeddings, load_pretrained_vectors
from nmt.models.rnn import RNNSeq2Seq

# A SentencePiece-like vocabulary: specials, word-initial pieces (▁), inner pieces.
PIECES = ["<pad>", "<unk>", "<s>", "</s>", "▁the", "▁House", "ing", "▁Paris", "▁", "s", "▁cat"]
DIM = 3

# word → vector; "house" is only there in lowercase, "paris" in both cases (lowercase first).
VECTORS = {
    "the": [0.1, 0.2, 0.3],
    "dog": [9.0, 9.0, 9.0],
    "paris": [-1.0, -1.0, -1.0],
    "house": [0.5, -0.5, 1.5],
    "Paris": [1.0, 2.0, 3.0],
    "ing": [7.0, 8.0, 9.0],
    "<pad>": [4.0, 4.0, 4.0],
}
EXPECTED = {  # row → vector
    4: VECTORS["the"],
    5: VECTORS["house"],  # ▁House: lowercase fallback
    6: VECTORS["ing"],  # an inner piece, looked up as it is
    7: VECTORS["Paris"],  # the exact form wins over the lowercase one read earlier
}


def write_vectors(path: Path, vectors: dict[str, list[float]], *, header: bool) -> Path:
    lines = [f"{len(vectors)} {DIM}"] if header else []
    lines += [" ".join([word, *map(str, values)]) for word, values in vectors.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fresh_embedding() -> nn.Embedding:
    torch.manual_seed(0)
    return nn.Embedding(len(PIECES), DIM, padding_idx=PAD_ID)


@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
def test_vectors_land_in_the_rows_of_their_pieces(tmp_path: Path, header: bool) -> None:
    path = write_vectors(tmp_path / "vectors.txt", VECTORS, header=header)
    embedding = fresh_embedding()
    before = embedding.weight.detach().clone()

    report = load_pretrained_embeddings(embedding, PIECES, path)

    assert (report.found, report.total) == (len(EXPECTED), len(PIECES) - 1)
    after = embedding.weight.detach()
    for row in range(len(PIECES)):
        if row in EXPECTED:
            assert after[row].tolist() == pytest.approx(EXPECTED[row]), PIECES[row]
        else:  # not in the file, the padding row, the bare "▁": untouched
            assert torch.equal(after[row], before[row]), PIECES[row]


def test_a_gzipped_file_reads_the_same(tmp_path: Path) -> None:
    plain = write_vectors(tmp_path / "vectors.txt", VECTORS, header=True)
    packed = tmp_path / "vectors.txt.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    first, second = fresh_embedding(), fresh_embedding()
    load_pretrained_embeddings(first, PIECES, plain)
    load_pretrained_embeddings(second, PIECES, packed)
    assert torch.equal(first.weight, second.weight)


def test_found_count_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_vectors(tmp_path / "vectors.txt", VECTORS, header=False)
    with caplog.at_level(logging.INFO, logger="nmt.models.pretrained"):
        load_pretrained_embeddings(fresh_embedding(), PIECES, path)
    assert f"4 of {len(PIECES) - 1} pieces found" in caplog.text


def test_reading_stops_once_every_piece_has_its_word(tmp_path: Path) -> None:
    pieces = ["<pad>", "▁a", "b"]
    path = tmp_path / "vectors.txt"
    # The line after the last wanted word is broken: a full read would fail on it.
    path.write_text("a 1 2 3\nb 4 5 6\nc 7 oops 9\n", encoding="utf-8")
    embedding = nn.Embedding(len(pieces), DIM, padding_idx=PAD_ID)
    report = load_pretrained_embeddings(embedding, pieces, path)
    assert report.found == 2
    assert embedding.weight[2].tolist() == [4.0, 5.0, 6.0]


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("2 5\nthe 1 2 3\n", ":1:", "dimension 5"),  # header disagrees with the embedding
        ("the 1 2\n", ":1:", "2 values"),  # the first vector is too short
        ("the 1 2 3 4\n", ":1:", "4 values"),  # or too long
        ("dog 1 2 3\ncat 1 2\n", ":2:", "2 values for 'cat'"),  # a wanted word's line is short
        ("dog 1 2 3\ncat 1 x 3\n", ":2:", "bad number"),
    ],
)
def test_bad_files_name_path_and_line(tmp_path: Path, text: str, where: str, words: str) -> None:
    path = tmp_path / "vectors.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(NmtError, match=words) as error:
        load_pretrained_embeddings(fresh_embedding(), PIECES, path)
    assert f"{path}{where}" in str(error.value)


def test_an_unreadable_file_names_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.vec"
    with pytest.raises(NmtError, match="cannot read") as error:
        load_pretrained_embeddings(fresh_embedding(), PIECES, missing)
    assert str(missing) in str(error.value)
    latin1 = tmp_path / "latin1.vec"
    latin1.write_bytes("caf\xe9 1 2 3\n".encode("latin-1"))
    with pytest.raises(NmtError, match="cannot read"):
        load_pretrained_embeddings(fresh_embedding(), PIECES, latin1)


def make_model(*, share: bool) -> RNNSeq2Seq:
    torch.manual_seed(0)
    config = RNNConfig(embed_dim=DIM, hidden_size=4, share_embeddings=share, tie_output=True)
    return RNNSeq2Seq(config, len(PIECES))


def test_a_models_two_embeddings_take_their_own_files(tmp_path: Path) -> None:
    src_path = write_vectors(tmp_path / "src.vec", {"the": [1.0, 1.0, 1.0]}, header=False)
    tgt_path = write_vectors(tmp_path / "tgt.vec", {"the": [2.0, 2.0, 2.0]}, header=False)
    model = make_model(share=False)
    reports = load_pretrained_vectors(model, PIECES, src_vectors=src_path, tgt_vectors=tgt_path)
    assert [r.path for r in reports] == [src_path, tgt_path]
    assert model.src_embed.weight[4].tolist() == [1.0, 1.0, 1.0]
    assert model.tgt_embed.weight[4].tolist() == [2.0, 2.0, 2.0]
    # The output layer is tied to the target embedding: it sees the new values too.
    assert model.generator.weight[4].tolist() == [2.0, 2.0, 2.0]


def test_a_shared_embedding_takes_one_file(tmp_path: Path) -> None:
    path = write_vectors(tmp_path / "joint.vec", {"the": [3.0, 3.0, 3.0]}, header=False)
    other = write_vectors(tmp_path / "other.vec", {"the": [4.0, 4.0, 4.0]}, header=False)
    model = make_model(share=True)
    reports = load_pretrained_vectors(model, PIECES, src_vectors=None, tgt_vectors=path)
    assert len(reports) == 1
    assert model.src_embed.weight[4].tolist() == [3.0, 3.0, 3.0]
    with pytest.raises(NmtError, match="share one embedding"):
        load_pretrained_vectors(model, PIECES, src_vectors=path, tgt_vectors=other)
    assert load_pretrained_vectors(model, PIECES, src_vectors=None, tgt_vectors=None) == []


def test_a_wrapped_embedding_is_found(tmp_path: Path) -> None:
    """A model whose src_embed wraps its nn.Embedding (the Transformer scales by √d_model)."""

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(len(PIECES), DIM, padding_idx=PAD_ID)

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.src_embed = Scaled()
            self.tgt_embed = self.src_embed

    model = Model()
    path = write_vectors(tmp_path / "joint.vec", {"cat": [5.0, 6.0, 7.0]}, header=True)
    load_pretrained_vectors(model, PIECES, src_vectors=path, tgt_vectors=None)
    assert model.src_embed.embedding.weight[10].tolist() == [5.0, 6.0, 7.0]

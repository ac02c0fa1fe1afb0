from pathlib import Path

import pytest

from nmt.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, THREADED_ENCODE_FROM, UNK_ID, Tokenizer
from nmt.errors import NmtError


def test_round_trip_of_training_text(toy_tokenizer: Tokenizer, toy_corpus: Path) -> None:
    for line in (toy_corpus / "dev.de").read_text().splitlines()[:20]:
        ids = toy_tokenizer.encode(line)
        assert all(i >= 4 for i in ids)  # specials are never produced by encoding
        assert toy_tokenizer.decode(ids) == line


def test_special_ids_are_fixed(toy_tokenizer: Tokenizer) -> None:
    pieces = toy_tokenizer.pieces()
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert pieces[PAD_ID] == "<pad>" and pieces[EOS_ID] == "</s>" and pieces[BOS_ID] == "<s>"
    assert toy_tokenizer.vocab_size == 60


def test_vocabulary_is_joint(toy_tokenizer: Tokenizer) -> None:
    # Pieces of both languages live in the one vocabulary: no unknowns on either side.
    assert UNK_ID not in toy_tokenizer.encode("the house sees")
    assert UNK_ID not in toy_tokenizer.encode("das haus sieht")


def test_decode_skips_padding_and_markers(toy_tokenizer: Tokenizer) -> None:
    ids = toy_tokenizer.encode("the cat")
    assert toy_tokenizer.decode([BOS_ID, *ids, EOS_ID, PAD_ID]) == "the cat"


def test_load_refuses_a_non_model(tmp_path: Path) -> None:
    bad = tmp_path / "tokenizer.model"
    bad.write_text("not a model")
    with pytest.raises(NmtError, match="not a SentencePiece model"):
        Tokenizer.load(bad)
    with pytest.raises(NmtError, match="not found"):
        Tokenizer.load(tmp_path / "missing.model")


@pytest.mark.parametrize("count", [1, THREADED_ENCODE_FROM - 1, THREADED_ENCODE_FROM, 100])
def test_a_batch_encodes_as_each_line_alone(
    toy_tokenizer: Tokenizer, toy_corpus: Path, count: int
) -> None:
    # Few lines are encoded one at a time, many by SentencePiece's threaded list call.
    lines = (toy_corpus / "dev.de").read_text().splitlines()
    lines = (lines * (1 + count // len(lines)))[:count]
    assert toy_tokenizer.encode_batch(lines) == [toy_tokenizer.encode(line) for line in lines]

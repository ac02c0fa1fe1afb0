"""The vocabulary shortlist: co-occurrence lists that cover a word-for-word language's targets."""

from pathlib import Path

import torch

from nmt.data.tokenizer import EOS_ID, PAD_ID, Tokenizer
from nmt.decoding.shortlist import Shortlist


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

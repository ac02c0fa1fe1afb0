"""Joint source–target subwords: one SentencePiece BPE model for both languages.

One shared vocabulary is what makes the paper's three-way weight tying possible (source
embedding = target embedding = pre-softmax projection). The special ids live here and only here.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from nmt.errors import NmtError

log = logging.getLogger(__name__)

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3

TOKENIZER_FILE = "tokenizer.model"


class Tokenizer:
    """Text ↔ subword ids with a SentencePiece model; ids never include BOS/EOS."""

    def __init__(self, processor: spm.SentencePieceProcessor) -> None:
        self._sp = processor
        specials = (processor.pad_id(), processor.unk_id(), processor.bos_id(), processor.eos_id())
        if specials != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise NmtError(f"tokenizer special ids {specials} differ from nmt's")

    @classmethod
    def load(cls, path: Path | str) -> Tokenizer:
        path = Path(path)
        if not path.is_file():
            raise NmtError(f"{path}: tokenizer model not found")
        processor = spm.SentencePieceProcessor()
        try:
            processor.Load(str(path))
        except (OSError, RuntimeError) as exc:
            raise NmtError(f"{path}: not a SentencePiece model ({exc})") from None
        return cls(processor)

    @classmethod
    def train(
        cls,
        files: Sequence[Path],
        model_path: Path,
        *,
        vocab_size: int,
        max_sentences: int = 2_000_000,
    ) -> Tokenizer:
        """Train a joint BPE model on all ``files`` (source and target) and save it atomically."""
        model_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=model_path.parent) as tmp:
            prefix = os.path.join(tmp, "spm")
            try:
                spm.SentencePieceTrainer.Train(
                    input=",".join(str(f) for f in files),
                    model_prefix=prefix,
                    model_type="bpe",
                    vocab_size=vocab_size,
                    character_coverage=1.0,
                    pad_id=PAD_ID,
                    unk_id=UNK_ID,
                    bos_id=BOS_ID,
                    eos_id=EOS_ID,
                    input_sentence_size=max_sentences,
                    shuffle_input_sentence=True,
                    # One thread keeps the merges identical from run to run.
                    num_threads=1,
                    minloglevel=2,
                )
            except RuntimeError as exc:
                raise NmtError(f"training the tokenizer failed: {exc}") from None
            os.replace(prefix + ".model", model_path)
        log.info("trained a %d-piece joint BPE model: %s", vocab_size, model_path)
        return cls.load(model_path)

    @property
    def vocab_size(self) -> int:
        return int(self._sp.GetPieceSize())

    def encode(self, text: str) -> list[int]:
        return list(self._sp.EncodeAsIds(text))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(ids) for ids in self._sp.EncodeAsIds(list(texts))]

    def decode(self, ids: Iterable[int]) -> str:
        return str(self._sp.DecodeIds([i for i in ids if i not in (PAD_ID, BOS_ID, EOS_ID)]))

    def pieces(self) -> list[str]:
        """The vocabulary, piece by id (word-initial pieces start with '▁')."""
        return [self._sp.IdToPiece(i) for i in range(self.vocab_size)]

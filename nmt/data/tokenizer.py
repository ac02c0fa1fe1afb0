"""Subwords: SentencePiece models and the vocabulary that maps their pieces to model ids.

nmt trains one joint source–target BPE model (``tokenizer.model``): one shared vocabulary is what
makes the paper's three-way weight tying possible (source embedding = target embedding =
pre-softmax projection), and its special ids are nmt's constants below.

Imported Marian (OPUS-MT) models bring another layout: a SentencePiece model per language
(``source.spm``, ``target.spm``) over one shared vocabulary (``vocab.json``, piece → id, ids
independent of either SentencePiece model's own), EOS 0, UNK 1, PAD = decoder start = V − 1, and
for multilingual models ``>>lang<<`` tokens that choose the target language. Both kinds answer to
the same methods; the special ids belong to the tokenizer (and the model's config), never to code
that merely drives them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import sentencepiece as spm

from nmt.durable import publish, staging_dir
from nmt.errors import NmtError

log = logging.getLogger(__name__)

# The special ids of nmt's own (joint) tokenizer.
PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3

TOKENIZER_FILE = "tokenizer.model"
# The files of a source/target pair, named as in a Hugging Face Marian folder.
SOURCE_SPM = "source.spm"
TARGET_SPM = "target.spm"
VOCAB_FILE = "vocab.json"
PAIR_FILES = (SOURCE_SPM, TARGET_SPM, VOCAB_FILE)

# Marian's names of its special pieces in vocab.json.
EOS_PIECE, UNK_PIECE, PAD_PIECE, BOS_PIECE = "</s>", "<unk>", "<pad>", "<s>"


# SentencePiece encodes a list on threads it starts for each call: 0.1-0.4 ms before the first
# string (measured here), while one string alone takes ~12 us. A server encodes a request's few
# texts on its event loop: below this many strings, one at a time.
THREADED_ENCODE_FROM = 32


def encode_each(encode: Callable[[Any], Any], texts: Sequence[str]) -> list[Any]:
    """``encode`` (a SentencePiece encoder, given a string or a list) applied to every text."""
    if len(texts) < THREADED_ENCODE_FROM:
        return [encode(text) for text in texts]
    return list(encode(list(texts)))


def _load_processor(path: Path) -> spm.SentencePieceProcessor:
    if not path.is_file():
        raise NmtError(f"{path}: SentencePiece model not found")
    processor = spm.SentencePieceProcessor()
    try:
        processor.Load(str(path))
    except (OSError, RuntimeError) as exc:
        raise NmtError(f"{path}: not a SentencePiece model ({exc})") from None
    return processor


class Tokenizer:
    """Text ↔ subword ids with nmt's joint SentencePiece model; ids never include BOS/EOS.

    ``encode``/``encode_batch`` read source text, ``encode_target``/``encode_target_batch``
    target text, ``decode`` writes target text: one model serves both sides here.
    """

    files: tuple[str, ...] = (TOKENIZER_FILE,)
    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

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
        return cls(_load_processor(path))

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
        with staging_dir(model_path) as tmp:
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
            publish(Path(prefix + ".model"), model_path)
        log.info("trained a %d-piece joint BPE model: %s", vocab_size, model_path)
        return Tokenizer.load(model_path)

    @property
    def vocab_size(self) -> int:
        return int(self._sp.GetPieceSize())

    def encode(self, text: str) -> list[int]:
        return list(self._sp.EncodeAsIds(text))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(ids) for ids in encode_each(self._sp.EncodeAsIds, texts)]

    def encode_target(self, text: str) -> list[int]:
        return self.encode(text)

    def encode_target_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.encode_batch(texts)

    def decode(self, ids: Iterable[int]) -> str:
        return str(self._sp.DecodeIds([i for i in ids if i not in (PAD_ID, BOS_ID, EOS_ID)]))

    def pieces(self) -> list[str]:
        """The vocabulary, piece by id (word-initial pieces start with '▁')."""
        return [self._sp.IdToPiece(i) for i in range(self.vocab_size)]


class PairTokenizer(Tokenizer):
    """A SentencePiece model per side over one shared vocabulary: Marian's (OPUS-MT) layout.

    Text is cut into pieces by the side's SentencePiece model and each piece takes its id from
    ``vocab.json`` (a piece the vocabulary lacks is UNK), as Hugging Face's MarianTokenizer
    does. A source that starts with a ``>>lang<<`` token keeps it as one token. The decoder
    starts from ``<s>`` where the vocabulary has one, else from PAD (Marian's convention).
    """

    files = PAIR_FILES

    def __init__(
        self,
        source: spm.SentencePieceProcessor,
        target: spm.SentencePieceProcessor,
        vocab: dict[str, int],
    ) -> None:
        # The joint tokenizer's constructor checks SentencePiece's own ids, which mean nothing
        # here: the ids come from the vocabulary.
        self._source, self._target, self._vocab = source, target, vocab
        self._pieces = [""] * len(vocab)
        for piece, index in vocab.items():
            self._pieces[index] = piece
        self.pad_id, self.unk_id, self.eos_id = vocab[PAD_PIECE], vocab[UNK_PIECE], vocab[EOS_PIECE]
        self.bos_id = vocab.get(BOS_PIECE, self.pad_id)
        self.language_tokens = [p for p in vocab if p.startswith(">>") and p.endswith("<<")]

    @classmethod
    def load(cls, path: Path | str) -> PairTokenizer:
        """The tokenizer of a folder holding source.spm, target.spm and vocab.json."""
        folder = Path(path)
        missing = [name for name in PAIR_FILES if not (folder / name).is_file()]
        if missing:
            raise NmtError(f"{folder}: missing {', '.join(missing)}")
        return cls(
            _load_processor(folder / SOURCE_SPM),
            _load_processor(folder / TARGET_SPM),
            read_vocab(folder / VOCAB_FILE),
        )

    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    def _ids(self, pieces: Iterable[str]) -> list[int]:
        return [self._vocab.get(piece, self.unk_id) for piece in pieces]

    def _encode_side(
        self, processor: spm.SentencePieceProcessor, texts: Sequence[str]
    ) -> list[list[int]]:
        codes, rests = zip(*map(split_language_code, texts), strict=True) if texts else ((), ())
        pieces = encode_each(processor.EncodeAsPieces, rests)
        return [self._ids(code) + self._ids(row) for code, row in zip(codes, pieces, strict=True)]

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self._encode_side(self._source, texts)

    def encode_target(self, text: str) -> list[int]:
        return self.encode_target_batch([text])[0]

    def encode_target_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self._encode_side(self._target, texts)

    def decode(self, ids: Iterable[int]) -> str:
        specials = (self.pad_id, self.bos_id, self.eos_id)
        pieces = [self._pieces[i] for i in ids if i not in specials]
        # Pieces of the shared vocabulary that the target model lacks (the other language's, a
        # >>lang<< token) come through as written; "▁" is a word boundary either way.
        return str(self._target.DecodePieces(pieces)).replace("▁", " ").strip()

    def pieces(self) -> list[str]:
        return list(self._pieces)


def split_language_code(text: str) -> tuple[list[str], str]:
    """``">>fra<< Hello"`` → (``[">>fra<<"]``, ``" Hello"``); other text has no code."""
    if text.startswith(">>") and (end := text.find("<<")) != -1:
        return [text[: end + 2]], text[end + 2 :]
    return [], text


def read_vocab(path: Path) -> dict[str, int]:
    """A Marian vocab.json: every piece an id, the ids exactly 0 … V − 1, the specials there."""
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NmtError(f"{path}: not a readable JSON vocabulary ({exc})") from None
    if not isinstance(vocab, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in vocab.items()
    ):
        raise NmtError(f"{path}: a vocabulary must map each piece to an integer id")
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise NmtError(f"{path}: the ids are not exactly 0 … {len(vocab) - 1}, each once")
    missing = [p for p in (EOS_PIECE, UNK_PIECE, PAD_PIECE) if p not in vocab]
    if missing:
        raise NmtError(f"{path}: the vocabulary lacks {', '.join(missing)}")
    return vocab


def load_tokenizer(folder: Path) -> Tokenizer:
    """The tokenizer stored in a model (or run) directory, whichever kind it is."""
    if (folder / TOKENIZER_FILE).is_file():
        return Tokenizer.load(folder / TOKENIZER_FILE)
    if (folder / VOCAB_FILE).is_file():
        return PairTokenizer.load(folder)
    raise NmtError(f"{folder}: no tokenizer ({TOKENIZER_FILE}, or {' + '.join(PAIR_FILES)})")


def copy_tokenizer(src_folder: Path, dst_folder: Path) -> None:
    """Copy the tokenizer files of ``src_folder`` (either kind) into ``dst_folder``."""
    kind = Tokenizer if (src_folder / TOKENIZER_FILE).is_file() else PairTokenizer
    for name in kind.files:
        shutil.copyfile(src_folder / name, dst_folder / name)

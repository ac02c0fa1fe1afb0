"""Fixtures for the Translator and file tests: a tiny tokenizer, a model that copies its input,
a model directory holding a tiny random Transformer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor

from nmt.config import Config, DataConfig, TransformerConfig
from nmt.data.tokenizer import EOS_ID, PAD_ID, Tokenizer
from nmt.models.interface import DEFAULT_ENCODE_OPTIONS, EncodeOptions

LINES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "hello world",
    "she reads a book every night",
    "we went to the market on monday",
    "the quick brown fox jumps over the lazy dog",
    "it was a bright cold day in april",
    "many hands make light work",
    "time flies like an arrow",
    "birds sing in the morning",
    "he walked home slowly",
    "zebras and yaks eat grass quietly",
]


@pytest.fixture
def lines() -> list[str]:
    """Made-up sentences, each a single-spaced lowercase line the tokenizer round-trips."""
    return list(LINES)


@pytest.fixture(scope="session")
def tokenizer_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("spm")
    text = folder / "text.txt"
    text.write_text("\n".join(LINES * 4) + "\n", encoding="utf-8")
    Tokenizer.train([text], folder / "tokenizer.model", vocab_size=60)
    return folder / "tokenizer.model"


@pytest.fixture
def tokenizer(tokenizer_path: Path) -> Tokenizer:
    return Tokenizer.load(tokenizer_path)


@dataclass
class CopyState:
    src: Tensor  # (N, S) ids + EOS + PAD
    position: int  # target tokens fed so far
    attention: Tensor | None  # (N, t, L=1, H=1, S) one-hot on the source position it copied

    def select(self, indices: Tensor) -> CopyState:
        attention = None if self.attention is None else self.attention[indices]
        return CopyState(self.src[indices], self.position, attention)


class CopyModel:
    """Translates by copying: at step t it bets on source token t (EOS after the source).

    Every other token keeps some probability, so beams have alternatives. Records the batch
    sizes it encodes and the ``max_steps`` it is promised. Its attention at step t is one-hot
    on source position t (the last one once past the end), as in ``cross_attention``.
    """

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.encoded: list[tuple[int, int]] = []
        self.max_steps: list[int | None] = []

    def _target(self, src: Tensor, position: int) -> Tensor:
        column = src[:, position] if position < src.size(1) else torch.full_like(src[:, 0], PAD_ID)
        return column.masked_fill(column == PAD_ID, EOS_ID)  # (N,)

    def _log_probs(self, target: Tensor) -> Tensor:
        logits = torch.zeros(target.size(0), self.vocab_size)
        logits[torch.arange(target.size(0)), target] = 5.0
        return logits.log_softmax(-1)

    def encode(
        self, src: Tensor, src_mask: Tensor, options: EncodeOptions = DEFAULT_ENCODE_OPTIONS
    ) -> CopyState:
        self.encoded.append(tuple(src.shape))
        self.max_steps.append(options.max_steps)
        attention = src.new_zeros(src.size(0), 0, 1, 1, src.size(1), dtype=torch.float32)
        return CopyState(src, 0, attention if options.record_attention else None)

    def decode_step(self, prev_tokens: Tensor, state: CopyState) -> tuple[Tensor, CopyState]:
        log_probs = self._log_probs(self._target(state.src, state.position))
        attention = state.attention
        if attention is not None:
            looked_at = min(state.position, state.src.size(1) - 1)
            weights = torch.nn.functional.one_hot(
                torch.full((state.src.size(0),), looked_at), state.src.size(1)
            ).float()  # (N, S)
            attention = torch.cat([attention, weights[:, None, None, None, :]], dim=1)
        return log_probs, CopyState(state.src, state.position + 1, attention)

    def forward(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor:
        steps = [self._log_probs(self._target(src, t)) for t in range(tgt_in.size(1))]
        return torch.stack(steps, dim=1)

    def cross_attention(self, src: Tensor, src_mask: Tensor, tgt_in: Tensor) -> Tensor | None:
        """(B, L=1, H=1, T, S): step t looks at source position t."""
        positions = torch.arange(tgt_in.size(1)).clamp(max=src.size(1) - 1)
        weights = torch.nn.functional.one_hot(positions, src.size(1)).float()  # (T, S)
        return weights.expand(src.size(0), 1, 1, -1, -1)


class BabbleModel(CopyModel):
    """Never wants to stop: it bets on one ordinary token forever."""

    def _target(self, src: Tensor, position: int) -> Tensor:
        return torch.full_like(src[:, 0], 10)


@pytest.fixture
def copy_model(tokenizer: Tokenizer) -> CopyModel:
    return CopyModel(tokenizer.vocab_size)


@pytest.fixture
def babble_model(tokenizer: Tokenizer) -> BabbleModel:
    return BabbleModel(tokenizer.vocab_size)


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "input.txt"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def model_dir(tmp_path: Path, tokenizer_path: Path) -> Path:
    """A model directory: a random one-layer Transformer that takes 12 positions."""
    from nmt.models.store import write_model_dir
    from nmt.models.transformer import Transformer

    torch.manual_seed(0)
    model_config = TransformerConfig(
        num_layers=1, d_model=16, d_ff=32, num_heads=2, max_positions=12
    )
    model = Transformer(model_config, Tokenizer.load(tokenizer_path).vocab_size)
    write_model_dir(
        tmp_path / "model",
        config=Config(data=DataConfig(max_len=10), model=model_config),
        tokenizer_path=tokenizer_path,
        model=model,
    )
    return tmp_path / "model"

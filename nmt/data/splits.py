"""A run's encoded splits: the train and dev pairs of a config, memory-mapped from the cache."""

from __future__ import annotations

from nmt.config import Config
from nmt.data.cache import default_cache_root, load_or_encode, tokenizer_fingerprint
from nmt.data.dataset import EncodedPairs
from nmt.data.tokenizer import Tokenizer


def split_max_len(config: Config, split: str) -> int:
    """Training pairs obey data.max_len; dev pairs need only fit the model's positions."""
    return config.data.max_len if split == "train" else config.model.max_positions - 1


def load_split(config: Config, tokenizer: Tokenizer, split: str) -> EncodedPairs:
    """A split's encoded pairs, memory-mapped from the cache (encoded on first use only)."""
    data, run_dir = config.data, config.training.run_dir
    src, tgt = data.dir / f"{split}.{data.src_lang}", data.dir / f"{split}.{data.tgt_lang}"
    return load_or_encode(
        tokenizer,
        src,
        tgt,
        max_len=split_max_len(config, split),
        tokenizer_sha256="+".join(tokenizer_fingerprint(run_dir / f) for f in tokenizer.files),
        cache_root=default_cache_root(data.dir, run_dir),
    )

"""The encoded corpus: flat arrays equal to per-pair encoding, cached once, rebuilt on change."""

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from nmt.data import cache
from nmt.data.cache import load_or_encode
from nmt.data.dataset import EncodedPairs, encode_parallel
from nmt.data.parallel import read_parallel
from nmt.data.tokenizer import Tokenizer

TOKENIZER_SHA = "0" * 64


@pytest.fixture
def corpus(toy_corpus: Path, tmp_path: Path) -> Path:
    """A private copy: the cache is written beside the data."""
    folder = tmp_path / "data"
    shutil.copytree(toy_corpus, folder)
    return folder


def load(
    tokenizer: Tokenizer, corpus: Path, *, max_len: int | None = 6, sha: str = TOKENIZER_SHA
) -> EncodedPairs:
    return load_or_encode(
        tokenizer,
        corpus / "train.en",
        corpus / "train.de",
        max_len=max_len,
        tokenizer_sha256=sha,
        cache_root=corpus / ".nmt-cache",
    )


def test_flat_arrays_hold_each_kept_pair_as_encoded_alone(
    toy_tokenizer: Tokenizer, corpus: Path
) -> None:
    pairs = encode_parallel(toy_tokenizer, corpus / "train.en", corpus / "train.de", max_len=6)
    expected = [
        (n, toy_tokenizer.encode(s), toy_tokenizer.encode_target(t))
        for n, s, t in read_parallel(corpus / "train.en", corpus / "train.de")
    ]
    expected = [e for e in expected if max(len(e[1]), len(e[2])) <= 6]
    assert 0 < len(expected) < 2000  # max_len=6 drops some pairs: the filter is exercised
    assert len(pairs) == len(expected)
    assert pairs.line_numbers.tolist() == [n for n, _, _ in expected]
    for i, (_, src, tgt) in enumerate(expected):
        assert pairs.src(i).tolist() == src
        assert pairs.tgt(i).tolist() == tgt
    assert pairs.src_lengths.tolist() == [len(s) for _, s, _ in expected]
    assert pairs.src_ids.dtype == np.uint16


def test_cache_is_built_once_then_mapped_read_only(
    toy_tokenizer: Tokenizer, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = []
    real_build = cache._build
    monkeypatch.setattr(cache, "_build", lambda *a, **k: builds.append(1) or real_build(*a, **k))
    first, second = load(toy_tokenizer, corpus), load(toy_tokenizer, corpus)
    assert len(builds) == 1
    for pairs in (first, second):
        assert isinstance(pairs.src_ids, np.memmap) and isinstance(pairs.tgt_ids, np.memmap)
        assert not pairs.src_ids.flags.writeable
    in_memory = encode_parallel(toy_tokenizer, corpus / "train.en", corpus / "train.de", max_len=6)
    for name in ("src_ids", "src_offsets", "tgt_ids", "tgt_offsets", "line_numbers"):
        assert np.array_equal(getattr(second, name), getattr(in_memory, name))
    assert second.batch([3, 0]).src.tolist() == in_memory.batch([3, 0]).src.tolist()
    # Nothing half-written is left beside the cache.
    assert not [
        p for p in (corpus / ".nmt-cache").iterdir() if p.name.startswith(".") and p.is_dir()
    ]


def test_changed_file_tokenizer_or_max_len_makes_a_new_cache(
    toy_tokenizer: Tokenizer, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = []
    real_build = cache._build
    monkeypatch.setattr(cache, "_build", lambda *a, **k: builds.append(1) or real_build(*a, **k))
    load(toy_tokenizer, corpus)
    load(toy_tokenizer, corpus, max_len=7)
    load(toy_tokenizer, corpus, sha="1" * 64)
    assert len(builds) == 3
    # Same size, new content in the middle of a line: the edge hashes and the mtime see it.
    lines = (corpus / "train.de").read_text().splitlines()
    lines[0] = lines[0][::-1]
    (corpus / "train.de").write_text("\n".join(lines) + "\n")
    os.utime(corpus / "train.de", ns=(1, 1))
    after = load(toy_tokenizer, corpus)
    assert len(builds) == 4
    assert after.line_numbers[0] != 1 or after.tgt(0).tolist() == toy_tokenizer.encode_target(
        lines[0]
    )


def test_torn_cache_is_rebuilt(toy_tokenizer: Tokenizer, corpus: Path) -> None:
    good = np.array(load(toy_tokenizer, corpus).src_ids)
    (folder,) = [p for p in (corpus / ".nmt-cache").iterdir() if p.is_dir()]
    with (folder / "src.bin").open("r+b") as f:
        f.truncate(10)  # as a full disk or a crash mid-copy would leave it
    assert np.array_equal(load(toy_tokenizer, corpus).src_ids, good)


def test_read_only_data_folder_caches_in_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    data.mkdir()
    assert cache.default_cache_root(data, run) == data / ".nmt-cache"
    monkeypatch.setattr(cache.os, "access", lambda path, mode: False)  # as if read-only
    assert cache.default_cache_root(data, run) == run / "data-cache"


def test_encoding_logs_once(
    toy_tokenizer: Tokenizer, corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="nmt.data.cache"):
        load(toy_tokenizer, corpus)
        load(toy_tokenizer, corpus)
    assert sum(r.message.startswith("encoding ") for r in caplog.records) == 1
    assert sum("memory-mapped" in r.message for r in caplog.records) == 2


def test_data_prepare_encodes_train_and_dev_once(
    toy_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nmt.cli import main

    from ..training.helpers import write_config

    data = tmp_path / "data"
    shutil.copytree(toy_corpus, data)
    config = write_config(tmp_path / "c.yaml", data, tmp_path / "run")
    assert main(["data", "prepare", str(config), "--data.max_len=30"]) == 0
    first = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in first] == ["train", "dev"]
    assert (tmp_path / "run" / "tokenizer.model").is_file()
    folders = sorted(p.name for p in (data / ".nmt-cache").iterdir() if p.is_dir())
    assert [f.split(".")[0] for f in folders] == ["dev", "train"]
    assert main(["data", "prepare", str(config), "--data.max_len=30"]) == 0
    assert capsys.readouterr().out.splitlines() == first  # the same folders, nothing re-encoded
    assert sorted(p.name for p in (data / ".nmt-cache").iterdir() if p.is_dir()) == folders

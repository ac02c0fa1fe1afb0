"""The encoded corpus on disk: encoded once, memory-mapped read-only by every process after.

At WMT scale (4.5 M pairs) encoding takes minutes; doing it at every start, in every rank, is
what this module prevents. A file pair is encoded into flat arrays (nmt.data.dataset) streamed
to disk: ``src.bin`` / ``tgt.bin`` hold the ids, ``*_offsets.npy`` where each pair starts,
``line_numbers.npy`` which line each kept pair came from, ``meta.json`` the rest. The folder's
name carries a key of everything the ids depend on: the tokenizer model's bytes, each file's
size, modification time and first and last MiB, ``max_len`` and the format. Change any of them
and a new folder is built; the old one stays until removed.

The first process to need a missing folder builds it under an exclusive file lock, in a
temporary folder renamed into place; every other process (the other torchrun ranks, a second
run on the same data) blocks on the lock, then maps what was built. Mapped pages live in the
page cache, shared by all ranks of a machine.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from nmt.data.dataset import EncodedPairs, encode_chunks, offsets, token_dtype
from nmt.data.parallel import ReadStats
from nmt.data.tokenizer import Tokenizer
from nmt.durable import temporary_dir
from nmt.errors import NmtError

log = logging.getLogger(__name__)

FORMAT = 1
META_FILE = "meta.json"
# Bytes hashed at each end of a data file for its fingerprint (with its size and mtime): cheap
# at any size, and an edit of a line almost always moves the size or the ends as well.
EDGE_BYTES = 1 << 20


def file_fingerprint(path: Path) -> dict[str, Any]:
    try:
        stat = path.stat()
        digest = hashlib.sha256()
        with path.open("rb") as f:
            digest.update(f.read(EDGE_BYTES))
            if stat.st_size > EDGE_BYTES:
                f.seek(max(EDGE_BYTES, stat.st_size - EDGE_BYTES))
                digest.update(f.read())
    except OSError as exc:
        raise NmtError(f"{path}: cannot read ({exc.strerror})") from None
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256_ends": digest.hexdigest()}


def tokenizer_fingerprint(path: Path) -> str:
    """The tokenizer model file's sha256 (a few hundred KB: cheap)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise NmtError(f"{path}: cannot read ({exc.strerror})") from None


def cache_key(
    src_path: Path, tgt_path: Path, *, tokenizer_sha256: str, max_len: int | None
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "tokenizer_sha256": tokenizer_sha256,
        "max_len": max_len,
        "src": file_fingerprint(src_path),
        "tgt": file_fingerprint(tgt_path),
    }


def default_cache_root(data_dir: Path, run_dir: Path) -> Path:
    """``DATA/.nmt-cache`` beside the data, shared by every run; the run's own folder when the
    data folder is read-only."""
    root = data_dir / ".nmt-cache"
    with suppress(OSError):
        root.mkdir(exist_ok=True)
    if root.is_dir() and os.access(root, os.W_OK):
        return root
    return run_dir / "data-cache"


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, or the process dies
        yield


def _map(folder: Path, key: dict[str, Any]) -> EncodedPairs | None:
    """The cached arrays, memory-mapped read-only; None if absent, of another key, or torn."""
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("key") != key:
        return None
    try:
        dtype = np.dtype(meta["dtype"])
        pairs = EncodedPairs(
            src_ids=np.memmap(folder / "src.bin", dtype=dtype, mode="r")
            if meta["src_tokens"]
            else np.zeros(0, dtype),
            src_offsets=np.load(folder / "src_offsets.npy", mmap_mode="r"),
            tgt_ids=np.memmap(folder / "tgt.bin", dtype=dtype, mode="r")
            if meta["tgt_tokens"]
            else np.zeros(0, dtype),
            tgt_offsets=np.load(folder / "tgt_offsets.npy", mmap_mode="r"),
            line_numbers=np.load(folder / "line_numbers.npy", mmap_mode="r"),
        )
    except (OSError, ValueError, KeyError):
        return None
    sizes_agree = (
        len(pairs) == meta["pairs"]
        and len(pairs.src_offsets) == len(pairs.tgt_offsets) == len(pairs) + 1
        and len(pairs.src_ids) == pairs.src_offsets[-1] == meta["src_tokens"]
        and len(pairs.tgt_ids) == pairs.tgt_offsets[-1] == meta["tgt_tokens"]
    )
    return pairs if sizes_agree else None


def _build(
    folder: Path,
    tokenizer: Tokenizer,
    src_path: Path,
    tgt_path: Path,
    *,
    max_len: int | None,
    key: dict[str, Any],
) -> ReadStats:
    """Encode into a temporary folder beside ``folder``, then rename it into place."""
    stats = ReadStats()
    with temporary_dir(folder) as tmp:
        src_lengths, tgt_lengths, lines = [], [], []
        with (tmp / "src.bin").open("wb") as src_out, (tmp / "tgt.bin").open("wb") as tgt_out:
            for chunk in encode_chunks(tokenizer, src_path, tgt_path, max_len=max_len, stats=stats):
                chunk.src_ids.tofile(src_out)
                chunk.tgt_ids.tofile(tgt_out)
                src_lengths.append(chunk.src_lengths)
                tgt_lengths.append(chunk.tgt_lengths)
                lines.append(chunk.line_numbers)
        src_offsets, tgt_offsets = offsets(src_lengths), offsets(tgt_lengths)
        np.save(tmp / "src_offsets.npy", src_offsets)
        np.save(tmp / "tgt_offsets.npy", tgt_offsets)
        np.save(tmp / "line_numbers.npy", np.concatenate(lines or [np.zeros(0, np.int64)]))
        meta = {
            "key": key,
            "pairs": len(src_offsets) - 1,
            "dtype": token_dtype(tokenizer.vocab_size).name,
            "src_tokens": int(src_offsets[-1]),
            "tgt_tokens": int(tgt_offsets[-1]),
            "read": asdict(stats),
            "src_path": str(src_path),
            "tgt_path": str(tgt_path),
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return stats


def load_or_encode(
    tokenizer: Tokenizer,
    src_path: Path,
    tgt_path: Path,
    *,
    max_len: int | None,
    tokenizer_sha256: str,
    cache_root: Path,
) -> EncodedPairs:
    """The file pair's encoded pairs, from the cache, building it first if no one has yet."""
    key = cache_key(src_path, tgt_path, tokenizer_sha256=tokenizer_sha256, max_len=max_len)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = cache_root / f"{src_path.name}+{tgt_path.name}.{digest}"
    if (pairs := _map(folder, key)) is None:
        try:
            cache_root.mkdir(parents=True, exist_ok=True)
            with _exclusive(cache_root / f".{folder.name}.lock"):
                # Whoever held the lock before us may have built it: then map theirs.
                if (pairs := _map(folder, key)) is None:
                    log.info("encoding %s / %s into %s (once)", src_path, tgt_path, folder)
                    shutil.rmtree(folder, ignore_errors=True)  # a torn or stale build
                    stats = _build(folder, tokenizer, src_path, tgt_path, max_len=max_len, key=key)
                    log.info("%s / %s: %s", src_path, tgt_path, stats.summary())
                    pairs = _map(folder, key)
        except OSError as exc:
            raise NmtError(f"{folder}: cannot write the encoded corpus ({exc})") from None
        if pairs is None:
            raise NmtError(f"{folder}: the encoded corpus just written does not read back")
    log.info("%s / %s: %d pairs, memory-mapped from %s", src_path, tgt_path, len(pairs), folder)
    return pairs

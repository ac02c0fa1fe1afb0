"""Reading a source/target file pair: the one place every verb reads parallel text.

Files are streamed line by line (nothing holds a whole corpus as text). The checks a user needs
happen here once: both files exist, have the same number of lines, and are valid UTF-8; empty
pairs and over-long pairs are dropped and counted, never silently. ``check_corpus`` runs these
checks on every file of a corpus before training spends any time on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nmt.config import DataConfig
from nmt.durable import atomic_write_text
from nmt.errors import NmtError

log = logging.getLogger(__name__)


def count_lines(path: Path) -> int:
    """Lines in a file (a last line without a newline counts), read in binary blocks."""
    try:
        with path.open("rb") as f:
            count = 0
            last = b"\n"
            while block := f.read(1 << 20):
                count += block.count(b"\n")
                last = block[-1:]
            return count + (last != b"\n")
    except OSError as exc:
        raise NmtError(f"{path}: cannot read ({exc.strerror})") from None


def iter_lines(path: Path) -> Iterator[str]:
    """Decoded lines without their line ending (LF or CRLF) and without a byte-order mark at the
    start of the file; invalid UTF-8 fails with the path and line."""
    try:
        with path.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                if number == 1:
                    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a BOM (Windows editors) is no text
                try:
                    yield raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    raise NmtError(
                        f"{path}:{number}: not valid UTF-8 (byte {exc.start + 1} of the line)"
                    ) from None
    except OSError as exc:
        raise NmtError(f"{path}: cannot read ({exc.strerror})") from None


def check_same_length(src_path: Path, tgt_path: Path) -> int:
    """Both files' line count, or an error naming both paths and both counts."""
    num_src, num_tgt = count_lines(src_path), count_lines(tgt_path)
    if num_src != num_tgt:
        raise NmtError(
            f"parallel files differ in length: {src_path} has {num_src} lines, "
            f"{tgt_path} has {num_tgt}"
        )
    return num_src


@dataclass
class ReadStats:
    """What reading a file pair kept and dropped, and why."""

    read: int = 0
    kept: int = 0
    dropped_empty: int = 0
    dropped_long: int = 0

    def summary(self) -> str:
        return (
            f"{self.read} pairs read, {self.kept} kept, {self.dropped_empty} dropped as empty, "
            f"{self.dropped_long} dropped as too long"
        )


def read_parallel(
    src_path: Path,
    tgt_path: Path,
    *,
    max_words: int | None = None,
    stats: ReadStats | None = None,
    keep_empty: bool = False,
) -> Iterator[tuple[int, str, str]]:
    """Yield ``(line_number, src, tgt)`` for each pair kept.

    A pair with an empty side is dropped (unless ``keep_empty``, as translation needs), and so is
    a pair with more than ``max_words`` whitespace-separated words on either side. ``stats``, if
    given, is filled in as the pairs go by.
    """
    check_same_length(src_path, tgt_path)
    stats = stats if stats is not None else ReadStats()
    for number, (src, tgt) in enumerate(
        zip(iter_lines(src_path), iter_lines(tgt_path), strict=True), 1
    ):
        stats.read += 1
        src, tgt = src.strip(), tgt.strip()
        if not keep_empty and (not src or not tgt):
            stats.dropped_empty += 1
            continue
        if max_words is not None and max(len(src.split()), len(tgt.split())) > max_words:
            stats.dropped_long += 1
            continue
        stats.kept += 1
        yield number, src, tgt


def check_corpus(data: DataConfig) -> list[Path]:
    """Check the corpus before any work: the train and dev pairs (and test, if present) exist,
    are valid UTF-8, have equal line counts and at least one pair with both sides non-empty.

    Returns the training files (source, target): what the tokenizer is trained on.
    """
    train: list[Path] = []
    for split in ("train", "dev", "test"):
        pair = [data.dir / f"{split}.{data.src_lang}", data.dir / f"{split}.{data.tgt_lang}"]
        if split == "test" and not any(p.exists() for p in pair):
            continue  # training never reads the test set; check it only where it is there
        for path in pair:
            if path.is_dir():
                raise NmtError(f"{path}: a directory, not a {split} file (see data.dir)")
            if not path.is_file():
                raise NmtError(f"{path}: {split} file not found (see data.dir in the config)")
        check_same_length(*pair)
        usable = sum(
            bool(src.strip() and tgt.strip())
            for src, tgt in zip(iter_lines(pair[0]), iter_lines(pair[1]), strict=True)
        )
        if not usable:
            raise NmtError(f"{pair[0]}, {pair[1]}: no sentence pair with both sides non-empty")
        if split == "train":
            train = pair
    return train


def fingerprint(paths: Sequence[Path]) -> dict[str, str]:
    """SHA-256 of each file by name: what identifies the data a tokenizer was trained on."""
    digests = {}
    for path in paths:
        with path.open("rb") as f:
            digests[path.name] = hashlib.file_digest(f, "sha256").hexdigest()
    return digests


def check_tokenizer_data(record: Path, paths: Sequence[Path], *, trained_now: bool) -> None:
    """Record which files a newly trained tokenizer saw; for an existing one, refuse to go on
    with other files (a corpus fetched again, another corpus at the same path)."""
    current = fingerprint(paths)
    if trained_now or not record.is_file():  # runs from before the record get one now
        atomic_write_text(record, json.dumps(current, indent=1) + "\n")
        return
    try:
        stored = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NmtError(f"{record}: unreadable ({exc}); remove it to record today's data") from None
    if stored != current:
        names = {*stored, *current}
        changed = sorted(name for name in names if stored.get(name) != current.get(name))
        raise NmtError(
            f"{record.parent}: its tokenizer was trained on other data than the config's "
            f"({', '.join(changed)} changed); train in a new training.run_dir, or restore the data"
        )

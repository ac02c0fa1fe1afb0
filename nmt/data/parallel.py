"""Reading a source/target file pair: the one place every verb reads parallel text.

Files are streamed line by line (nothing holds a whole corpus as text). The checks a user needs
happen here once: both files exist, have the same number of lines, and are valid UTF-8; empty
pairs and over-long pairs are dropped and counted, never silently.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
    """Decoded lines without their line ending; invalid UTF-8 fails with the path and line."""
    try:
        with path.open("rb") as f:
            for number, raw in enumerate(f, start=1):
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
    for number, (src, tgt) in enumerate(zip(iter_lines(src_path), iter_lines(tgt_path)), 1):
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

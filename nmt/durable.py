"""Publishing files durably: a reader, or a run after a crash, sees the old content or the new.

Everything nmt writes is first written under a temporary name beside its destination, then
published here: flushed to the disk, renamed into place, and the rename itself flushed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file's content, or a directory's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, path: Path) -> None:
    """Rename a finished temporary file or directory to ``path``, durably.

    The content is flushed before the rename (else a crash can publish an empty file under the
    final name) and the parent directory after it (else the rename itself can be lost).
    """
    if tmp.is_dir():
        for child in tmp.iterdir():
            fsync_path(child)
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)


def write_file_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Have ``write`` fill a temporary file beside ``path`` (keeping its suffix, which tools such
    as matplotlib read the format from), then publish it; on failure nothing is left behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        publish(Path(tmp), path)
    finally:
        Path(tmp).unlink(missing_ok=True)

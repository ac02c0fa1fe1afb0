"""Publishing files durably: a reader, or a run after a crash, sees the old content or the new.

Everything nmt writes is first written under a temporary name beside its destination, then
published here: flushed to the disk, renamed into place, and the rename itself flushed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nmt.errors import NmtError


def fsync_path(path: Path) -> None:
    """Flush a file's content, or a directory's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def flush(tmp: Path) -> None:
    """Flush a finished file, or a directory with its files, before it is renamed into place
    (else a crash can publish an empty file under the final name)."""
    if tmp.is_dir():
        for child in tmp.iterdir():
            fsync_path(child)
    fsync_path(tmp)


def publish(tmp: Path, path: Path) -> None:
    """Rename a finished temporary file or directory to ``path``, durably: its content flushed
    before the rename, the parent directory after it (else the rename itself can be lost)."""
    flush(tmp)
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


def replace_dir(src: Path, dst: Path) -> None:
    """Move a finished directory to ``dst``, durably, replacing an older one: that is renamed
    away only once ``src`` is flushed, and put back if the rename fails."""
    flush(src)
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        if old is not None:
            os.replace(old, dst)
        raise
    fsync_path(dst.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def directory_written_atomically(
    out_dir: Path,
    *,
    what: str,
    write_errors: tuple[type[Exception], ...] = (OSError,),
    consequence: str = "",
) -> Iterator[Path]:
    """A temporary folder beside ``out_dir`` to fill; when the block ends it replaces
    ``out_dir`` (model directories, checkpoints, exports).

    A failed write (a full disk, a file-size limit, no permission: any of ``write_errors``)
    leaves ``out_dir`` as it was and nothing temporary behind, and becomes one NmtError:
    "OUT_DIR: cannot write WHAT (the reason)CONSEQUENCE".
    """
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    except OSError as exc:
        raise NmtError(f"{out_dir}: cannot write {what} ({exc.strerror or exc})") from None
    try:
        yield tmp
        replace_dir(tmp, out_dir)
    except write_errors as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise NmtError(f"{out_dir}: cannot write {what} ({exc}){consequence}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

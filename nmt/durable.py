"""Publishing files durably: a reader, or a run after a crash, sees the old content or the new.

Everything nmt writes is first written under a temporary name beside its destination (a name
that starts with a dot), then published here: flushed to the disk, renamed into place, and the
rename itself flushed. Temporary names and renames are made here, for every writer.

Replacing a directory takes two renames (the old one away, the new one in). A kill between them
leaves no directory under the destination's name, only the old one under its hidden name
(``.NAME.old``); ``recover_replaced`` (which every start of a run calls before it clears what a
kill left behind) puts it back, so that the old version survives, as promised above.

One file is not rewritten whole: ``metrics.jsonl`` grows by whole lines appended in place
(nmt.training.metrics), since rewriting a growing file at every log step would cost time
quadratic in the run; a kill can cut only its last line, which reading it leaves out.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from nmt.errors import NmtError

OLD_SUFFIX = ".old"


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


def temporary_name(path: Path) -> Path:
    """A new empty file beside ``path``, hidden, keeping its suffix (which tools such as
    matplotlib read the format from). The folder must exist."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    return Path(name)


@contextmanager
def temporary_file(path: Path, tmp: Path | None = None) -> Iterator[Path]:
    """A temporary file beside ``path`` to fill (``tmp``, or a new ``temporary_name``);
    published as ``path`` when the block ends, removed if it fails."""
    tmp = tmp or temporary_name(path)
    try:
        yield tmp
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def text_file_atomically(path: Path) -> Iterator[TextIO]:
    """``temporary_file`` opened for text (UTF-8, Unix line ends); a temporary that cannot be
    made (no such folder, no permission) is one NmtError: "PATH: cannot write (the reason)"."""
    try:
        tmp = temporary_name(path)
    except OSError as exc:
        raise NmtError(f"{path}: cannot write ({exc.strerror or exc})") from None
    with temporary_file(path, tmp) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as f:
        yield f


@contextmanager
def staging_dir(beside: Path) -> Iterator[Path]:
    """A temporary folder beside ``beside`` (on its file system, so that what is written there
    can be published from it), removed when the block ends, whatever happens."""
    beside.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=beside.parent, prefix=f".{beside.name}.") as tmp:
        yield Path(tmp)


def write_file_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Have ``write`` fill a temporary file beside ``path``, then publish it."""
    with temporary_file(path) as tmp:
        write(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file (and its folder) so that readers see the old content or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with temporary_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def copy_file_atomically(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` (a copy cut short by a kill never appears under ``dst``)."""
    with temporary_file(dst) as tmp:
        shutil.copyfile(src, tmp)


def hidden_old(dst: Path) -> Path:
    """Where ``replace_dir`` keeps the old ``dst`` between its two renames."""
    return dst.with_name(f".{dst.name}{OLD_SUFFIX}")


def recover_replaced(folder: Path) -> list[Path]:
    """Put back every directory that a kill between ``replace_dir``'s two renames left only
    under its hidden name, in ``folder``; return the destinations recovered. Call it before
    removing a folder's temporary files (which the hidden copy looks like)."""
    recovered: list[Path] = []
    if not folder.is_dir():
        return recovered
    for old in sorted(folder.glob(f".*{OLD_SUFFIX}")):
        dst = folder / old.name[1 : -len(OLD_SUFFIX)]
        if old.is_dir() and not dst.exists():
            os.replace(old, dst)
            fsync_path(folder)
            recovered.append(dst)
    return recovered


def replace_dir(src: Path, dst: Path) -> None:
    """Move a finished directory to ``dst``, durably, replacing an older one: that is renamed
    away only once ``src`` is flushed, put back if the rename fails, and recovered by
    ``recover_replaced`` if a kill comes between the two renames."""
    flush(src)
    recover_replaced(dst.parent)  # a kill here before: the old copy is the one to replace
    old = None
    if dst.exists():
        old = hidden_old(dst)
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
def temporary_dir(out_dir: Path) -> Iterator[Path]:
    """A temporary folder beside ``out_dir`` to fill; when the block ends it replaces
    ``out_dir``; if the block fails, it is removed and ``out_dir`` stays as it was."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        yield tmp
        replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def directory_written_atomically(
    out_dir: Path,
    *,
    what: str,
    write_errors: tuple[type[Exception], ...] = (OSError,),
    consequence: str = "",
) -> Iterator[Path]:
    """``temporary_dir`` for model directories, checkpoints and exports, whose failed write (a
    full disk, a file-size limit, no permission: any of ``write_errors``) becomes one NmtError:
    "OUT_DIR: cannot write WHAT (the reason)CONSEQUENCE"."""
    try:
        with temporary_dir(out_dir) as tmp:
            yield tmp
    except write_errors as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise NmtError(f"{out_dir}: cannot write {what} ({reason}){consequence}") from None

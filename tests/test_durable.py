"""Publishing directories: a failed write or rename leaves the old directory in place."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nmt.durable import directory_written_atomically, replace_dir, text_file_atomically
from nmt.errors import NmtError
from nmt.training.checkpoint import remove_temporary


def folder(path: Path, content: str) -> Path:
    path.mkdir()
    (path / "file.txt").write_text(content, encoding="utf-8")
    return path


def test_a_new_directory_replaces_the_old_one(tmp_path: Path) -> None:
    out = folder(tmp_path / "out", "old")
    with directory_written_atomically(out, what="the test folder") as tmp:
        (tmp / "file.txt").write_text("new", encoding="utf-8")
    assert (out / "file.txt").read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing temporary left


def test_a_failed_write_leaves_the_old_directory_and_no_temporary(tmp_path: Path) -> None:
    out = folder(tmp_path / "out", "old")
    with (
        pytest.raises(NmtError, match=r"out: cannot write the test folder \(disk full\), so"),
        directory_written_atomically(out, what="the test folder", consequence=", so") as tmp,
    ):
        (tmp / "half.txt").write_text("half", encoding="utf-8")
        raise OSError("disk full")
    assert (out / "file.txt").read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_rename_puts_the_old_directory_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = folder(tmp_path / "out", "old")
    new = folder(tmp_path / "new", "new")
    real_replace = os.replace

    def failing_replace(src: str | Path, dst: str | Path) -> None:
        if Path(src) == new:  # moving the old one away works; publishing the new one fails
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        replace_dir(new, out)
    assert (out / "file.txt").read_text(encoding="utf-8") == "old"


KILLED_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path
from nmt.durable import replace_dir

real_replace = os.replace
def replace_then_die(src, dst):
    if Path(src).name == "new":  # the second rename: the kill comes first
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)
os.replace = replace_then_die
replace_dir(Path(sys.argv[1]) / "new", Path(sys.argv[1]) / "out")
"""


def test_a_kill_between_the_two_renames_loses_nothing(tmp_path: Path) -> None:
    out = folder(tmp_path / "out", "old")
    folder(tmp_path / "new", "new")
    killed = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES, str(tmp_path)])
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists()  # the window: the old copy is only under its hidden name
    # The next start of a run clears what a kill left behind, and puts the old copy back first.
    remove_temporary(tmp_path)
    assert (out / "file.txt").read_text(encoding="utf-8") == "old"
    # A kill in the same window again ("new" is still there: a kill leaves its temporary
    # behind); this time the next replace_dir is what finds the hidden copy.
    subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES, str(tmp_path)])
    assert not out.exists()
    replace_dir(folder(tmp_path / "newer", "newer"), out)
    assert (out / "file.txt").read_text(encoding="utf-8") == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "out"]


def test_a_text_file_is_published_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError), text_file_atomically(path) as f:
        f.write("half")
        raise RuntimeError("killed")
    assert path.read_text(encoding="utf-8") == "old"
    with text_file_atomically(path) as f:
        f.write("new\n")
    assert path.read_bytes() == b"new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    with pytest.raises(NmtError, match=r"missing/out.txt: cannot write \(No such file"):
        text_file_atomically(tmp_path / "missing" / "out.txt").__enter__()

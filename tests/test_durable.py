"""Publishing directories: a failed write or rename leaves the old directory in place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nmt.durable import directory_written_atomically, replace_dir
from nmt.errors import NmtError


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

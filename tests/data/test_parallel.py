from pathlib import Path

import pytest

from nmt.data.parallel import ReadStats, count_lines, read_parallel
from nmt.errors import NmtError


def test_count_lines_counts_a_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"one\ntwo\nthree")
    assert count_lines(path) == 3
    path.write_bytes(b"one\ntwo\n")
    assert count_lines(path) == 2
    path.write_bytes(b"")
    assert count_lines(path) == 0


def test_files_of_different_length_fail_naming_both(tmp_path: Path) -> None:
    src, tgt = tmp_path / "x.en", tmp_path / "x.de"
    src.write_text("a\nb\nc\n")
    tgt.write_text("a\nb\n")
    with pytest.raises(NmtError) as error:
        list(read_parallel(src, tgt))
    message = str(error.value)
    assert str(src) in message and str(tgt) in message
    assert "3" in message and "2" in message


def test_invalid_utf8_fails_with_path_and_line(tmp_path: Path) -> None:
    src, tgt = tmp_path / "x.en", tmp_path / "x.de"
    src.write_bytes(b"fine\nalso fine\nbad \xff byte\n")
    tgt.write_bytes(b"gut\nauch gut\nschlecht\n")
    with pytest.raises(NmtError, match=rf"{src}:3: not valid UTF-8"):
        list(read_parallel(src, tgt))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NmtError, match="cannot read"):
        list(read_parallel(tmp_path / "no.en", tmp_path / "no.de"))


def test_empty_and_long_pairs_are_dropped_and_counted(tmp_path: Path) -> None:
    src, tgt = tmp_path / "x.en", tmp_path / "x.de"
    src.write_text("one two\n\nthree\nfour five six seven\n  \n")
    tgt.write_text("eins zwei\nleer\n\nvier\nleer\n")
    stats = ReadStats()
    pairs = list(read_parallel(src, tgt, max_words=3, stats=stats))
    assert pairs == [(1, "one two", "eins zwei")]
    assert (stats.read, stats.kept, stats.dropped_empty, stats.dropped_long) == (5, 1, 3, 1)
    assert "3 dropped as empty" in stats.summary()


def test_keep_empty_keeps_blank_lines_for_translation(tmp_path: Path) -> None:
    src, tgt = tmp_path / "x.en", tmp_path / "x.de"
    src.write_text("a\n\n")
    tgt.write_text("b\n\n")
    assert [n for n, _, _ in read_parallel(src, tgt, keep_empty=True)] == [1, 2]

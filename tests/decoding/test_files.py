"""translate_file: files and standard streams, chunks, n-best lines, atomic output."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest

from nmt.data.tokenizer import Tokenizer
from nmt.decoding.files import translate_file
from nmt.decoding.translator import Translator
from nmt.errors import NmtError


@pytest.fixture
def translator(copy_model: Any, tokenizer: Tokenizer) -> Translator:
    return Translator(copy_model, tokenizer)


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_file_to_file_in_chunks(translator: Translator, tmp_path: Path, lines: list[str]) -> None:
    source = [*lines[:5], "", *lines[5:]]
    output = tmp_path / "out.txt"
    done = translate_file(
        translator, input_path=write(tmp_path / "in.txt", source), output_path=output, chunk_size=4
    )
    assert done == len(source)
    assert output.read_text(encoding="utf-8") == "".join(line + "\n" for line in source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]  # no temp files


def test_stdin_to_stdout(
    translator: Translator,
    lines: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = "".join(line + "\n" for line in lines[:3]).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="latin-1"))
    assert translate_file(translator, input_path=None, output_path=None, chunk_size=2) == 3
    assert capsys.readouterr().out == data.decode()


def test_nbest_lines(translator: Translator, tmp_path: Path, lines: list[str]) -> None:
    output = tmp_path / "out.txt"
    translate_file(
        translator,
        input_path=write(tmp_path / "in.txt", lines[:3]),
        output_path=output,
        beam_size=3,
        nbest=2,
        chunk_size=2,
    )
    rows = [line.split(" ||| ") for line in output.read_text(encoding="utf-8").splitlines()]
    assert [int(number) for number, _, _ in rows] == [0, 0, 1, 1, 2, 2]  # 0-based
    assert [text for _, text, _ in rows[::2]] == lines[:3]
    for first, second in zip(rows[::2], rows[1::2], strict=True):
        assert float(first[2]) >= float(second[2])


def test_a_failed_run_leaves_the_old_output(
    translator: Translator, tmp_path: Path, lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    output = write(tmp_path / "out.txt", ["old"])
    calls = 0
    real = translator.translate

    def failing(*args: Any, **kwargs: Any) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(translator, "translate", failing)
    with pytest.raises(RuntimeError):
        translate_file(
            translator,
            input_path=write(tmp_path / "in.txt", lines),
            output_path=output,
            chunk_size=3,
        )
    assert output.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]


def test_invalid_utf8_names_the_line(translator: Translator, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes(b"hello\nworld \xff\n")
    with pytest.raises(NmtError, match=r"in.txt:2"):
        translate_file(translator, input_path=source, output_path=tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()


def test_missing_input_is_a_clear_error(translator: Translator, tmp_path: Path) -> None:
    with pytest.raises(NmtError, match=r"missing\.txt"):
        translate_file(translator, input_path=tmp_path / "missing.txt", output_path=None)


def test_progress_bar_on_stderr(
    translator: Translator, tmp_path: Path, lines: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path / "in.txt", lines[:2])
    translate_file(translator, input_path=source, output_path=tmp_path / "out.txt", progress=True)
    assert "2/2" in capsys.readouterr().err
    translate_file(translator, input_path=source, output_path=tmp_path / "out.txt", progress=False)
    assert capsys.readouterr().err == ""

"""translate_file: files and standard streams, chunks, n-best lines, atomic output."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from nmt.config import DecodingConfig
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
        options=DecodingConfig(beam_size=3, nbest=2),
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


def test_an_output_folder_that_does_not_exist_is_a_clear_error(
    translator: Translator, tmp_path: Path, lines: list[str]
) -> None:
    output = tmp_path / "no-such-folder" / "out.txt"
    with pytest.raises(NmtError, match=r"no-such-folder/out\.txt: cannot write"):
        translate_file(
            translator, input_path=write(tmp_path / "in.txt", lines[:1]), output_path=output
        )


def test_progress_bar_on_stderr(
    translator: Translator, tmp_path: Path, lines: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path / "in.txt", lines[:2])
    translate_file(translator, input_path=source, output_path=tmp_path / "out.txt", progress=True)
    assert "2/2" in capsys.readouterr().err
    translate_file(translator, input_path=source, output_path=tmp_path / "out.txt", progress=False)
    assert capsys.readouterr().err == ""


# -- interactive use: each line is translated as soon as it is entered ------------------------


def read_line(fd: int, timeout: float) -> bytes | None:
    """One line from ``fd``, or None if none is complete within ``timeout`` seconds."""
    data = b""
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        chunk = os.read(fd, 1)
        if not chunk:
            return data or None
        data += chunk
    return data


def start_translating(
    translator: Translator, stdin_fd: int, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> tuple[int, threading.Thread, list[int]]:
    """translate_file on a thread, reading ``stdin_fd``; returns the fd its stdout goes to."""
    out_read, out_write = os.pipe()
    monkeypatch.setattr(sys, "stdin", open(stdin_fd, encoding="utf-8", closefd=False))  # noqa: SIM115
    monkeypatch.setattr(sys, "stdout", open(out_write, "w", encoding="utf-8"))  # noqa: SIM115
    done: list[int] = []
    thread = threading.Thread(
        target=lambda: done.append(
            translate_file(translator, input_path=None, output_path=None, **options)
        ),
        daemon=True,
    )
    thread.start()
    return out_read, thread, done


def test_a_pipe_in_interactive_mode_answers_each_line_before_the_next(
    translator: Translator, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_read, in_write = os.pipe()
    out, thread, done = start_translating(translator, in_read, monkeypatch, interactive=True)
    os.write(in_write, b"hello world\n")
    assert read_line(out, timeout=30) == b"hello world\n"  # the second line is not sent yet
    os.write(in_write, b"the cat sat on the mat\n")
    assert read_line(out, timeout=30) == b"the cat sat on the mat\n"
    os.close(in_write)
    thread.join(timeout=30)
    assert done == [2]


def test_a_pipe_is_batched_by_default(
    translator: Translator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counterpart of the test above: piped input waits for a whole chunk (or the end)."""
    in_read, in_write = os.pipe()
    out, thread, done = start_translating(translator, in_read, monkeypatch)
    os.write(in_write, b"hello world\n")
    assert read_line(out, timeout=1.0) is None
    os.close(in_write)
    assert read_line(out, timeout=30) == b"hello world\n"
    thread.join(timeout=30)
    assert done == [1]


def test_a_terminal_is_interactive(translator: Translator, monkeypatch: pytest.MonkeyPatch) -> None:
    terminal, stdin = os.openpty()
    out, thread, done = start_translating(translator, stdin, monkeypatch)
    os.write(terminal, b"hello world\n")
    assert read_line(out, timeout=30) == b"hello world\n"
    os.write(terminal, b"\x04")  # Ctrl-D at the start of a line: end of input
    thread.join(timeout=30)
    assert done == [1]
    os.close(terminal)
    os.close(stdin)


def test_nmt_translate_at_a_terminal_answers_line_by_line(model_dir: Path) -> None:
    terminal, stdin = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "nmt.cli", "translate", str(model_dir), "--max-len-b", "3"],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        out = process.stdout.fileno()
        os.write(terminal, b"hello world\n")
        first = read_line(out, timeout=120)  # the process starts, loads, translates
        assert first is not None and first.endswith(b"\n")
        os.write(terminal, b"the cat\n")
        assert read_line(out, timeout=60) is not None
        os.write(terminal, b"\x04")
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
        os.close(terminal)
        os.close(stdin)


def test_command_line_options_override_the_models_and_are_checked_once(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nmt.cli import main

    source = write(tmp_path / "in.txt", ["hello world", "the cat"])
    args = ["translate", str(model_dir), "-i", str(source), "-q", "--max-len-b=3"]
    assert main([*args, "--beam-size", "3", "--nbest=2"]) == 0
    rows = [line.split(" ||| ") for line in capsys.readouterr().out.splitlines()]
    assert [int(row[0]) for row in rows] == [0, 0, 1, 1]  # n-best lines: the flag reached search
    assert main([*args, "--beam-size", "2", "--nbest", "3"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("nmt: error: ") and "nbest (3)" in error and "Traceback" not in error
    assert main([*args, "--stopping", "exact", "--patience", "2"]) == 1
    assert "patience" in capsys.readouterr().err


def test_the_command_line_unsets_an_option_the_model_sets(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, a model whose config set patience could never be decoded with --stopping exact
    (a flag left out and 'no value' were the same None)."""
    from nmt.cli import main

    config = model_dir / "config.yaml"
    tree = yaml.safe_load(config.read_text(encoding="utf-8"))
    tree["decoding"]["patience"] = 1.0
    config.write_text(yaml.safe_dump(tree), encoding="utf-8")
    source = write(tmp_path / "in.txt", ["hello world"])
    args = ["translate", str(model_dir), "-i", str(source), "-q", "--stopping", "exact"]
    assert main(args) == 1
    assert "--patience none" in capsys.readouterr().err
    assert main([*args, "--patience", "none"]) == 0


def test_prefix_and_guards_reach_search_from_the_command_line(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nmt.cli import main

    source = write(tmp_path / "in.txt", ["hello world", "the cat sat on the mat"])
    args = ["translate", str(model_dir), "-i", str(source), "-q"]
    assert main([*args, "--prefix", "the cat", "--no-repeat-ngram-size", "1"]) == 0
    outputs = capsys.readouterr().out.splitlines()
    assert len(outputs) == 2 and all(line.startswith("the cat") for line in outputs)
    assert main([*args, "--prefix", "the quick brown fox jumps over the lazy dog"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("nmt: error: prefix:") and error.count("\n") == 1
    assert main([*args, "--repetition-penalty", "0"]) == 1
    assert "repetition_penalty" in capsys.readouterr().err

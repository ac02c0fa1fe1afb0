"""`nmt experiment table3` end to end on the toy corpus, seconds a cell: killed in the middle of a
cell, it resumes that cell from its checkpoint and never retrains a finished one."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nmt.cli import main
from nmt.config import load_config
from nmt.decoding.translator import Translator
from nmt.experiments.table3 import PLOT_FILE, RESULT_FILE, TABLE_FILE, run_table3

from ..training.helpers import write_config

MINUTES = 0.03  # 1.8 s of training a cell


def command(base: Path, data: Path, out: Path, *, minutes: float = MINUTES) -> list[str]:
    return [
        *(sys.executable, "-m", "nmt.cli", "experiment", "table3", "--base", str(base)),
        *("--data", str(data), "--out", str(out), "--minutes", str(minutes), "--rows", "E", "-q"),
    ]


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One thread in this process too: quicker for tiny models on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def snapshot(cell_dir: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of a cell's folder with its modification time and content."""
    return {
        str(p.relative_to(cell_dir)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(cell_dir.rglob("*"))
        if p.is_file()
    }


def test_a_killed_table_resumes_and_retrains_nothing(
    toy_corpus: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    one_thread: None,
) -> None:
    base = write_config(tmp_path / "base.yaml", toy_corpus, tmp_path / "unused")
    out = tmp_path / "out"
    cells = out / "cells"

    # Kill the run once the base row is scored and the second cell (E1) has a checkpoint.
    process = subprocess.Popen(
        command(base, toy_corpus, out),
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = cells / "E1" / "checkpoints"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        base_scored = (cells / "base" / RESULT_FILE).is_file()
        if base_scored and checkpoints.is_dir() and any(checkpoints.glob("step-*")):
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (cells / "E1" / RESULT_FILE).is_file()
    base_before = snapshot(cells / "base")

    # The rest in this process (quicker): first the rerun that finishes the table.
    argv = command(base, toy_corpus, out)[3:]
    caplog.set_level(logging.INFO)
    assert main(argv) == 0
    log = caplog.text
    assert "cell base (base): scored before, not trained again" in log
    assert "cell base (base): training" not in log
    assert f"resumed from {checkpoints}" in log  # E1 went on from its checkpoint
    assert snapshot(cells / "base") == base_before

    results = {n: json.loads((cells / n / RESULT_FILE).read_text()) for n in ("base", "E1")}
    for result in results.values():
        assert result["steps"] > 0 and result["train_seconds"] >= MINUTES * 60
        assert result["dev_ppl"] > 1 and 0 <= result["dev_bleu"] <= 100
        assert len((cells / result["name"] / "dev.hyp").read_text().splitlines()) == 50
    table = (out / TABLE_FILE).read_text()
    assert "| base | 2 | 32 | 64 | 4 | 8 | 8 | 0.1 | 0.1 |" in table
    assert f"| {results['E1']['dev_ppl']:.2f} |" in table
    assert "positional embedding instead of sinusoids" in table
    assert capsys.readouterr().out.startswith(table.splitlines()[0])
    assert (out / PLOT_FILE).read_bytes()[:4] == b"\x89PNG"

    # A third run has nothing left to train.
    e1_before = snapshot(cells / "E1")
    caplog.clear()
    assert main(argv) == 0
    assert "training for" not in caplog.text and "scored before" in caplog.text
    assert snapshot(cells / "E1") == e1_before


def test_a_cell_decodes_its_dev_set_once(
    toy_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    # Scoring decodes the dev set with beam 4; a validation at the end of training would decode
    # it again (greedily) for a best model that Table 3 never reads.
    decoded: list[int] = []
    translate = Translator.translate

    def counted(self: Translator, lines: list[str], *args: object, **kwargs: object) -> object:
        decoded.append(len(lines))
        return translate(self, lines, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Translator, "translate", counted)
    base = load_config(write_config(tmp_path / "base.yaml", toy_corpus, tmp_path / "unused"))
    out = tmp_path / "out"
    run_table3(base, out_dir=out, minutes=0.01, data_dir=toy_corpus, rows="base", progress=False)
    assert decoded == [50]  # the toy dev set, once
    assert not (out / "cells" / "base" / "best").exists()


def test_a_table_is_not_mixed_with_another_budget(
    toy_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write_config(tmp_path / "base.yaml", toy_corpus, tmp_path / "unused")
    out = tmp_path / "out"
    out.mkdir()
    (out / "table3.json").write_text(json.dumps({"minutes": 5, "base": {}}))
    assert main(command(base, toy_corpus, out)[3:]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nmt: error: ") and "another base config, data or --minutes" in err
    assert not (out / "cells").exists()


def test_row_b_is_explained_not_run(
    toy_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write_config(tmp_path / "base.yaml", toy_corpus, tmp_path / "unused")
    argv = command(base, toy_corpus, tmp_path / "out")[3:]
    assert main([*argv[:-2], "B"]) == 1
    assert "d_k = d_v = d_model / h" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_one_minute_a_cell(toy_corpus: Path, tmp_path: Path) -> None:
    """The issue's check: table3 at --minutes 1 runs end to end."""
    base = write_config(tmp_path / "base.yaml", toy_corpus, tmp_path / "unused")
    out = tmp_path / "out"
    run = subprocess.run(
        command(base, toy_corpus, out, minutes=1), env=environment(), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    for name in ("base", "E1"):
        result = json.loads((out / "cells" / name / RESULT_FILE).read_text())
        assert 60 <= result["train_seconds"] < 70
    assert "| (E) |" in (out / TABLE_FILE).read_text()

"""`make gpu-check`'s dry run: everything the GPU check does, on the CPU with gloo, in seconds."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nmt.evaluation.scoring import score

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_dry_run_trains_kills_resumes_translates_and_scores(
    toy_corpus: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(toy_corpus, data)
    command = [sys.executable, str(SCRIPT), "--dry-run", "--data", str(data)]
    command += ["--work", str(tmp_path / "work"), "--minutes", "0.15"]
    result = subprocess.run(
        command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = result.stdout
    assert "gpu-check passed" in out
    assert "1proc-float32: killed after step-" in out
    assert "2proc-bfloat16: killed after step-" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if "proc-" in line}
    sources, references = read_lines(data / "test.en"), read_lines(data / "test.de")
    for name in ("1proc-float32", "2proc-bfloat16"):
        updates, _, tokens_per_second, bleu, chrf = rows[name][1:6]
        assert float(tokens_per_second.replace(",", "")) > 0
        run_dir = tmp_path / "work" / name
        last = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
        assert int(updates) == json.loads((last / "trainer.json").read_text())["trainer"]["step"]
        # The scores printed are those of the test set's translations against its references.
        hypotheses = read_lines(run_dir / "test.hyp")
        assert len(hypotheses) == len(sources)
        expected = score(hypotheses, references)
        assert float(bleu) == pytest.approx(expected.bleu, abs=0.005)
        assert float(chrf) == pytest.approx(expected.chrf, abs=0.005)

"""`make gpu-check`'s dry run: everything the GPU check does, on the CPU with gloo, in seconds."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"


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
    for name in ("1proc-float32", "2proc-bfloat16"):
        updates, _, tokens_per_second, bleu = rows[name][1:5]
        assert int(updates) > 0 and float(tokens_per_second.replace(",", "")) > 0
        assert 0.0 <= float(bleu) <= 100.0
        assert (tmp_path / "work" / name / "test.hyp").stat().st_size > 0

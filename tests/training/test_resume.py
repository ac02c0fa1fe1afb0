"""A run killed with SIGKILL and resumed matches an uninterrupted run to the last digit."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

from .helpers import write_config

STEPS = 40


def train_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "nmt.cli", "train", str(config)]


def environment() -> dict[str, str]:
    # One thread: the same arithmetic order in both runs (and less contention in CI).
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def train_losses(run_dir: Path) -> list[tuple[int, float, float]]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["lr"]) for r in records if r["split"] == "train"]


def test_killed_and_resumed_run_equals_uninterrupted_run(toy_corpus: Path, tmp_path: Path) -> None:
    # Dropout on, so the random-number generators' states matter; several epochs, so the data
    # position matters; warm-up, so the schedule matters; Adam, so its moments matter.
    settings = {"max_steps": STEPS, "save_every": 3, "max_tokens": 300}
    whole = write_config(tmp_path / "whole.yaml", toy_corpus, tmp_path / "whole", training=settings)
    killed = write_config(
        tmp_path / "killed.yaml", toy_corpus, tmp_path / "killed", training=settings
    )
    subprocess.run(train_command(whole), check=True, env=environment(), capture_output=True)

    kills = 0
    for wait_for in (2, 6):  # kill twice, mid-run, at moments not aligned with checkpoints
        process = subprocess.Popen(
            train_command(killed), env=environment(), stderr=subprocess.DEVNULL
        )
        checkpoints = tmp_path / "killed" / "checkpoints"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (
                checkpoints.is_dir()
                and len([p for p in checkpoints.iterdir() if p.name.startswith("step-")])
                >= wait_for
            ):
                break
            time.sleep(0.05)
        time.sleep(0.3)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 1, "the run finished before it could be killed"
    subprocess.run(train_command(killed), check=True, env=environment(), capture_output=True)

    assert train_losses(tmp_path / "killed") == train_losses(tmp_path / "whole")
    assert [s for s, _, _ in train_losses(tmp_path / "whole")] == list(range(1, STEPS + 1))
    final = f"checkpoints/step-{STEPS:08d}/model.safetensors"
    a, b = load_file(str(tmp_path / "whole" / final)), load_file(str(tmp_path / "killed" / final))
    assert all((a[k] == b[k]).all() for k in a)

"""A run stopped by SIGKILL, SIGTERM or Ctrl-C and resumed matches an uninterrupted run to the
last digit (tests/training/test_kill_drill.py kills it at many more moments)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from .helpers import write_config

STEPS = 40
SETTINGS = {"max_steps": STEPS, "save_every": 3, "max_tokens": 300}


def train_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "nmt.cli", "train", str(config)]


def environment(**extra: str) -> dict[str, str]:
    # One thread: the same arithmetic order in both runs (and less contention in CI).
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def train_losses(run_dir: Path) -> list[tuple[int, float, float]]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["lr"]) for r in records if r["split"] == "train"]


def logged_steps(run_dir: Path) -> int:
    """The last training step in metrics.jsonl (0 before the first)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return 0
    steps = [0]
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # an append under way
            continue
        if record["split"] == "train":
            steps.append(record["step"])
    return max(steps)


def assert_same_final_weights(a: Path, b: Path, step: int) -> None:
    for name in ("model.safetensors", "optimizer.safetensors"):
        final = f"checkpoints/step-{step:08d}/{name}"
        x, y = load_file(str(a / final)), load_file(str(b / final))
        assert x.keys() == y.keys()
        assert all((x[k] == y[k]).all() for k in x), name


@pytest.fixture(scope="module")
def uninterrupted(toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("whole")
    config = write_config(folder / "c.yaml", toy_corpus, folder / "run", training=SETTINGS)
    subprocess.run(train_command(config), check=True, env=environment(), capture_output=True)
    return folder / "run"


def test_killed_and_resumed_run_equals_uninterrupted_run(
    uninterrupted: Path, toy_corpus: Path, tmp_path: Path
) -> None:
    # Dropout on, so the random-number generators' states matter; several epochs, so the data
    # position matters; warm-up, so the schedule matters; Adam, so its moments matter.
    killed = write_config(tmp_path / "killed.yaml", toy_corpus, tmp_path / "run", training=SETTINGS)
    kills = 0
    for wait_for in (2, 6):  # kill twice, mid-run, at moments not aligned with checkpoints
        process = subprocess.Popen(
            train_command(killed), env=environment(), stderr=subprocess.DEVNULL
        )
        checkpoints = tmp_path / "run" / "checkpoints"
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

    assert train_losses(tmp_path / "run") == train_losses(uninterrupted)
    assert [s for s, _, _ in train_losses(uninterrupted)] == list(range(1, STEPS + 1))
    assert_same_final_weights(uninterrupted, tmp_path / "run", STEPS)


def test_sigterm_and_ctrl_c_save_the_current_update_then_resume_exactly(
    uninterrupted: Path, toy_corpus: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", toy_corpus, tmp_path / "run", training=SETTINGS)
    run = tmp_path / "run"
    for signum, at_step in ((signal.SIGTERM, 4), (signal.SIGINT, 14)):
        process = subprocess.Popen(
            train_command(config), env=environment(), stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 120
        while logged_steps(run) < at_step and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 128 + signum, stderr
        [line] = [line for line in stderr.splitlines() if line.startswith("nmt:")]
        stopped_at = int(line.split("checkpoint step ")[1].split(";")[0])
        assert line == (
            f"nmt: stopped by {signal.Signals(signum).name}; saved checkpoint step {stopped_at}; "
            "rerun the same command to resume"
        )
        # The update under way when the signal came is saved, wherever save_every falls.
        assert stopped_at >= at_step
        assert (run / "checkpoints" / f"step-{stopped_at:08d}").is_dir()
        assert logged_steps(run) == stopped_at
    subprocess.run(train_command(config), check=True, env=environment(), capture_output=True)
    assert train_losses(run) == train_losses(uninterrupted)
    assert_same_final_weights(uninterrupted, run, STEPS)

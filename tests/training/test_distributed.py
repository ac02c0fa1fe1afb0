"""Two CPU processes with gloo take the same updates as one process with the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from .helpers import write_config

STEPS = 6


def losses(run_dir: Path) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if r["split"] == "train"]


def test_two_gloo_processes_equal_one_process(toy_corpus: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # No dropout: the two ranks draw different random numbers than one process would.
    common = {"max_steps": STEPS, "save_every": STEPS}
    single = write_config(
        tmp_path / "one.yaml",
        toy_corpus,
        tmp_path / "one",
        model={"dropout": 0.0},
        training={**common, "accumulate": 2},
    )
    subprocess.run(
        [sys.executable, "-m", "nmt.cli", "train", str(single)],
        check=True,
        env=env,
        capture_output=True,
    )
    # The tokenizer is trained once and shared, so both runs see the same ids.
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "tokenizer.model").write_bytes(
        (tmp_path / "one" / "tokenizer.model").read_bytes()
    )
    double = write_config(
        tmp_path / "two.yaml",
        toy_corpus,
        tmp_path / "two",
        model={"dropout": 0.0},
        training={**common, "accumulate": 1},
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    result = subprocess.run(
        [*torchrun, "-m", "nmt.cli", "train", str(double)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]

    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == STEPS
    for a, b in zip(one, two, strict=True):
        assert abs(a - b) < 1e-5 * max(1.0, abs(a))
    final = f"checkpoints/step-{STEPS:08d}/model.safetensors"
    w1, w2 = load_file(str(tmp_path / "one" / final)), load_file(str(tmp_path / "two" / final))
    assert all(torch.allclose(w1[k], w2[k], atol=1e-5) for k in w1)
    # Only rank 0 wrote: one metrics line per step, no duplicates.
    assert len(losses(tmp_path / "two")) == STEPS


def test_time_budgets_agree_across_ranks(toy_corpus: Path, tmp_path: Path) -> None:
    # Each rank times its own shard; if each decided alone when to validate, save or stop, one
    # would wait in a collective the other never joins. Many short periods make a split likely.
    config = write_config(
        tmp_path / "c.yaml",
        toy_corpus,
        tmp_path / "run",
        training={
            "max_steps": None,
            "max_minutes": 0.05,
            "valid_every": 10**6,
            "valid_every_minutes": 0.005,
            "valid_max_sentences": 4,
            "save_every": None,
            "save_every_minutes": 0.005,
        },
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    result = subprocess.run(
        [*torchrun, "-m", "nmt.cli", "train", str(config)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert sum(r["split"] == "dev" for r in records) >= 5
    assert len(list((tmp_path / "run" / "checkpoints").iterdir())) >= 5

"""Two CPU processes with gloo take the same updates as one process with the same global batch."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from nmt.training import distributed
from nmt.training.distributed import Distributed, setup_distributed

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
    # A private copy of the corpus, so that no other test has encoded it yet.
    data = tmp_path / "data"
    shutil.copytree(toy_corpus, data)
    config = write_config(
        tmp_path / "c.yaml",
        data,
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
    # Each split was encoded once, by whichever rank came first; both ranks mapped it.
    log_lines = result.stderr.splitlines()
    assert sum("nmt.data.cache: encoding " in line for line in log_lines) == 2  # train, dev
    assert sum("memory-mapped from" in line for line in log_lines) == 4  # 2 ranks × 2 splits
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert sum(r["split"] == "dev" for r in records) >= 5
    assert len(list((tmp_path / "run" / "checkpoints").iterdir())) >= 5


class Collective(Exception):
    """Raised by the fake collectives below with what they were given."""

    def __init__(self, name: str, tensor: torch.Tensor | None, **kwargs: Any) -> None:
        super().__init__(name)
        self.device = None if tensor is None else tensor.device
        self.kwargs = kwargs


def fake_collective(name: str) -> Any:
    def collective(tensor: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> None:
        raise Collective(name, tensor, **kwargs)

    return collective


def test_collectives_put_their_tensors_on_the_ranks_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NCCL rejects CPU tensors: every tensor nmt hands a collective must be on the rank's own
    # device. A CPU-only machine has no GPU to show it on, but it has the meta device.
    for name in ("all_reduce", "broadcast"):
        monkeypatch.setattr(dist, name, fake_collective(name))
    rank = Distributed(rank=1, world_size=2, local_rank=1, device=torch.device("meta"))
    with pytest.raises(Collective) as call:
        rank.all_sum([1.0, 2.0])
    assert str(call.value) == "all_reduce" and call.value.device == torch.device("meta")
    with pytest.raises(Collective) as call:
        rank.broadcast_flag(True)
    assert str(call.value) == "broadcast" and call.value.device == torch.device("meta")


def test_barrier_names_the_ranks_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        dist,
        "barrier",
        lambda **kwargs: (_ for _ in ()).throw(Collective("barrier", None, **kwargs)),
    )
    with pytest.raises(Collective) as call:
        Distributed(rank=1, world_size=2, local_rank=1, device=torch.device("cuda", 1)).barrier()
    assert call.value.kwargs == {"device_ids": [1]}
    with pytest.raises(Collective) as call:
        Distributed(rank=1, world_size=2, local_rank=1).barrier()
    assert call.value.kwargs == {}


def test_cuda_ranks_take_their_local_gpu_and_a_gloo_nccl_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: dict[str, Any] = {}
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls.update(init=kw))
    monkeypatch.setattr(dist, "get_rank", lambda: 3)
    monkeypatch.setattr(dist, "get_world_size", lambda: 4)
    monkeypatch.setattr(distributed.torch.cuda, "set_device", lambda d: calls.update(gpu=d))
    rank = setup_distributed("cuda")
    assert rank == Distributed(rank=3, world_size=4, local_rank=1, device=torch.device("cuda", 1))
    assert calls == {"init": {"backend": "cpu:gloo,cuda:nccl"}, "gpu": torch.device("cuda", 1)}
    calls.clear()
    assert setup_distributed("cpu").device == torch.device("cpu")
    assert calls == {"init": {"backend": "gloo"}}

"""Two CPU processes with gloo take the same updates as one process with the same global batch."""

import inspect
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import multiprocessing
from torch.distributed.distributed_c10d import Backend, BackendConfig

from nmt.config import load_config
from nmt.data.tokenizer import Tokenizer
from nmt.training import distributed
from nmt.training.distributed import Distributed, setup_distributed, teardown_distributed
from nmt.training.setup import prepare_tokenizer

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
    """Raised by the fake collectives below with the arguments they were called with, bound to
    the real function's signature (a keyword torch does not know fails there, as it would)."""

    def __init__(self, name: str, arguments: dict[str, Any]) -> None:
        super().__init__(name)
        self.arguments = arguments
        tensor = arguments.get("tensor")
        self.device = None if tensor is None else tensor.device


def fake_collective(name: str) -> Any:
    signature = inspect.signature(getattr(dist, name))

    def collective(*args: Any, **kwargs: Any) -> None:
        raise Collective(name, signature.bind(*args, **kwargs).arguments)

    return collective


def test_collectives_put_their_tensors_on_the_ranks_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NCCL rejects CPU tensors: every tensor nmt hands a collective must be on the rank's own
    # device. A CPU-only machine has no GPU to show it on, but it has the meta device.
    for name in ("all_reduce", "broadcast", "barrier"):
        monkeypatch.setattr(dist, name, fake_collective(name))
    rank = Distributed(rank=1, world_size=2, local_rank=1, device=torch.device("meta"))
    with pytest.raises(Collective) as call:
        rank.all_sum([1.0, 2.0])
    assert str(call.value) == "all_reduce" and call.value.device == torch.device("meta")
    with pytest.raises(Collective) as call:
        rank.broadcast_flag(True)
    assert str(call.value) == "broadcast" and call.value.device == torch.device("meta")
    assert call.value.arguments["src"] == 0  # rank 0 decides


def test_barriers_name_the_ranks_gpu_and_long_waits_their_own_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NCCL must not guess which GPU a barrier is for: it is the one the rank's tensors are on.
    monkeypatch.setattr(dist, "barrier", fake_collective("barrier"))
    gpu = torch.device("cuda", 1)
    with pytest.raises(Collective) as call:
        Distributed(rank=1, world_size=2, local_rank=1, device=gpu).barrier()
    assert call.value.arguments["device_ids"] == [gpu.index]
    with pytest.raises(Collective) as call:
        Distributed(rank=1, world_size=2, local_rank=1).barrier()
    assert call.value.arguments.get("device_ids") is None  # gloo takes none
    # Waiting for rank 0's own work happens on the group made for it, not the default one.
    group = object()
    with pytest.raises(Collective) as call:
        Distributed(rank=1, world_size=2, device=gpu, main_work_group=group).wait_for_main()
    assert call.value.arguments["group"] is group


def test_cuda_ranks_take_their_local_gpu_and_a_gloo_nccl_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: dict[str, Any] = {}

    def bound(name: str) -> Any:
        signature = inspect.signature(getattr(dist, name))
        return lambda *a, **kw: calls.setdefault(name, signature.bind(*a, **kw).arguments)

    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", bound("init_process_group"))
    monkeypatch.setattr(dist, "new_group", bound("new_group"))
    monkeypatch.setattr(dist, "get_rank", lambda: 3)
    monkeypatch.setattr(dist, "get_world_size", lambda: 4)
    monkeypatch.setattr(distributed.torch.cuda, "set_device", lambda d: calls.update(gpu=d))

    def backends(arguments: dict[str, Any]) -> dict[str, str]:
        """Which backend torch would give each device type, parsed as torch parses it."""
        return BackendConfig(Backend(arguments["backend"])).get_device_backend_map()

    rank = setup_distributed("cuda")
    assert rank == Distributed(rank=3, world_size=4, local_rank=1, device=torch.device("cuda", 1))
    assert calls["gpu"] == torch.device("cuda", 1)
    # NCCL for the GPU's tensors, gloo for any CPU tensor that reaches a collective.
    assert backends(calls["init_process_group"]) == {"cpu": "gloo", "cuda": "nccl"}
    # Rank 0's own work (a tokenizer, a validation) may take far longer than a step.
    step_timeout = calls["init_process_group"]["timeout"]
    assert backends(calls["new_group"])["cpu"] == "gloo"
    assert calls["new_group"]["timeout"] >= max(step_timeout, timedelta(hours=1))
    calls.clear()
    assert setup_distributed("cpu").device == torch.device("cpu")
    assert backends(calls["init_process_group"]) == {"cpu": "gloo", "cuda": "gloo"}
    assert "gpu" not in calls


def torchrun_train(config: Path) -> None:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    result = subprocess.run(
        [*torchrun, "-m", "nmt.cli", "train", str(config)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_with_dropout_resume_exactly(toy_corpus: Path, tmp_path: Path) -> None:
    # Dropout on (the helper's 0.1): each rank draws its own masks, from its own saved state.
    training = {"max_steps": 6, "save_every": 3, "accumulate": 1, "valid_every": None}
    torchrun_train(
        write_config(tmp_path / "c.yaml", toy_corpus, tmp_path / "whole", training=training)
    )
    # The same run as if killed after its checkpoint at step 3, then resumed to step 6.
    shutil.copytree(tmp_path / "whole", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "step-00000006")
    torchrun_train(
        write_config(tmp_path / "r.yaml", toy_corpus, tmp_path / "resumed", training=training)
    )

    step3 = load_file(str(tmp_path / "whole" / "checkpoints/step-00000003/optimizer.safetensors"))
    assert not torch.equal(step3["rng.0.cpu"], step3["rng.1.cpu"])  # ranks seeded apart
    final = "checkpoints/step-00000006/model.safetensors"
    whole = load_file(str(tmp_path / "whole" / final))
    resumed = load_file(str(tmp_path / "resumed" / final))
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)


def slow_main_rank(rank: int, port: int, config_path: str) -> None:
    """One of two processes: rank 0 takes 4 s to train the tokenizer, twice the step timeout."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank)
    )
    os.environ["WORLD_SIZE"] = "2"
    train_tokenizer = Tokenizer.train

    def slow_train(*args: Any, **kwargs: Any) -> Tokenizer:
        time.sleep(4)
        return train_tokenizer(*args, **kwargs)

    Tokenizer.train = slow_train  # type: ignore[method-assign]
    rank_info = setup_distributed("cpu", step_timeout=timedelta(seconds=2))
    try:
        prepare_tokenizer(load_config(Path(config_path)), rank_info)
        assert rank_info.all_sum([1.0]) == [2.0]  # both ranks still talk
    finally:
        teardown_distributed(rank_info)


def test_ranks_wait_for_a_slow_rank_0_beyond_the_step_timeout(
    toy_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other ranks wait while rank 0 alone trains the tokenizer (or validates): longer than
    # a step's collectives may take, so they wait on a group with a timeout of its own.
    config = write_config(tmp_path / "c.yaml", toy_corpus, tmp_path / "run")
    # Spawned processes unpickle slow_main_rank by its module, tests.training.test_distributed:
    # they inherit sys.path, which under pytest's importlib mode lacks the repository's root.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    multiprocessing.spawn(slow_main_rank, args=(port, str(config)), nprocs=2)
    assert (tmp_path / "run" / "tokenizer.model").is_file()

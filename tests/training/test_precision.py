"""float16 loss scaling, TF32, torch.compile of the training step, and its attention, checked on
the CPU."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from nmt.config import TransformerConfig
from nmt.data.batching import Batch
from nmt.models.build import build_model
from nmt.training.precision import (
    ForwardLoss,
    configure_matmul_precision,
    forward_loss,
    grad_scaler,
    optimizer_step,
    training_attention,
)

from .helpers import write_config


def test_overflowing_update_is_skipped_and_the_next_one_applied() -> None:
    layer = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    scaler = grad_scaler(torch.device("cpu"), "float16")
    before = layer.weight.detach().clone()

    scaler.scale(layer(torch.full((1, 3), float("inf"))).sum()).backward()
    assert optimizer_step(optimizer, scaler) is True
    assert torch.equal(layer.weight, before)
    assert scaler.get_scale() == 2.0**15  # halved from 2^16

    optimizer.zero_grad()
    scaler.scale(layer(torch.ones(1, 3)).sum()).backward()
    assert optimizer_step(optimizer, scaler) is False
    # The gradient arrived unscaled: one SGD step of the true gradient (ones).
    assert torch.allclose(layer.weight, before - 0.1)


def test_scaler_is_inert_unless_float16() -> None:
    for precision in ("float32", "bfloat16"):
        scaler = grad_scaler(torch.device("cpu"), precision)
        layer = nn.Linear(2, 1)
        optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)
        loss = layer(torch.ones(1, 2)).sum()
        assert scaler.scale(loss) is loss
        loss.backward()
        assert optimizer_step(optimizer, scaler) is False
        assert scaler.state_dict() == {}


def test_float32_on_a_gpu_uses_tf32_matmuls() -> None:
    matmul = torch.backends.cuda.matmul
    saved = matmul.fp32_precision
    try:
        matmul.fp32_precision = "ieee"
        configure_matmul_precision(torch.device("cpu"), "float32")
        configure_matmul_precision(torch.device("cuda", 0), "bfloat16")
        assert matmul.fp32_precision == "ieee"
        configure_matmul_precision(torch.device("cuda", 0), "float32")
        assert matmul.fp32_precision == "tf32"
    finally:
        matmul.fp32_precision = saved


def run_train(config: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nmt.cli", "train", str(config)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def trainer_record(run_dir: Path, step: int) -> dict:
    path = run_dir / f"checkpoints/step-{step:08d}/trainer.json"
    return json.loads(path.read_text())["trainer"]


def train_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == "train"]


def test_float16_run_resumes_exactly_with_its_loss_scale(toy_corpus: Path, tmp_path: Path) -> None:
    # float16 autocast runs on the CPU too (slowly): the scaler's whole life is testable here.
    settings = {"precision": "float16", "save_every": 3, "max_tokens": 200}
    whole = write_config(
        tmp_path / "w.yaml", toy_corpus, tmp_path / "whole", training={**settings, "max_steps": 6}
    )
    run_train(whole)
    # The same run stopped after its checkpoint at step 3, then resumed to step 6.
    shutil.copytree(tmp_path / "whole", tmp_path / "parts")
    shutil.rmtree(tmp_path / "parts" / "checkpoints" / "step-00000006")
    shutil.rmtree(tmp_path / "parts" / "best", ignore_errors=True)
    run_train(
        write_config(
            tmp_path / "p.yaml",
            toy_corpus,
            tmp_path / "parts",
            training={**settings, "max_steps": 6},
        )
    )
    straight, resumed = trainer_record(tmp_path / "whole", 6), trainer_record(tmp_path / "parts", 6)
    assert straight["grad_scaler"]["scale"] > 0
    assert resumed["grad_scaler"] == straight["grad_scaler"]
    assert resumed["skipped_updates"] == straight["skipped_updates"]
    assert [r["loss"] for r in train_records(tmp_path / "parts")] == [
        r["loss"] for r in train_records(tmp_path / "whole")
    ]
    # Every update either stepped or was counted as skipped; the count reaches the metrics.
    assert train_records(tmp_path / "whole")[-1]["skipped_updates"] == straight["skipped_updates"]


def test_a_float16_run_skips_an_overflowing_update_and_lowers_its_scale(
    toy_corpus: Path, tmp_path: Path
) -> None:
    settings = {"precision": "float16", "save_every": 1, "max_tokens": 200}
    run_dir = tmp_path / "run"
    run_train(
        write_config(tmp_path / "a.yaml", toy_corpus, run_dir, training=settings | {"max_steps": 2})
    )
    # A loss scale of 2^100 makes the float16 gradients of the next update overflow.
    record_path = run_dir / "checkpoints/step-00000002/trainer.json"
    record = json.loads(record_path.read_text())
    assert record["trainer"]["skipped_updates"] == 0
    record["trainer"]["grad_scaler"]["scale"] = 2.0**100
    record_path.write_text(json.dumps(record))
    run_train(
        write_config(tmp_path / "b.yaml", toy_corpus, run_dir, training=settings | {"max_steps": 3})
    )

    after = trainer_record(run_dir, 3)
    assert after["skipped_updates"] == 1
    assert after["grad_scaler"]["scale"] == 2.0**99  # halved
    assert train_records(run_dir)[-1]["skipped_updates"] == 1
    # The skipped update left the weights as they were.
    before = load_file(str(run_dir / "checkpoints/step-00000002/model.safetensors"))
    skipped = load_file(str(run_dir / "checkpoints/step-00000003/model.safetensors"))
    assert all(torch.equal(before[name], skipped[name]) for name in before)


def tiny_model_and_batches(seed: int = 0) -> tuple[nn.Module, list[Batch]]:
    torch.manual_seed(seed)
    model = build_model(
        TransformerConfig(num_layers=1, d_model=16, d_ff=32, num_heads=2, dropout=0.0), 40
    )
    generator = torch.Generator().manual_seed(seed)
    batches = []
    # Shapes change at every step; batch, source and target sizes never coincide within a batch
    # (torch.compile would specialise on such an equality and compile again).
    for size, src_len, tgt_len in ((2, 6, 3), (3, 8, 5), (5, 3, 7)):
        src = torch.randint(4, 40, (size, src_len), generator=generator).tolist()
        tgt = torch.randint(4, 40, (size, tgt_len), generator=generator).tolist()
        batches.append(Batch.from_pairs(src, tgt, list(range(size))))
    return model, batches


def float32_loss(model: nn.Module, **options: Any) -> ForwardLoss:
    """forward_loss of ``model`` on the CPU in float32, label smoothing 0.1, and ``options``."""
    return forward_loss(
        model,
        device_type="cpu",
        precision="float32",
        label_smoothing=0.1,
        pad_id=model.pad_id,
        **options,
    )


def train_losses(backend: str | None) -> list[float]:
    model, batches = tiny_model_and_batches()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_of = float32_loss(
        model, compile=backend is not None, compile_backend=backend or "inductor"
    )
    losses = []
    for batch in batches * 2:
        optimizer.zero_grad()
        sums = loss_of(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_out)
        (sums.smoothed / sums.num_tokens).backward()
        optimizer.step()
        losses.append(float(sums.smoothed.detach()) / sums.num_tokens)
    return losses


def test_compiled_step_traces_and_trains_like_eager() -> None:
    # The "eager" backend: torch.compile's graph capture of the model (once, for every shape)
    # without code generation, which takes minutes on a busy CPU; inductor's is below, slow.
    eager = train_losses(None)
    compiled = train_losses("eager")
    assert compiled == pytest.approx(eager, rel=1e-5)
    assert eager[-1] < eager[0]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_generated_code_trains_like_eager(backend: str) -> None:
    started = time.perf_counter()
    assert train_losses(backend) == pytest.approx(train_losses(None), rel=1e-4)
    print(f"{backend}: {time.perf_counter() - started:.0f} s including compilation")


def test_training_attention_keeps_bfloat16_blocks_in_bfloat16_for_the_backward() -> None:
    # What the forward saves for the backward: under bfloat16 autocast PyTorch's explicit path
    # would keep float32 copies of the queries and keys; training's stays in bfloat16.
    query, key, value = (
        torch.randn(2, 4, 9, 8, dtype=torch.bfloat16, requires_grad=True) for _ in range(3)
    )
    saved: list[torch.Tensor] = []

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor)
        return tensor

    before = torch.backends.cuda.fp16_bf16_reduction_math_sdp_allowed()
    with (
        torch.autocast("cpu", dtype=torch.bfloat16),
        training_attention("cpu"),
        torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor),
    ):
        out = F.scaled_dot_product_attention(query, key, value, is_causal=True)
    assert saved and {tensor.dtype for tensor in saved} == {torch.bfloat16}
    assert torch.backends.cuda.fp16_bf16_reduction_math_sdp_allowed() == before  # restored
    out.float().sum().backward()  # and the backward runs from them
    assert query.grad is not None and query.grad.dtype == torch.bfloat16
    # Its values: the float32 attention's, to bfloat16's precision.
    expected = F.scaled_dot_product_attention(
        query.float(), key.float(), value.float(), is_causal=True
    )
    torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=2e-2)

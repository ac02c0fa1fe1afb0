import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from nmt.config import load_config
from nmt.durable import atomic_write_text
from nmt.errors import NmtError
from nmt.models.build import build_model
from nmt.models.store import load_model_dir, write_model_dir
from nmt.training.average import average_checkpoints
from nmt.training.checkpoint import checkpoint_dirs, load_checkpoint, time_save_due
from nmt.training.metrics import read_metrics
from nmt.training.train import period_crossed, train

from .helpers import write_config


@pytest.fixture(scope="module")
def trained_run(toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    config = write_config(folder / "c.yaml", toy_corpus, folder / "run", training={"max_steps": 15})
    train(load_config(config))
    return folder / "run"


def test_run_directory_holds_checkpoints_best_and_metrics(trained_run: Path) -> None:
    names = [p.name for p in checkpoint_dirs(trained_run)]
    assert names == ["step-00000005", "step-00000010", "step-00000015"]
    for name in (
        "config.yaml",
        "tokenizer.model",
        "metrics.jsonl",
        "curves.png",
        "best/model.safetensors",
    ):
        assert (trained_run / name).is_file(), name
    # Nothing temporary is left behind.
    assert not [p for p in (trained_run / "checkpoints").iterdir() if p.name.startswith(".")]


def test_checkpoint_round_trip_gives_identical_logits(trained_run: Path) -> None:
    newest = checkpoint_dirs(trained_run)[-1]
    a, b = load_model_dir(newest), load_model_dir(newest)
    src = torch.tensor([[5, 6, 7, 3]])
    mask = torch.ones_like(src, dtype=torch.bool)
    tgt = torch.tensor([[2, 8, 9]])
    assert torch.equal(a.model(src, mask, tgt), b.model(src, mask, tgt))
    # The weights are the ones saved, not a fresh initialisation.
    saved = load_file(str(newest / "model.safetensors"))
    name = next(iter(saved))
    assert torch.equal(a.model.state_dict()[name], saved[name])


def test_averaging_two_checkpoints_gives_their_mean(trained_run: Path, tmp_path: Path) -> None:
    last_two = checkpoint_dirs(trained_run)[-2:]
    average_checkpoints(trained_run, last=2, out_dir=tmp_path / "avg")
    averaged = load_file(str(tmp_path / "avg" / "model.safetensors"))
    first, second = (load_file(str(p / "model.safetensors")) for p in last_two)
    assert averaged.keys() == first.keys()
    for name, value in averaged.items():
        assert torch.allclose(value, (first[name] + second[name]) / 2, atol=1e-7), name
    assert (
        load_model_dir(tmp_path / "avg").config.model
        == load_config(trained_run / "config.yaml").model
    )


def test_averaging_more_checkpoints_than_exist_takes_all_and_says_so(
    trained_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A time budget that ended early on a slow machine must still end with a model.
    chosen = average_checkpoints(trained_run, last=10, out_dir=tmp_path / "avg")
    assert chosen == checkpoint_dirs(trained_run)
    assert "asked to average 10 checkpoints, 3 available: averaging those 3" in caplog.text
    assert (tmp_path / "avg" / "model.safetensors").is_file()
    with pytest.raises(NmtError, match="at least 1"):
        average_checkpoints(trained_run, last=0, out_dir=tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_corrupt_checkpoint_is_refused(trained_run: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(checkpoint_dirs(trained_run)[-1], broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(NmtError, match="corrupt"):
        load_model_dir(broken)


def test_weights_from_another_config_are_refused(trained_run: Path, tmp_path: Path) -> None:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(checkpoint_dirs(trained_run)[-1], other)
    config = (other / "config.yaml").read_text().replace("d_ff: 64", "d_ff: 96")
    (other / "config.yaml").write_text(config)
    with pytest.raises(NmtError, match=r"another architecture .*d_ff 96 \(trained with 64\)"):
        load_model_dir(other)
    # Weights without the architecture record (older files): the shapes still decide.
    weights = other / "model.safetensors"
    save_file(load_file(str(weights)), str(weights))
    with pytest.raises(NmtError, match="another config"):
        load_model_dir(other)


def test_resuming_with_another_model_config_is_refused(
    trained_run: Path, toy_corpus: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", toy_corpus, trained_run, model={"d_ff": 96})
    with pytest.raises(NmtError, match="another 'model' configuration"):
        train(load_config(config))


def test_early_stopping_after_patience_runs_out(toy_corpus: Path, tmp_path: Path) -> None:
    # A learning rate too small to learn anything: dev BLEU never improves on the first value.
    config = write_config(
        tmp_path / "c.yaml",
        toy_corpus,
        tmp_path / "run",
        training={
            "max_steps": 50,
            "valid_every": 2,
            "patience": 2,
            "save_every": 100,
            "best_metric": "loss",
            "schedule": {"kind": "peak", "peak_lr": 1e-12, "warmup_steps": 1},
            "label_smoothing": 0.0,
        },
        model={"dropout": 0.0},
    )
    result = train(load_config(config))
    # Validations at steps 2 (best), 4 and 6 (no improvement twice): stop at 6, checkpointed.
    assert (result.stopped_because, result.step) == ("early stopping", 6)
    assert checkpoint_dirs(tmp_path / "run")[-1].name == "step-00000006"


def test_period_crossed_fires_once_per_period_of_training_time() -> None:
    # Steps of 25 s against a 1-minute period: the steps ending at 75 s and 125 s cross 60 and 120.
    ends = [25.0 * k for k in range(1, 7)]
    assert [period_crossed(1.0, end, 25.0) for end in ends] == [
        False,
        False,
        True,
        False,
        True,
        False,
    ]
    # One step longer than two periods still fires, once; None never does.
    assert period_crossed(1.0, 150.0, 140.0)
    assert not period_crossed(None, 1e9, 1e9)


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [(None, ["step-00000004"]), (1e-9, [f"step-{s:08d}" for s in (1, 2, 3, 4)])],
)
def test_checkpoints_by_training_time(
    toy_corpus: Path, tmp_path: Path, minutes: float | None, expected: list[str]
) -> None:
    # With save_every off, only save_every_minutes writes checkpoints before the final one; a
    # period far shorter than a step writes one after every step.
    config = write_config(
        tmp_path / "c.yaml",
        toy_corpus,
        tmp_path / "run",
        training={"max_steps": 4, "save_every": None, "save_every_minutes": minutes},
    )
    train(load_config(config))
    assert [p.name for p in checkpoint_dirs(tmp_path / "run")] == expected


def test_bfloat16_training_keeps_float32_weights(toy_corpus: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        toy_corpus,
        tmp_path / "run",
        training={"max_steps": 3, "precision": "bfloat16"},
    )
    train(load_config(config))
    weights = load_file(str(checkpoint_dirs(tmp_path / "run")[-1] / "model.safetensors"))
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights.values())


def copy_run(run: Path, folder: Path, toy_corpus: Path, **training: object) -> Path:
    """A copy of ``run`` and a config that continues it in the copy."""
    shutil.copytree(run, folder / "run")
    settings = {"max_steps": 15, **training}
    return write_config(folder / "c.yaml", toy_corpus, folder / "run", training=settings)


def test_leftovers_of_a_killed_save_are_removed_on_the_next_start(
    trained_run: Path, toy_corpus: Path, tmp_path: Path
) -> None:
    config = copy_run(trained_run, tmp_path, toy_corpus)
    run = tmp_path / "run"
    leftovers = [
        run / "checkpoints" / ".step-00000020.k2j3h4",
        run / ".best.x8y7z6",
        run / ".metrics.jsonl.abc.tmp",
    ]
    for path in leftovers[:2]:
        path.mkdir()
        (path / "model.safetensors").write_bytes(b"half")
    leftovers[2].write_text("{}")
    train(load_config(config))  # already at max_steps: sets up, trains nothing
    assert not [p for p in leftovers if p.exists()]
    assert [p.name for p in checkpoint_dirs(run)] == [p.name for p in checkpoint_dirs(trained_run)]


def test_an_unreadable_newest_checkpoint_falls_back_to_the_previous_one(
    trained_run: Path, toy_corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = copy_run(trained_run, tmp_path, toy_corpus)
    run = tmp_path / "run"
    newest = run / "checkpoints" / "step-00000015"
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    train(load_config(config))
    assert "falling back to the previous checkpoint" in caplog.text
    assert "step-00000010" in caplog.text
    # Set aside under a name that neither resume nor `nmt average` takes, and redone exactly.
    assert (run / "checkpoints" / "unreadable-step-00000015").is_dir()
    again = load_file(str(weights))
    original = load_file(str(trained_run / "checkpoints" / "step-00000015" / "model.safetensors"))
    assert again.keys() == original.keys()
    assert all(torch.equal(again[k], original[k]) for k in again)


def test_a_torn_last_metrics_line_does_not_block_resuming(
    trained_run: Path, toy_corpus: Path, tmp_path: Path
) -> None:
    config = copy_run(trained_run, tmp_path, toy_corpus, max_steps=16)
    metrics = tmp_path / "run" / "metrics.jsonl"
    with metrics.open("a") as f:
        f.write('{"split": "train", "step": 16, "lo')  # a kill in the middle of an append
    train(load_config(config))
    steps = [r["step"] for r in read_metrics(metrics) if r["split"] == "train"]
    assert steps == list(range(1, 17))


def test_damaged_metrics_before_the_last_line_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"ste\n{"step": 3}\n')
    with pytest.raises(NmtError, match=r"metrics\.jsonl:2: not a JSON record"):
        read_metrics(path)


def test_resume_honours_the_configs_adam_betas_and_eps(trained_run: Path) -> None:
    newest = checkpoint_dirs(trained_run)[-1]
    config = load_config(newest / "config.yaml")
    model = build_model(config.model, 60)
    optimizer = torch.optim.Adam(model.parameters(), betas=(0.8, 0.95), eps=1e-6)
    load_checkpoint(newest, model=model, optimizer=optimizer)
    [group] = optimizer.param_groups
    assert (tuple(group["betas"]), group["eps"]) == ((0.8, 0.95), 1e-6)
    # The moments themselves are the checkpoint's.
    assert all("exp_avg" in optimizer.state[p] for p in model.parameters())


@pytest.mark.parametrize("fused", [False, True])
def test_resume_keeps_the_optimizers_own_implementation(
    trained_run: Path, fused: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # nmt train saves a fused Adam; a checkpoint resumes into either implementation without
    # reporting a changed setting, and the next update works from the restored moments.
    newest = checkpoint_dirs(trained_run)[-1]
    config = load_config(newest / "config.yaml")
    model = build_model(config.model, 60)
    optimizer = torch.optim.Adam(model.parameters(), fused=fused)
    with caplog.at_level(logging.INFO, logger="nmt.training.checkpoint"):
        load_checkpoint(newest, model=model, optimizer=optimizer)
    assert [group["fused"] for group in optimizer.param_groups] == [fused]
    assert "optimizer fused" not in caplog.text
    parameter = next(model.parameters())
    moment = optimizer.state[parameter]["exp_avg"].clone()
    parameter.grad = torch.ones_like(parameter)
    optimizer.step()
    assert not torch.equal(optimizer.state[parameter]["exp_avg"], moment)


def test_weights_whose_config_now_names_other_heads_are_refused(
    trained_run: Path, tmp_path: Path
) -> None:
    # 4 heads or 2 heads of d_model 32: every shape fits, the function is another one.
    other = tmp_path / "run" / "checkpoints" / "step-00000001"
    shutil.copytree(checkpoint_dirs(trained_run)[-1], other)
    config = (other / "config.yaml").read_text().replace("num_heads: 4", "num_heads: 2")
    (other / "config.yaml").write_text(config)
    with pytest.raises(NmtError, match=r"another architecture .*num_heads 2 \(trained with 4\)"):
        load_model_dir(other)
    with pytest.raises(NmtError, match="another architecture"):
        average_checkpoints(tmp_path / "run", last=1, out_dir=tmp_path / "avg")
    assert not (tmp_path / "avg").exists()


def test_time_saves_cover_the_end_of_a_budget() -> None:
    # A 10-minute budget, keep_last 5: in the last 2 minutes, a checkpoint every 24 s at least.
    due = time_save_due(elapsed_seconds=479.0, last_saved_seconds=0.0, max_minutes=10, keep_last=5)
    assert not due  # before the final share
    assert time_save_due(
        elapsed_seconds=481.0, last_saved_seconds=457.0, max_minutes=10, keep_last=5
    )
    assert not time_save_due(
        elapsed_seconds=500.0, last_saved_seconds=490.0, max_minutes=10, keep_last=5
    )
    assert not time_save_due(
        elapsed_seconds=1e9, last_saved_seconds=0.0, max_minutes=None, keep_last=5
    )


def test_every_published_file_is_flushed_before_its_rename(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync(content) -> rename -> fsync(parent directory), for files and directories."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append(("replace", os.fspath(src)))
        real_replace(src, dst)
        events.append(("renamed", os.fspath(dst)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    loaded = load_model_dir(checkpoint_dirs(trained_run)[-1])
    atomic_write_text(tmp_path / "a.txt", "text")
    write_model_dir(
        tmp_path / "model",
        config=loaded.config,
        tokenizer_path=trained_run / "tokenizer.model",
        model=loaded.model,
    )
    renames = [i for i, (kind, _) in enumerate(events) if kind == "replace"]
    assert len(renames) == 2
    for i in renames:
        src, dst = events[i][1], events[i + 1][1]
        flushed = {path for kind, path in events[:i] if kind == "fsync"}
        assert src in flushed, src
        if os.path.isdir(dst):  # every file inside was flushed too
            assert {os.path.join(src, name) for name in os.listdir(dst)} <= flushed
        assert events[i + 2] == ("fsync", os.path.dirname(dst))

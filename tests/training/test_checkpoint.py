from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nmt.config import load_config
from nmt.errors import NmtError
from nmt.models.store import load_model_dir
from nmt.training.average import average_checkpoints
from nmt.training.checkpoint import checkpoint_dirs
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


def test_averaging_more_checkpoints_than_kept_is_refused(trained_run: Path, tmp_path: Path) -> None:
    with pytest.raises(NmtError, match="3 available"):
        average_checkpoints(trained_run, last=4, out_dir=tmp_path / "avg")
    assert not (tmp_path / "avg").exists()


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

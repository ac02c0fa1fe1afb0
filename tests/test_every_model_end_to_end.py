"""Every model family trains, resumes, translates and evaluates through the same commands."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nmt.cli import main

CONFIGS = Path(__file__).parent.parent / "configs"

# Shipped configs, shrunk to toy size: what is tested is the plumbing, not the quality.
SHRINK = {
    "quickstart": ["--model.num_layers=1", "--model.d_model=32", "--model.d_ff=64"],
    "lstm-attention": ["--model.embed_dim=16", "--model.hidden_size=32"],
    "gru-attention": ["--model.embed_dim=16", "--model.hidden_size=32"],
    "gru-noattention": ["--model.embed_dim=16", "--model.hidden_size=32"],
    "rnn-attention": ["--model.embed_dim=16", "--model.hidden_size=32"],
}


def steps_logged(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r["step"] for r in map(json.loads, lines) if r["split"] == "train"]


@pytest.mark.parametrize("name", sorted(SHRINK))
def test_train_resume_translate_evaluate(name: str, toy_corpus: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    common = [
        f"--data.dir={toy_corpus}",
        "--data.vocab_size=60",
        f"--training.run_dir={run_dir}",
        "--training.max_tokens=400",
        "--training.log_every=1",
        "--training.save_every=4",
        "--training.valid_every=8",
        "--training.valid_max_sentences=10",
        "--training.progress=false",
        *SHRINK[name],
    ]
    config = str(CONFIGS / f"{name}.yaml")
    assert main(["train", config, *common, "--training.max_steps=4"]) == 0
    # Rerunning with a later limit resumes from step 4.
    assert main(["train", config, *common, "--training.max_steps=8"]) == 0
    assert steps_logged(run_dir) == list(range(1, 9))
    assert (run_dir / "best" / "model.safetensors").is_file()

    assert main(["average", str(run_dir), "--last", "2", "-o", str(tmp_path / "avg")]) == 0
    hyp = tmp_path / "hyp"
    args = ["translate", str(tmp_path / "avg"), "-i", str(toy_corpus / "test.en"), "-o", str(hyp)]
    assert main([*args, "--beam-size", "2", "-q"]) == 0
    assert len(hyp.read_text().splitlines()) == len(
        (toy_corpus / "test.en").read_text().splitlines()
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nmt.cli",
            "evaluate",
            "--hyp",
            str(hyp),
            "--ref",
            str(toy_corpus / "test.de"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "BLEU" in result.stdout

"""`make demo`'s own commands, read from the Makefile, with a training budget so small that the
run writes a single checkpoint: the demo must still end with translations and a score.

That is what a machine far slower than ours met (17 updates in 18 minutes, one checkpoint), and
`nmt average --last 10` used to stop the demo there.
"""

import logging
import shlex
from pathlib import Path

import pytest

from nmt.cli import main
from nmt.training.checkpoint import checkpoint_dirs

ROOT = Path(__file__).parent.parent
# The quickstart model at toy size: the pipeline is under test, not the model.
TOY_SIZE = [
    "--data.vocab_size=60",
    "--model.num_layers=1",
    "--model.d_model=32",
    "--model.d_ff=64",
    "--model.num_heads=2",
    "--training.progress=false",
]


def demo_commands(variables: dict[str, str]) -> list[list[str]]:
    """The `nmt` command lines of the Makefile's demo recipe, in order, variables filled in."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0].replace("\\\n", " ")
    commands = []
    for line in recipe.splitlines()[1:]:
        line = line.strip()
        if line.startswith("$(BIN)/nmt "):
            for name, value in variables.items():
                line = line.replace(f"$({name})", value)
            commands.append(shlex.split(line)[1:])
    return commands


def test_demo_pipeline_ends_with_translations_and_a_score_from_one_checkpoint(
    toy_corpus: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)  # the Makefile's relative paths (configs/quickstart.yaml)
    run = tmp_path / "run"
    # 6 ms of training: one update, then the budget is spent.
    variables = {"DATA": str(toy_corpus), "RUN": str(run), "DEMO_MINUTES": "0.0001"}
    commands = demo_commands(variables)
    assert [c[0] for c in commands] == ["data", "train", "average", "translate", "evaluate"]
    caplog.set_level(logging.INFO)
    for command in commands[1:]:  # the corpus is the toy one, not fetched
        if command[0] == "train":
            command = [*command, *TOY_SIZE]
        assert main(command) == 0, (command, capsys.readouterr().err)
        if command[0] == "train":
            assert [p.name for p in checkpoint_dirs(run)] == ["step-00000001"]
    out = capsys.readouterr().out
    assert "asked to average 10 checkpoints, 1 available: averaging those 1" in caplog.text
    assert "averaged 1 checkpoints (step-00000001 … step-00000001)" in out
    hyp = run / "test.hyp.de"
    assert len(hyp.read_text().splitlines()) == len(
        (toy_corpus / "test.en").read_text().splitlines()
    )
    assert "BLEU" in out and "chrF" in out

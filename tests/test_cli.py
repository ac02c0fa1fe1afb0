"""The `nmt` command end to end on the toy corpus, and its answers to bad input."""

import subprocess
import sys
from pathlib import Path

import pytest

from nmt.cli import main
from nmt.data.tokenizer import Tokenizer

from .training.helpers import write_config


def nmt(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nmt.cli", *args], input=stdin, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def run_dir(toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    config = write_config(folder / "c.yaml", toy_corpus, folder / "run", training={"max_steps": 80})
    assert main(["train", str(config), "--training.save_every=10"]) == 0
    return folder / "run"


def test_train_average_translate_evaluate(run_dir: Path, toy_corpus: Path, tmp_path: Path) -> None:
    averaged = tmp_path / "avg"
    assert main(["average", str(run_dir), "--last", "3", "-o", str(averaged)]) == 0
    hyp = tmp_path / "hyp.de"
    src = toy_corpus / "test.en"
    assert main(["translate", str(averaged), "-i", str(src), "-o", str(hyp), "-q"]) == 0
    assert len(hyp.read_text().splitlines()) == len(src.read_text().splitlines())
    result = nmt("evaluate", "--hyp", str(hyp), "--ref", str(toy_corpus / "test.de"))
    assert result.returncode == 0
    assert "BLEU" in result.stdout and "chrF" in result.stdout and "nrefs:1" in result.stdout
    # Translating first gives the same hypotheses as translate did.
    again = tmp_path / "again.de"
    args = ["evaluate", str(averaged), "--src", str(src), "--ref", str(toy_corpus / "test.de")]
    assert main([*args, "--hyp", str(again)]) == 0
    assert again.read_text() == hyp.read_text()
    # With a model, evaluate also scores the references themselves: a trained model finds them
    # far likelier than the uniform guess over its vocabulary would.
    result = nmt(*args)
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("perplexity")]
    perplexity = float(line.split()[4])
    vocab_size = Tokenizer.load(run_dir / "tokenizer.model").vocab_size
    assert 1.0 < perplexity < vocab_size / 4


def test_translate_stdin_keeps_empty_lines_and_order(run_dir: Path) -> None:
    result = nmt("translate", str(run_dir), stdin="the cat\n\nthe dog sees a tree\n\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert len(lines) == 5 and lines[1] == "" and lines[3] == "" and lines[4] == ""
    assert lines[0] and lines[2]


def test_translate_empty_input_gives_empty_output(run_dir: Path) -> None:
    result = nmt("translate", str(run_dir), stdin="")
    assert result.returncode == 0 and result.stdout == ""


def test_translate_over_long_line_is_truncated_with_a_warning_one_sentence_a_line(
    run_dir: Path,
) -> None:
    long_line = " ".join(["the big red house"] * 400)  # far past max_positions
    args = ("translate", str(run_dir), "--beam-size", "2", "--format", "lines")
    result = nmt(*args, stdin=f"a cat\n{long_line}\n")
    assert result.returncode == 0, result.stderr
    assert "line 2" in result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_translate_over_long_paragraph_is_cut_not_truncated(run_dir: Path) -> None:
    long_line = ", ".join(["the big red house"] * 100) + "."
    result = nmt("translate", str(run_dir), "--beam-size", "1", stdin=f"a cat\n{long_line}\n")
    assert result.returncode == 0, result.stderr
    assert "translating the first" not in result.stderr  # no truncation
    assert len(result.stdout.splitlines()) == 2


def test_translate_alignments_and_scores(run_dir: Path) -> None:
    result = nmt(
        "translate", str(run_dir), "--scores", "--alignments", stdin="the cat sees a dog\n"
    )
    assert result.returncode == 0, result.stderr
    text, score, probabilities, alignment = result.stdout.rstrip("\n").split(" ||| ")
    assert float(score) < 0
    probs = [float(p) for p in probabilities.split()]
    assert all(0 < p <= 1 for p in probs)
    assert len(probs) >= len(text.split()) + 1  # one per piece (a word has one or more), the EOS
    pairs = [tuple(map(int, pair.split("-"))) for pair in alignment.split()]
    assert {t for _, t in pairs} == set(range(len(text.split())))  # every target word aligned
    assert all(0 <= s < 5 for s, _ in pairs)


def test_score_streams_one_line_per_pair(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "src").write_text("the cat sees a dog\nthe big house\n")
    (tmp_path / "tgt").write_text("das katze sieht ein hund\nhund baum rot rot rot\n")
    result = nmt(
        "score", str(run_dir), "--src", str(tmp_path / "src"), "--tgt", str(tmp_path / "tgt")
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == 2
    # The right translation is far likelier than a wrong one.
    assert float(rows[0][0]) > float(rows[1][0])
    assert float(rows[0][1]) < 0 and int(rows[0][2]) > 0


def test_dry_run_prints_the_parameter_count(toy_corpus: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", toy_corpus, tmp_path / "run")
    result = nmt("train", str(config), "--dry-run")
    assert result.returncode == 0
    assert "parameters:" in result.stdout and "--dry-run" in result.stdout
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "missing.yaml"], "cannot read config"),
        (["evaluate", "--hyp", "a"], "needs --hyp and --ref"),
        (["translate", "no/such/model"], "no such model directory"),
        (["average", "no/such/run", "-o", "x"], "no checkpoints"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_1(args: list[str], message: str) -> None:
    result = nmt(*args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_config_key_exits_1_naming_the_key(toy_corpus: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", toy_corpus, tmp_path / "run")
    result = nmt("train", str(config), "--training.lerning_rate=3")
    assert result.returncode == 1
    assert "training.lerning_rate" in result.stderr and "Traceback" not in result.stderr


def test_evaluate_refuses_files_of_different_length(tmp_path: Path) -> None:
    (tmp_path / "h").write_text("a\nb\n")
    (tmp_path / "r").write_text("a\n")
    result = nmt("evaluate", "--hyp", str(tmp_path / "h"), "--ref", str(tmp_path / "r"))
    assert result.returncode == 1
    assert "has 2 lines" in result.stderr and "has 1" in result.stderr


def test_readme_python_snippet_runs(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    snippet = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert "runs/quickstart/averaged" in snippet
    exec(snippet.replace("runs/quickstart/averaged", str(run_dir)), {})
    printed = capsys.readouterr().out
    assert printed.startswith("[") and printed.strip().endswith("]")
